/* The job page's Usage panel: per-task CPU, memory and GPU charts (Chart.js), live while the job runs.
 *
 * #job-usage carries data-url, which answers the job's series (monitoring/job_views.py): each task's request
 * and points ({t: [ms], cpu, memory, gpu_util, gpu_memory}), the resolution served, the efficiency per
 * resource and poll_seconds (0 once the job has ended: the charts stay as they are). A poll sends ?after= the
 * newest point held: raw series then come back with the new samples only (incremental), grouped ones whole.
 * Polling pauses while the tab is hidden and backs off when the portal does not answer.
 */
(function () {
  "use strict";

  var panel = document.getElementById("job-usage");
  if (!panel || typeof Chart === "undefined") {
    return;
  }
  var url = panel.getAttribute("data-url");
  var label = function (name) { return panel.getAttribute("data-label-" + name) || name; };
  var COLOURS = ["#0d6efd", "#198754", "#d63384", "#fd7e14", "#6f42c1", "#20c997", "#dc3545", "#6c757d"];
  var MAX_DELAY_MS = 60000;
  var LATE_MS = 60000;
  var charts = {};
  var timer = null;
  var delay = 0;
  var held = null;  // the series drawn so far, by task name: a raw answer with ?after= only adds to them
  var KEYS = ["t", "cpu", "memory", "gpu_util", "gpu_memory"];

  function bytes(value) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    value = Number(value) || 0;
    while (Math.abs(value) >= 1024 && i < units.length - 1) {
      value /= 1024;
      i += 1;
    }
    return (i === 0 ? value.toFixed(0) : value.toFixed(1)) + " " + units[i];
  }

  var spanMs = 0;  // the charts' time span: a day or more shows dates, less the time of day alone

  function clock(ms) {
    var at = new Date(ms);
    var time = at.toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", hourCycle: "h23"});
    if (spanMs < 86400000) {
      return time;
    }
    var day = at.toLocaleDateString([], {month: "short", day: "numeric"});
    return spanMs < 7 * 86400000 ? day + " " + time : day;
  }

  function chart(id, yFormat, yMax) {
    if (charts[id]) {
      return charts[id];
    }
    var canvas = document.getElementById(id);
    charts[id] = new Chart(canvas, {
      type: "line",
      data: {datasets: []},
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        normalized: true,
        interaction: {mode: "nearest", axis: "x", intersect: false},
        elements: {point: {radius: 0}, line: {borderWidth: 1.5}},
        scales: {
          x: {type: "linear", bounds: "data", ticks: {maxTicksLimit: 6, callback: clock}},
          y: {beginAtZero: true, suggestedMax: yMax, ticks: {callback: yFormat}}
        },
        plugins: {
          legend: {labels: {boxWidth: 12}},
          tooltip: {callbacks: {
            title: function (items) { return items.length ? new Date(items[0].parsed.x).toLocaleString() : ""; },
            label: function (item) { return item.dataset.label + ": " + yFormat(item.parsed.y); }
          }}
        }
      }
    });
    return charts[id];
  }

  function points(task, key) {
    var out = [];
    for (var i = 0; i < task.t.length; i++) {
      if (task[key][i] !== null && task[key][i] !== undefined) {
        out.push({x: task.t[i], y: task[key][i]});
      }
    }
    return out;
  }

  // The request as a dashed line over the task's sampled span.
  function requestLine(task, value, colour) {
    if (!value || !task.t.length) {
      return null;
    }
    return {
      label: task.name + " " + label("request"),
      data: [{x: task.t[0], y: value}, {x: task.t[task.t.length - 1], y: value}],
      borderColor: colour, borderDash: [6, 4], borderWidth: 1, pointRadius: 0, fill: false
    };
  }

  function draw(id, data, key, requestOf, yFormat, yMax) {
    var datasets = [];
    data.tasks.forEach(function (task, i) {
      var colour = COLOURS[i % COLOURS.length];
      datasets.push({label: task.name, data: points(task, key), borderColor: colour, backgroundColor: colour});
      var request = requestOf ? requestLine(task, requestOf(task), colour) : null;
      if (request) {
        datasets.push(request);
      }
    });
    var target = chart(id, yFormat, yMax);
    target.data.datasets = datasets;
    target.update("none");
  }

  function showEfficiency(efficiency) {
    panel.querySelectorAll(".efficiency").forEach(function (holder) {
      var resource = holder.getAttribute("data-resource");
      var value = efficiency.values[resource];
      var target = holder.querySelector(".efficiency-value");
      var shown = document.createElement("span");
      if (value === null || value === undefined) {
        shown.className = "text-muted";
        shown.textContent = "\u2014";
      } else if (efficiency.low.indexOf(resource) !== -1) {
        shown.className = "badge text-bg-warning efficiency-low";
        shown.title = label("low-title");
        shown.textContent = Math.round(100 * value) + "% \u00b7 " + label("low");
      } else {
        shown.className = "badge text-bg-light border";
        shown.textContent = Math.round(100 * value) + "%";
      }
      target.replaceChildren(shown);
    });
  }

  function render(data) {
    var cores = function (v) { return (Math.round(v * 100) / 100) + " " + label("cores"); };
    var percent = function (v) { return Math.round(v) + "%"; };
    var sampled = data.tasks.some(function (task) { return task.t.length > 0; });
    var first = Infinity, last = -Infinity;
    data.tasks.forEach(function (task) {
      if (task.t.length) {
        first = Math.min(first, task.t[0]);
        last = Math.max(last, task.t[task.t.length - 1]);
      }
    });
    spanMs = sampled ? last - first : 0;
    document.getElementById("job-usage-empty").classList.toggle("d-none", sampled);
    document.getElementById("job-usage-resolution").textContent = data.resolution_label || "";
    draw("usage-cpu", data, "cpu", function (task) { return task.request.cpu; }, cores);
    draw("usage-memory", data, "memory", function (task) { return task.request.memory_bytes; }, bytes);
    panel.querySelectorAll(".usage-gpu").forEach(function (el) { el.classList.toggle("d-none", !data.has_gpu); });
    if (data.has_gpu) {
      draw("usage-gpu", data, "gpu_util", null, percent, 100);
      draw("usage-gpu-memory", data, "gpu_memory", null, bytes);
    }
    showEfficiency(data.efficiency);
  }

  // An incremental answer's points appended to what is held (each series cut to its newest max_points).
  function merge(data) {
    if (!data.incremental || !held) {
      held = {};
    }
    data.tasks.forEach(function (task) {
      var before = held[task.name];
      if (before) {
        // The poll asks from a margin before the newest point: keep only what this task does not have yet.
        var last = before.t.length ? before.t[before.t.length - 1] : -Infinity;
        var fresh = 0;
        while (fresh < task.t.length && task.t[fresh] <= last) {
          fresh += 1;
        }
        KEYS.forEach(function (key) {
          task[key] = before[key].concat(task[key].slice(fresh)).slice(-data.max_points);
        });
      }
      held[task.name] = task;
    });
    return data;
  }

  function newest() {
    var last = 0;
    Object.keys(held || {}).forEach(function (name) {
      var t = held[name].t;
      if (t.length) {
        last = Math.max(last, t[t.length - 1]);
      }
    });
    return last;
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = ms > 0 ? setTimeout(load, ms) : null;
  }

  function load() {
    if (document.hidden) {
      schedule(1000);
      return;
    }
    // A margin before the newest point held: a task's sample written a little late is still fetched.
    var since = newest() - LATE_MS;
    fetch(since > 0 ? url + "?after=" + since : url, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (response) {
        if (!response.ok) {
          throw new Error(response.status);
        }
        return response.json();
      })
      .then(function (data) {
        delay = 0;
        render(merge(data));
        panel.setAttribute("data-loaded", "1");
        schedule(1000 * (data.poll_seconds || 0));
      })
      .catch(function () {
        delay = Math.min(MAX_DELAY_MS, delay ? delay * 2 : 5000);
        schedule(delay);
      });
  }

  load();
})();
