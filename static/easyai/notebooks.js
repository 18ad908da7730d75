/* Notebooks page: while a notebook is starting, reload now and then so its state and Open button appear.
 * Pauses while the tab is hidden, and never while the create form or a renew form is being filled in. */
(function () {
  "use strict";
  var INTERVAL_MS = 4000;
  if (!document.querySelector('[data-notebook-state="starting"]')) {
    return;
  }
  var typing = false;
  document.querySelectorAll("#notebook-create, form.notebook-renew").forEach(function (form) {
    form.addEventListener("input", function () { typing = true; });
  });
  window.setInterval(function () {
    if (!document.hidden && !typing) {
      window.location.reload();
    }
  }, INTERVAL_MS);
})();
