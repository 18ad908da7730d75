/* The home page's usage chart: the team's CPU cores and memory in use, hour by hour over the last day.
 *
 * The figures come with the page (json_script #dashboard-usage-data: {t: [ms], cpu: [cores], memory_gib: [GiB]});
 * the canvas carries the labels, translated.
 */
(function () {
  "use strict";

  var canvas = document.getElementById("dashboard-usage-chart");
  var source = document.getElementById("dashboard-usage-data");
  if (!canvas || !source || typeof Chart === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);

  function hour(ms) {
    return new Date(ms).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", hourCycle: "h23"});
  }

  new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.t.map(hour),
      datasets: [
        {label: canvas.getAttribute("data-label-cpu"), data: data.cpu, backgroundColor: "#0d6efd", yAxisID: "cpu"},
        {
          label: canvas.getAttribute("data-label-memory"), data: data.memory_gib, type: "line",
          borderColor: "#198754", backgroundColor: "#198754", pointRadius: 0, yAxisID: "memory"
        }
      ]
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      interaction: {mode: "index", intersect: false},
      scales: {
        x: {ticks: {maxTicksLimit: 8}},
        cpu: {type: "linear", position: "left", beginAtZero: true},
        memory: {type: "linear", position: "right", beginAtZero: true, grid: {drawOnChartArea: false}}
      },
      plugins: {legend: {labels: {boxWidth: 12}}}
    }
  });
  canvas.setAttribute("data-drawn", "1");
})();
