/* Apps list: while an app is starting, reload now and then so its state appears (paused while the tab is
 * hidden). The app's own page does not reload: its run's log follows live there. */
(function () {
  "use strict";
  var INTERVAL_MS = 5000;
  if (!document.querySelector('#app-cards [data-app-state="starting"]')) {
    return;
  }
  window.setInterval(function () {
    if (!document.hidden) {
      window.location.reload();
    }
  }, INTERVAL_MS);
})();
