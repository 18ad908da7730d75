/* Task log panels: follow a task's log over its websocket (docs/websockets.md).
 *
 * Each [data-log-panel] connects when first shown. Frames carry the byte offset after their text; after a
 * dropped connection the panel reconnects with back-off and ?offset=<last offset>, so no line is shown twice
 * or lost. Follow keeps the view at the end; Pause freezes the view (text keeps arriving and shows on
 * Resume); Find searches the text loaded so far; Download fetches the whole log from the API.
 */
(function () {
  "use strict";

  var MAX_CHARS = 4000000; // past this the earliest text leaves the page (the download has it all)
  var FIRST_DELAY_MS = 500;
  var MAX_DELAY_MS = 15000;
  var FINAL_CODES = [4400, 4401, 4403, 4404]; // refusals: reconnecting would be refused again

  function fill(template, values) {
    var i = 0;
    return template.replace(/%s/g, function () {
      return String(values[i++]);
    });
  }

  function LogPanel(root) {
    this.root = root;
    this.view = root.querySelector("[data-log-view]");
    this.status = root.querySelector("[data-log-status]");
    this.followBox = root.querySelector("[data-log-follow]");
    this.pauseButton = root.querySelector("[data-log-pause]");
    this.matches = root.querySelector("[data-log-matches]");
    this.query = root.querySelector("[data-log-query]");
    this.path = root.getAttribute("data-log-socket");
    this.offset = null; // byte offset after the last text received; null until the server says where it starts
    this.ended = false;
    this.paused = false;
    this.held = []; // text received while paused
    this.heldChars = 0;
    this.chars = 0;
    this.trimmed = false;
    this.delay = FIRST_DELAY_MS;
    this.ws = null;
    this.findFrom = 0;
    this.started = false;
    this.bind();
  }

  LogPanel.prototype.text = function (name) {
    return this.status.getAttribute("data-text-" + name) || name;
  };

  LogPanel.prototype.setStatus = function (text, kind) {
    this.status.textContent = text;
    this.status.setAttribute("data-state", kind);
  };

  LogPanel.prototype.bind = function () {
    var panel = this;
    this.followBox.addEventListener("change", function () {
      if (panel.followBox.checked) {
        panel.scrollToEnd();
      }
    });
    this.view.addEventListener("scroll", function () {
      // Scrolling up to read stops following; coming back to the end starts it again.
      var atEnd = panel.view.scrollHeight - panel.view.scrollTop - panel.view.clientHeight < 4;
      if (panel.followBox.checked !== atEnd && !panel.autoScrolling) {
        panel.followBox.checked = atEnd;
      }
    });
    this.pauseButton.addEventListener("click", function () {
      panel.setPaused(!panel.paused);
    });
    this.root.querySelector("[data-log-end]").addEventListener("click", function () {
      panel.setPaused(false);
      panel.followBox.checked = true;
      panel.scrollToEnd();
    });
    this.root.querySelector("[data-log-find]").addEventListener("submit", function (event) {
      event.preventDefault();
      panel.find(panel.query.value);
    });
    this.query.addEventListener("input", function () {
      panel.findFrom = 0;
      panel.matches.textContent = "";
    });
  };

  LogPanel.prototype.start = function () {
    if (!this.started) {
      this.started = true;
      this.connect();
    }
  };

  LogPanel.prototype.connect = function () {
    var panel = this;
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + window.location.host + this.path + (this.offset === null ? "" : "?offset=" + this.offset);
    var ws = new WebSocket(url);
    this.ws = ws;
    this.setStatus(this.text("connecting"), "connecting");
    ws.onmessage = function (event) {
      var frame = JSON.parse(event.data);
      if (frame.type === "start") {
        if (panel.offset === null) {
          panel.offset = frame.offset;
        }
        panel.delay = FIRST_DELAY_MS;
        panel.setStatus(panel.paused ? fill(panel.text("paused"), [panel.heldChars]) : panel.text("live"), "live");
      } else if (frame.type === "log") {
        panel.offset = frame.offset;
        panel.receive(frame.data);
      } else if (frame.type === "end") {
        panel.ended = true;
        var what = frame.state + (frame.exit_code === null || frame.exit_code === undefined ? "" : " (" + frame.exit_code + ")");
        panel.setStatus(fill(panel.text("ended"), [what]), "ended");
      } else if (frame.type === "error") {
        panel.lastError = frame.reason;
      }
    };
    ws.onclose = function (event) {
      panel.ws = null;
      if (panel.ended) {
        return;
      }
      if (FINAL_CODES.indexOf(event.code) !== -1) {
        panel.setStatus(panel.lastError || event.reason || String(event.code), "refused");
        return;
      }
      // Dropped (a restart, a network change, a server error): resume from the last offset, less often each time.
      var wait = panel.delay * (0.75 + Math.random() * 0.5);
      panel.delay = Math.min(panel.delay * 2, MAX_DELAY_MS);
      panel.setStatus(fill(panel.text("reconnecting"), [Math.round(wait / 100) / 10]), "reconnecting");
      window.setTimeout(function () {
        panel.connect();
      }, wait);
    };
  };

  LogPanel.prototype.receive = function (text) {
    if (this.paused) {
      this.held.push(text);
      this.heldChars += text.length;
      this.setStatus(fill(this.text("paused"), [this.heldChars]), "paused");
      return;
    }
    this.render(text);
  };

  LogPanel.prototype.render = function (text) {
    if (!text) {
      return;
    }
    this.view.appendChild(document.createTextNode(text));
    this.chars += text.length;
    this.trim();
    if (this.followBox.checked) {
      this.scrollToEnd();
    }
  };

  LogPanel.prototype.trim = function () {
    if (this.chars <= MAX_CHARS) {
      return;
    }
    if (!this.trimmed) {
      this.trimmed = true;
      var marker = document.createElement("div");
      marker.className = "log-note";
      marker.textContent = this.text("trimmed");
      this.view.insertBefore(marker, this.view.firstChild);
    }
    var note = this.view.firstChild;
    while (this.chars > MAX_CHARS * 0.8 && note.nextSibling) {
      var node = note.nextSibling;
      this.chars -= node.textContent.length;
      this.view.removeChild(node);
    }
    this.findFrom = 0;
  };

  LogPanel.prototype.setPaused = function (paused) {
    this.paused = paused;
    this.pauseButton.setAttribute("aria-pressed", paused ? "true" : "false");
    this.pauseButton.textContent = this.pauseButton.getAttribute(paused ? "data-label-resume" : "data-label-pause");
    if (!paused) {
      var held = this.held.join("");
      this.held = [];
      this.heldChars = 0;
      this.render(held);
      if (!this.ended && this.ws) {
        this.setStatus(this.text("live"), "live");
      }
    } else {
      this.setStatus(fill(this.text("paused"), [0]), "paused");
    }
  };

  LogPanel.prototype.scrollToEnd = function () {
    this.autoScrolling = true;
    this.view.scrollTop = this.view.scrollHeight;
    var panel = this;
    window.requestAnimationFrame(function () {
      panel.autoScrolling = false;
    });
  };

  LogPanel.prototype.find = function (query) {
    if (!query) {
      return;
    }
    this.view.normalize(); // one text node after the note: offsets in the text are offsets in the node
    var node = this.view.lastChild;
    if (!node || node.nodeType !== Node.TEXT_NODE) {
      this.matches.textContent = this.text("nomatch");
      return;
    }
    var haystack = node.data.toLowerCase();
    var needle = query.toLowerCase();
    var at = haystack.indexOf(needle, this.findFrom);
    if (at === -1 && this.findFrom > 0) {
      at = haystack.indexOf(needle); // wrap around to the first match
    }
    if (at === -1) {
      this.matches.textContent = this.text("nomatch");
      return;
    }
    var count = 0;
    var index = 0;
    for (var i = haystack.indexOf(needle); i !== -1 && count < 10000; i = haystack.indexOf(needle, i + needle.length)) {
      count += 1;
      if (i === at) {
        index = count;
      }
    }
    this.findFrom = at + needle.length;
    this.matches.textContent = fill(this.text("matches"), [index, count]);
    this.followBox.checked = false;
    var range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + needle.length);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    var box = range.getBoundingClientRect();
    var viewBox = this.view.getBoundingClientRect();
    this.view.scrollTop += box.top - viewBox.top - this.view.clientHeight / 3;
  };

  var panels = [];
  document.querySelectorAll("[data-log-panel]").forEach(function (root) {
    var panel = new LogPanel(root);
    panels.push(panel);
    if (root.classList.contains("active")) {
      panel.start();
    }
  });
  document.querySelectorAll('[data-bs-toggle="tab"]').forEach(function (button) {
    button.addEventListener("shown.bs.tab", function () {
      panels.forEach(function (panel) {
        if ("#" + panel.root.id === button.getAttribute("data-bs-target")) {
          panel.start();
          if (panel.followBox.checked) {
            panel.scrollToEnd();
          }
        }
      });
    });
  });
})();
