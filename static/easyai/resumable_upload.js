/* The file browser's upload form, for large files: each goes in chunks through the resumable uploads API
   (/api/v1/uploads/) with a progress bar, and a broken connection is retried from the offset the portal has.
   The upload's id is kept in localStorage per file and target, so choosing the same file again after a
   reload (or a crash) goes on where it stopped. Files below the threshold are sent whole (PUT to the files
   API). Without JavaScript the form posts as it always did. */
(function () {
  "use strict";
  var form = document.querySelector("form[data-resumable-uploads]");
  if (!form || !window.fetch || !window.XMLHttpRequest) {
    return;
  }
  var uploadsUrl = form.getAttribute("data-resumable-uploads");
  var filesUrl = form.getAttribute("data-files-api");
  var above = parseInt(form.getAttribute("data-resumable-above"), 10) || 8 * 1024 * 1024;
  var RETRIES = 8;
  var input = form.querySelector("input[type=file]");
  var space = form.querySelector("input[name=space]").value;
  var folder = form.querySelector("input[name=path]").value;
  var token = form.querySelector("input[name=csrfmiddlewaretoken]").value;

  var box = document.createElement("div");
  box.id = "upload-progress";
  box.className = "mt-2";
  box.hidden = true;
  box.innerHTML =
    '<div class="progress" role="progressbar" aria-label="Upload" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0">' +
    '<div class="progress-bar" style="width: 0%"></div></div><div class="form-text" data-upload-status></div>';
  form.insertAdjacentElement("afterend", box);
  var meter = box.querySelector(".progress");
  var bar = box.querySelector(".progress-bar");
  var status = box.querySelector("[data-upload-status]");

  function message(name, fallback) {
    return form.getAttribute("data-msg-" + name) || fallback;
  }

  function show(done, total, text) {
    var percent = total ? Math.min(100, Math.floor((done * 100) / total)) : 100;
    meter.setAttribute("aria-valuenow", String(percent));
    bar.style.width = percent + "%";
    bar.textContent = percent + "%";
    if (text !== undefined) {
      status.textContent = text;
    }
  }

  function target(name) {
    var parts = folder ? folder.split("/") : [];
    parts.push(name);
    return parts.join("/");
  }

  function keyOf(file) {
    return ["easyai-upload", space, target(file.name), file.size, file.lastModified].join(":");
  }

  function sleep(ms) {
    return new Promise(function (resolve) {
      window.setTimeout(resolve, ms);
    });
  }

  function headers(extra) {
    var result = { "X-CSRFToken": token, Accept: "application/json" };
    Object.keys(extra || {}).forEach(function (name) {
      result[name] = extra[name];
    });
    return result;
  }

  function failure(response) {
    return response
      .json()
      .catch(function () {
        return {};
      })
      .then(function (body) {
        var detail = body.detail || Object.values(body).flat().join(" ") || response.status + " " + response.statusText;
        var error = new Error(detail);
        error.status = response.status;
        throw error;
      });
  }

  /* One chunk by XMLHttpRequest: fetch cannot report how much of a request body has gone. */
  function sendChunk(url, offset, blob, onSent) {
    return new Promise(function (resolve, reject) {
      var request = new XMLHttpRequest();
      request.open("PATCH", url);
      request.setRequestHeader("Upload-Offset", String(offset));
      request.setRequestHeader("Content-Type", "application/offset+octet-stream");
      request.setRequestHeader("X-CSRFToken", token);
      request.setRequestHeader("Accept", "application/json");
      request.upload.onprogress = function (event) {
        onSent(event.loaded);
      };
      request.onload = function () {
        var body = {};
        try {
          body = JSON.parse(request.responseText);
        } catch (ignored) {
          body = {};
        }
        resolve({ status: request.status, body: body });
      };
      request.onerror = function () {
        reject(new Error("The connection broke off."));
      };
      request.send(blob);
    });
  }

  function portalOffset(url) {
    return fetch(url, { method: "GET", headers: headers(), credentials: "same-origin" }).then(function (response) {
      return response.ok ? response.json() : failure(response);
    });
  }

  function open(file) {
    var kept = window.localStorage.getItem(keyOf(file));
    var resumed = kept
      ? portalOffset(kept).then(
          function (upload) {
            return upload.state === "receiving" ? upload : null;
          },
          function () {
            return null; // gone (expired, cancelled): start again
          }
        )
      : Promise.resolve(null);
    return resumed.then(function (upload) {
      if (upload) {
        return upload;
      }
      return fetch(uploadsUrl, {
        method: "POST",
        headers: headers({ "Content-Type": "application/json" }),
        credentials: "same-origin",
        body: JSON.stringify({ space: space, path: target(file.name), size: file.size }),
      }).then(function (response) {
        return response.ok ? response.json() : failure(response);
      });
    });
  }

  function chunked(file, label) {
    return open(file).then(function (upload) {
      window.localStorage.setItem(keyOf(file), upload.url);
      var chunk = upload.chunk_size || 8 * 1024 * 1024;
      var offset = upload.offset;
      var failures = 0;
      if (offset > 0) {
        show(offset, file.size, label + ": " + message("resuming", "resuming where the last try stopped"));
      }
      function next() {
        var end = Math.min(offset + chunk, file.size);
        return sendChunk(upload.url, offset, file.slice(offset, end), function (sent) {
          show(offset + sent, file.size);
        })
          .then(function (answer) {
            if (answer.status === 200) {
              failures = 0;
              offset = answer.body.offset;
              show(offset, file.size, label + ": " + offset + " / " + file.size + " bytes");
              return answer.body.state === "complete" ? null : next();
            }
            if (answer.status === 409 && typeof answer.body.offset === "number") {
              offset = answer.body.offset; // the portal is elsewhere: go on from its offset
              return next();
            }
            if (answer.status < 500) {
              var error = new Error(answer.body.detail || Object.values(answer.body).flat().join(" ") || String(answer.status));
              error.final = true;
              throw error;
            }
            throw new Error("The portal answered " + answer.status + ".");
          })
          .catch(function (error) {
            if (error.final || failures >= RETRIES) {
              throw error;
            }
            failures += 1;
            show(offset, file.size, label + ": " + message("retrying", "connection lost, retrying from the portal's offset"));
            return sleep(Math.min(500 * Math.pow(2, failures - 1), 10000))
              .then(function () {
                return portalOffset(upload.url);
              })
              .then(function (state) {
                offset = state.offset;
                return state.state === "complete" ? null : next();
              }, next);
          });
      }
      return next().then(function () {
        window.localStorage.removeItem(keyOf(file));
      });
    });
  }

  function whole(file) {
    var url = filesUrl + target(file.name).split("/").map(encodeURIComponent).join("/");
    return fetch(url, {
      method: "PUT",
      headers: headers({ "Content-Type": "application/octet-stream" }),
      credentials: "same-origin",
      body: file,
    }).then(function (response) {
      return response.ok ? response.json() : failure(response);
    });
  }

  form.addEventListener("submit", function (event) {
    var files = Array.prototype.slice.call(input.files || []);
    if (!files.some(function (file) {
      return file.size > above;
    })) {
      return; // nothing large: the plain form post
    }
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    box.hidden = false;
    box.classList.remove("text-danger");
    var total = files.length;
    files
      .reduce(function (previous, file, index) {
        return previous.then(function () {
          var label = file.name + (total > 1 ? " (" + (index + 1) + "/" + total + ")" : "");
          show(0, file.size, label);
          return file.size > above ? chunked(file, label) : whole(file);
        });
      }, Promise.resolve())
      .then(function () {
        show(1, 1, message("done", "Uploaded."));
        box.setAttribute("data-upload-done", "");
        window.setTimeout(function () {
          window.location.reload();
        }, 600);
      })
      .catch(function (error) {
        status.textContent = error.message;
        box.classList.add("text-danger");
        button.disabled = false;
      });
  });
})();
