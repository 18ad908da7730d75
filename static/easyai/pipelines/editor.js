/* The pipeline editor: the YAML is checked as you type (a debounced POST to the validate view) and the DAG
 * beside it is drawn again from the normalized steps; problems are listed by their path. While the text has
 * problems the last good graph stays, faded. */
(function () {
  "use strict";

  var form = document.getElementById("pipeline-editor");
  if (!form) {
    return;
  }
  var source = form.querySelector("textarea[name=source]");
  var container = document.getElementById("pipeline-graph");
  var problems = document.getElementById("spec-problems");
  var status = document.getElementById("spec-status");
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var url = form.getAttribute("data-validate-url");
  var DEBOUNCE_MS = 400;
  var sequence = 0; // an answer to an older request is dropped: the user has typed since
  var timer = null;
  var text = function (name) {
    return status.getAttribute("data-" + name) || "";
  };

  function showProblems(errors) {
    problems.textContent = "";
    var paths = Object.keys(errors || {});
    if (!paths.length) {
      problems.classList.add("d-none");
      return;
    }
    var list = document.createElement("ul");
    list.className = "mb-0 ps-3";
    paths.forEach(function (path) {
      errors[path].forEach(function (message) {
        var item = document.createElement("li");
        item.setAttribute("data-path", path);
        var code = document.createElement("code");
        code.textContent = path;
        item.appendChild(code);
        item.appendChild(document.createTextNode(" " + message));
        list.appendChild(item);
      });
    });
    problems.appendChild(list);
    problems.classList.remove("d-none");
  }

  function setStatus(kind, message) {
    status.textContent = message;
    status.className = "small " + (kind === "ok" ? "text-success" : kind === "bad" ? "text-danger" : "text-muted");
    status.setAttribute("data-state", kind);
  }

  function check() {
    var mine = ++sequence;
    var body = new URLSearchParams();
    body.append("source", source.value);
    body.append("csrfmiddlewaretoken", csrf);
    setStatus("checking", text("checking"));
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, Accept: "application/json" },
      body: body
    })
      .then(function (response) {
        return response.json();
      })
      .then(function (answer) {
        if (mine !== sequence) {
          return;
        }
        if (answer.ok) {
          showProblems({});
          container.classList.remove("stale");
          window.EasyAIPipelineGraph.draw(container, answer.graph);
          setStatus("ok", text("valid").replace("{n}", String(answer.steps.length)));
        } else {
          showProblems(answer.errors);
          container.classList.add("stale");
          var count = Object.keys(answer.errors || {}).length;
          setStatus("bad", text("problems").replace("{n}", String(count)));
        }
      })
      .catch(function () {
        if (mine === sequence) {
          setStatus("bad", text("unreachable"));
        }
      });
  }

  source.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(check, DEBOUNCE_MS);
  });
  // Tab indents (two spaces), as YAML wants, instead of leaving the editor.
  source.addEventListener("keydown", function (event) {
    if (event.key !== "Tab" || event.shiftKey || event.ctrlKey || event.altKey || event.metaKey) {
      return;
    }
    event.preventDefault();
    var start = source.selectionStart;
    source.setRangeText("  ", start, source.selectionEnd, "end");
    source.dispatchEvent(new Event("input"));
  });

  var initial = document.getElementById("pipeline-graph-data");
  if (initial) {
    window.EasyAIPipelineGraph.draw(container, JSON.parse(initial.textContent));
  }
  check();
})();
