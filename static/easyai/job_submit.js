/* The submit page: the simple form and the YAML editor follow each other.
 *
 * Editing a form field asks the server for the YAML of the form (form-to-yaml); editing the
 * YAML asks for the form's fields (yaml-to-form). The hidden "source" field tells the server
 * which side was edited last, so what is submitted is what the user last touched. When the
 * YAML holds more than the form can show, the form is made read-only so editing it cannot
 * overwrite the YAML.
 */
(function () {
  "use strict";

  var form = document.getElementById("job-submit-form");
  if (!form) {
    return;
  }
  var editor = document.getElementById("spec-yaml");
  var fieldset = document.getElementById("simple-form");
  var source = document.getElementById("spec-source");
  var status = document.getElementById("sync-status");
  var liveErrors = document.getElementById("spec-live-errors");
  var note = document.getElementById("form-note");
  var noteText = document.getElementById("form-note-text");
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var DEBOUNCE_MS = 400;
  var INDENT = "  ";
  var sequence = 0; // answers to older requests are dropped: the user has typed since
  var timer = null;

  function fields() {
    return Array.prototype.slice.call(fieldset.querySelectorAll("input[name], select[name], textarea[name]"));
  }

  function post(url, params) {
    params.append("csrfmiddlewaretoken", csrf);
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf, Accept: "application/json" },
      body: params
    }).then(function (response) {
      return response.json().then(function (body) {
        return { ok: response.ok, body: body };
      });
    });
  }

  function setStatus(text) {
    status.textContent = text || "";
  }

  function showLiveErrors(errors) {
    liveErrors.textContent = "";
    var paths = errors ? Object.keys(errors) : [];
    if (!paths.length) {
      liveErrors.classList.add("d-none");
      return;
    }
    var list = document.createElement("ul");
    list.className = "mb-0 ps-3";
    paths.forEach(function (path) {
      errors[path].forEach(function (message) {
        var item = document.createElement("li");
        var code = document.createElement("code");
        code.textContent = path;
        item.appendChild(code);
        item.appendChild(document.createTextNode(" " + message));
        list.appendChild(item);
      });
    });
    liveErrors.appendChild(list);
    liveErrors.classList.remove("d-none");
  }

  function setFormEnabled(enabled, message) {
    fieldset.disabled = !enabled;
    noteText.textContent = message || "";
    note.classList.toggle("d-none", enabled);
  }

  function setField(element, value) {
    if (element.tagName === "SELECT" && value && !element.querySelector("option[value='" + CSS.escape(value) + "']")) {
      // A value the page did not list (a cluster disabled since): show it rather than silently pick another.
      var option = document.createElement("option");
      option.value = value;
      option.textContent = value;
      element.appendChild(option);
    }
    element.value = value;
  }

  function formToYaml() {
    var mine = ++sequence;
    var params = new URLSearchParams();
    fields().forEach(function (element) {
      params.append(element.name, element.value);
    });
    setStatus(form.getAttribute("data-msg-syncing"));
    post(form.getAttribute("data-form-to-yaml"), params).then(function (answer) {
      if (mine !== sequence) {
        return;
      }
      setStatus("");
      if (answer.ok && typeof answer.body.yaml === "string") {
        editor.value = answer.body.yaml;
        showLiveErrors(null);
      }
    }).catch(function () {
      setStatus(form.getAttribute("data-msg-failed"));
    });
  }

  function yamlToForm() {
    var mine = ++sequence;
    var params = new URLSearchParams();
    params.append("yaml", editor.value);
    setStatus(form.getAttribute("data-msg-syncing"));
    post(form.getAttribute("data-yaml-to-form"), params).then(function (answer) {
      if (mine !== sequence) {
        return;
      }
      setStatus("");
      var body = answer.body;
      if (!answer.ok) {
        showLiveErrors(body.errors);
        return;
      }
      showLiveErrors(null);
      if (!body.simple) {
        setFormEnabled(false, body.message);
        return;
      }
      setFormEnabled(true, "");
      fields().forEach(function (element) {
        if (Object.prototype.hasOwnProperty.call(body.fields, element.name)) {
          setField(element, body.fields[element.name]);
        }
      });
    }).catch(function () {
      setStatus(form.getAttribute("data-msg-failed"));
    });
  }

  function later(action) {
    window.clearTimeout(timer);
    timer = window.setTimeout(action, DEBOUNCE_MS);
  }

  fieldset.addEventListener("input", function () {
    source.value = "form";
    later(formToYaml);
  });
  fieldset.addEventListener("change", function () {
    source.value = "form";
    later(formToYaml);
  });
  editor.addEventListener("input", function () {
    source.value = "yaml";
    later(yamlToForm);
  });

  // Tab indents (Shift+Tab outdents) the selected lines; Escape then Tab leaves the editor, for keyboard users.
  var escaped = false;
  editor.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      escaped = true;
      return;
    }
    if (event.key !== "Tab" || escaped || event.ctrlKey || event.altKey || event.metaKey) {
      escaped = false;
      return;
    }
    event.preventDefault();
    var text = editor.value;
    var start = editor.selectionStart;
    var end = editor.selectionEnd;
    var lineStart = text.lastIndexOf("\n", start - 1) + 1;
    if (!event.shiftKey && start === end) {
      replace(start, end, INDENT, start + INDENT.length, start + INDENT.length);
      return;
    }
    var block = text.slice(lineStart, end);
    var lines = block.split("\n");
    var changed = lines.map(function (line) {
      if (!event.shiftKey) {
        return INDENT + line;
      }
      return line.replace(/^ {1,2}/, "");
    });
    var replacement = changed.join("\n");
    var firstShift = changed[0].length - lines[0].length;
    replace(lineStart, end, replacement, Math.max(lineStart, start + firstShift), lineStart + replacement.length);
  });

  function replace(from, to, text, selectFrom, selectTo) {
    editor.focus();
    editor.setSelectionRange(from, to);
    // insertText keeps the browser's undo history; setRangeText is the fallback where it is gone.
    var done = false;
    try {
      done = document.execCommand("insertText", false, text);
    } catch (error) {
      done = false;
    }
    if (!done) {
      editor.setRangeText(text, from, to, "end");
      editor.dispatchEvent(new Event("input", { bubbles: true }));
    }
    editor.setSelectionRange(selectFrom, selectTo);
  }

  editor.addEventListener("blur", function () {
    escaped = false;
  });
})();

/* Registered images: the image field's suggestions follow the framework picked (free text stays allowed). */
(function () {
  "use strict";

  var list = document.getElementById("image-names");
  var framework = document.getElementById("id_framework");
  if (!list || !framework) {
    return;
  }
  function filter() {
    Array.prototype.forEach.call(list.options, function (option) {
      var suits = (option.getAttribute("data-frameworks") || "").split(" ").filter(Boolean);
      option.disabled = suits.length > 0 && suits.indexOf(framework.value) === -1;
    });
  }
  framework.addEventListener("change", filter);
  filter();
})();
