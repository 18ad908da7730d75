/* Job pages: state badges that follow the jobs without a reload, and confirmations for actions.
 *
 * Rows (or the job page's header) carry data-job-id and hold a badge with data-job-state; the
 * closest data-states-url answers {"jobs": {id: {state, label}}} for the ids asked. Polling stops
 * once every job on the page has ended, and pauses while the tab is hidden.
 */
(function () {
  "use strict";

  var FINAL = ["success", "failed", "stopped"];
  var INTERVAL_MS = 3000;
  var MAX_INTERVAL_MS = 60000;

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });

  var holders = Array.prototype.slice.call(document.querySelectorAll("[data-job-id]")).filter(function (el) {
    return el.querySelector("[data-job-state]") && el.closest("[data-states-url]");
  });
  if (!holders.length) {
    return;
  }
  var url = holders[0].closest("[data-states-url]").getAttribute("data-states-url");
  var delay = INTERVAL_MS;

  function badgeOf(holder) {
    return holder.querySelector("[data-job-state]");
  }

  function activeHolders() {
    return holders.filter(function (holder) {
      return FINAL.indexOf(badgeOf(holder).getAttribute("data-job-state")) === -1;
    });
  }

  function show(holder, state, label) {
    var badge = badgeOf(holder);
    if (badge.getAttribute("data-job-state") === state) {
      return;
    }
    badge.className = badge.className.replace(/\bstate-[a-z]+\b/g, "").trim() + " state-" + state;
    badge.setAttribute("data-job-state", state);
    badge.textContent = label;
    // The job page's tasks and events are rendered by the server: offer a reload rather than rebuild them.
    if (holder.id === "job-header") {
      var notice = document.getElementById("job-changed");
      if (notice) {
        notice.classList.remove("d-none");
      }
    }
  }

  function poll() {
    var active = activeHolders();
    if (!active.length) {
      return;
    }
    if (document.hidden) {
      window.setTimeout(poll, delay);
      return;
    }
    var query = active.map(function (holder) {
      return "id=" + encodeURIComponent(holder.getAttribute("data-job-id"));
    }).join("&");
    fetch(url + "?" + query, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error(String(response.status));
        }
        return response.json();
      })
      .then(function (body) {
        active.forEach(function (holder) {
          var job = body.jobs[holder.getAttribute("data-job-id")];
          if (job) {
            show(holder, job.state, job.label);
          }
        });
        delay = INTERVAL_MS;
      })
      .catch(function () {
        // The server is restarting or the session ended: ask less often instead of hammering it.
        delay = Math.min(delay * 2, MAX_INTERVAL_MS);
      })
      .then(function () {
        window.setTimeout(poll, delay);
      });
  }

  window.setTimeout(poll, INTERVAL_MS);
})();
