/* The job page's hold countdown: the time left until data-held-until, counted down every second. */
(function () {
  "use strict";
  var holder = document.getElementById("job-hold");
  var out = document.getElementById("job-hold-countdown");
  if (!holder || !out) {
    return;
  }
  var until = Date.parse(holder.getAttribute("data-held-until"));
  if (isNaN(until)) {
    return;
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function tick() {
    var left = Math.floor((until - Date.now()) / 1000);
    if (left <= 0) {
      out.textContent = out.getAttribute("data-ended");
      return;
    }
    var hours = Math.floor(left / 3600);
    out.textContent = hours + ":" + pad(Math.floor((left % 3600) / 60)) + ":" + pad(left % 60);
    window.setTimeout(tick, 1000);
  }

  tick();
})();
