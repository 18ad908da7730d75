/* Notebooks page: while a notebook is starting, reload now and then so its state and Open button appear.
 * Pauses while the tab is hidden, and never while the create form is being filled in. */
(function () {
  "use strict";
  var INTERVAL_MS = 4000;
  if (!document.querySelector('[data-notebook-state="starting"]')) {
    return;
  }
  var form = document.getElementById("notebook-create");
  var typing = false;
  if (form) {
    form.addEventListener("input", function () { typing = true; });
  }
  window.setInterval(function () {
    if (!document.hidden && !typing) {
      window.location.reload();
    }
  }, INTERVAL_MS);
})();
