/* Usage page: the charts, drawn with the vendored Chart.js from the figures the page embeds (#usage-data,
 * json_script). Over time: cost as bars, core-hours and GPU-hours as lines on a second axis; by user: cost,
 * and core-hours used. */
(function () {
  "use strict";
  var source = document.getElementById("usage-data");
  if (!source || typeof window.Chart === "undefined") {
    return;
  }
  var data = JSON.parse(source.textContent);
  var labels = data.labels;
  var costLabel = data.currency ? labels.cost + " (" + data.currency + ")" : labels.cost;

  function column(rows, name) {
    return rows.map(function (row) { return row[name]; });
  }

  function draw(canvasId, rows, horizontal) {
    var canvas = document.getElementById(canvasId);
    if (!canvas) {
      return null;
    }
    var valueAxis = horizontal ? "x" : "y";
    var datasets = [
      {type: "bar", label: costLabel, data: column(rows, "cost"), backgroundColor: "rgba(13, 110, 253, 0.6)",
       yAxisID: horizontal ? undefined : "y", xAxisID: horizontal ? "x" : undefined},
      {type: horizontal ? "bar" : "line", label: labels.core_hours_used, data: column(rows, "core_hours_used"),
       borderColor: "#198754", backgroundColor: "rgba(25, 135, 84, 0.5)", pointRadius: 2,
       yAxisID: horizontal ? undefined : "y1", xAxisID: horizontal ? "x1" : undefined},
    ];
    if (!horizontal && rows.some(function (row) { return row.gpu_hours_requested > 0; })) {
      datasets.push({type: "line", label: labels.gpu_hours_requested, data: column(rows, "gpu_hours_requested"),
        borderColor: "#fd7e14", backgroundColor: "#fd7e14", pointRadius: 2, yAxisID: "y1"});
    }
    var scales = {};
    scales[valueAxis] = {beginAtZero: true, position: horizontal ? "top" : "left",
      title: {display: true, text: costLabel}};
    scales[valueAxis + "1"] = {beginAtZero: true, position: horizontal ? "bottom" : "right",
      grid: {drawOnChartArea: false}, title: {display: true, text: labels.hours}};
    return new window.Chart(canvas, {
      data: {labels: column(rows, "label"), datasets: datasets},
      options: {
        indexAxis: horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: {mode: "index", intersect: false},
        scales: scales,
        plugins: {legend: {position: "bottom"}},
      },
    });
  }

  window.easyaiUsageCharts = {
    time: draw("usage-time-chart", data.time, false),
    users: draw("usage-user-chart", data.users, true),
  };
})();
