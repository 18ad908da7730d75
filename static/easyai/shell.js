/* The shell tab: xterm.js joined to a task's shell socket (docs/websockets.md).
 *
 * Terminal bytes travel as binary frames both ways (keystrokes, Ctrl-C included, and the shell's output,
 * which xterm decodes itself even when a character is split between frames); control travels as JSON text
 * frames: {"type": "resize"} from here, {"type": "exit"} and {"type": "error"} from the server. A shell is
 * not resumed after a dropped connection: its session ended with it, so the tab offers a new one.
 */
(function () {
  "use strict";

  var panel = document.querySelector("[data-shell-panel]");
  if (!panel || !window.Terminal || !window.FitAddon) {
    return;
  }
  var box = panel.querySelector("[data-shell-terminal]");
  var status = panel.querySelector("[data-shell-status]");
  var taskSelect = panel.querySelector("[data-shell-task]");
  var openButton = panel.querySelector("[data-shell-open]");
  var closeButton = panel.querySelector("[data-shell-close]");
  var encoder = new TextEncoder();
  var term = null;
  var fit = null;
  var ws = null;
  var opened = false;

  function say(text, kind) {
    status.textContent = text;
    status.setAttribute("data-state", kind);
  }

  function text(name) {
    return status.getAttribute("data-text-" + name) || name;
  }

  function send(data) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(data);
    }
  }

  function sendSize() {
    if (term) {
      send(JSON.stringify({ type: "resize", rows: term.rows, cols: term.cols }));
    }
  }

  function terminal() {
    if (term) {
      return term;
    }
    term = new window.Terminal({ cursorBlink: true, fontSize: 13, scrollback: 5000, convertEol: false });
    fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(box);
    term.onData(function (data) {
      send(encoder.encode(data));
    });
    term.onBinary(function (data) {
      // Mouse reports and the like: one byte per character.
      var bytes = new Uint8Array(data.length);
      for (var i = 0; i < data.length; i += 1) {
        bytes[i] = data.charCodeAt(i) & 255;
      }
      send(bytes);
    });
    term.onResize(sendSize);
    window.addEventListener("resize", function () {
      if (panel.classList.contains("active")) {
        fit.fit();
      }
    });
    return term;
  }

  function close() {
    if (ws) {
      ws.onclose = null;
      ws.close(1000);
      ws = null;
    }
    openButton.disabled = false;
    closeButton.disabled = true;
  }

  function open() {
    close();
    terminal().reset();
    fit.fit();
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var path = panel.getAttribute("data-shell-base") + encodeURIComponent(taskSelect.value) + "/shell/";
    var socket = new WebSocket(scheme + window.location.host + path);
    socket.binaryType = "arraybuffer";
    ws = socket;
    openButton.disabled = true;
    closeButton.disabled = false;
    say("", "connecting");
    var lastError = "";
    socket.onopen = function () {
      say(text("connected"), "connected");
      sendSize();
      term.focus();
    };
    socket.onmessage = function (event) {
      if (typeof event.data !== "string") {
        term.write(new Uint8Array(event.data));
        return;
      }
      var frame = JSON.parse(event.data);
      if (frame.type === "exit") {
        var code = frame.code === null || frame.code === undefined ? "?" : frame.code;
        say(text("exit").replace("%s", code), "exited");
      } else if (frame.type === "error") {
        lastError = frame.reason;
        term.write("\r\n\x1b[31m" + frame.reason + "\x1b[0m\r\n");
      }
    };
    socket.onclose = function (event) {
      if (ws === socket) {
        ws = null;
      }
      openButton.disabled = false;
      closeButton.disabled = true;
      if (status.getAttribute("data-state") !== "exited") {
        say(lastError || event.reason || text("closed"), "closed");
      }
    };
  }

  openButton.addEventListener("click", open);
  closeButton.addEventListener("click", function () {
    close();
    say(text("closed"), "closed");
  });
  var tab = document.querySelector('[data-bs-target="#' + panel.id + '"]');
  if (tab) {
    tab.addEventListener("shown.bs.tab", function () {
      if (!opened) {
        opened = true; // the first visit opens a shell; later ones keep the one there is
        open();
      } else if (fit) {
        fit.fit();
        term.focus();
      }
    });
  }
})();
