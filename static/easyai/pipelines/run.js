/* A run's page: its DAG coloured by step state, polled from state.json every 2 s while the run is active.
 *
 * Clicking a step opens its job's page (the latest attempt); a foreach step's item jobs, or a step that has no
 * job (waiting, skipped, cached), are listed in the side panel instead. The steps table's badges and job links
 * follow the same answers; when the run ends the page is loaded again, for its outputs and buttons.
 * Also drawn on a pipeline's and a version's page (no state there: a click does nothing). */
(function () {
  "use strict";

  var container = document.getElementById("pipeline-graph");
  var graphData = document.getElementById("pipeline-graph-data");
  if (!container || !graphData) {
    return;
  }
  var stateData = document.getElementById("run-state-data");
  var panel = document.getElementById("step-panel");
  var POLL_MS = 2000;
  var cy = window.EasyAIPipelineGraph.draw(container, JSON.parse(graphData.textContent));
  if (!stateData) {
    return;
  }
  var state = JSON.parse(stateData.textContent);
  var url = container.getAttribute("data-state-url");

  function jobLink(job, text) {
    var link = document.createElement("a");
    link.href = job.url;
    link.className = "font-monospace";
    link.textContent = text || job.id;
    return link;
  }

  function showPanel(name) {
    var step = state.steps[name];
    if (!panel || !step) {
      return;
    }
    panel.querySelector("[data-panel=name]").textContent = name;
    var badge = panel.querySelector("[data-panel=state]");
    badge.textContent = step.label;
    badge.className = "badge step-state-" + step.state;
    panel.querySelector("[data-panel=message]").textContent = step.message || "";
    var list = panel.querySelector("[data-panel=jobs]");
    list.textContent = "";
    step.jobs.forEach(function (job) {
      var item = document.createElement("li");
      item.setAttribute("data-item", String(job.item));
      if (job.url) {
        var label = step.foreach ? "#" + job.item + " " + job.id : job.id;
        item.appendChild(jobLink(job, label));
      }
      var note = document.createElement("span");
      note.className = "text-muted small ms-2";
      note.textContent = (job.label || job.state) + (job.attempt > 1 ? " · " + panel.getAttribute("data-attempt") + " " + job.attempt : "");
      item.appendChild(note);
      list.appendChild(item);
    });
    panel.querySelector("[data-panel=none]").classList.toggle("d-none", step.jobs.length > 0);
    panel.classList.remove("d-none");
  }

  function onTap(name) {
    var step = state.steps[name];
    if (!step) {
      return;
    }
    if (!step.foreach && step.jobs.length === 1 && step.jobs[0].url) {
      window.location.assign(step.jobs[0].url);
      return;
    }
    showPanel(name);
  }
  container.easyaiOnTap = onTap;

  function apply() {
    var states = {};
    Object.keys(state.steps).forEach(function (name) {
      var step = state.steps[name];
      states[name] = step.state;
      var row = document.querySelector('tr[data-step="' + CSS.escape(name) + '"]');
      if (!row) {
        return;
      }
      row.setAttribute("data-step-state", step.state);
      var badge = row.querySelector(".step-state");
      badge.textContent = step.label;
      badge.className = "badge step-state step-state-" + step.state;
      var jobs = row.querySelector(".step-jobs");
      jobs.textContent = "";
      step.jobs.forEach(function (job, index) {
        if (!job.url) {
          return;
        }
        if (index) {
          jobs.appendChild(document.createTextNode(" "));
        }
        jobs.appendChild(jobLink(job));
      });
      row.querySelector(".step-message").textContent = step.message || "";
    });
    window.EasyAIPipelineGraph.setStates(cy, states);
    var runBadge = document.getElementById("run-state");
    runBadge.textContent = state.label;
    runBadge.className = "badge run-state-" + state.state;
    runBadge.setAttribute("data-run-state", state.state);
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.json();
      })
      .then(function (answer) {
        state = answer;
        apply();
        if (state.active) {
          window.setTimeout(poll, POLL_MS);
        } else {
          window.location.reload(); // its outputs and buttons, as they are now
        }
      })
      .catch(function () {
        window.setTimeout(poll, POLL_MS * 3);
      });
  }

  apply();
  if (state.active) {
    window.setTimeout(poll, POLL_MS);
  }
})();
