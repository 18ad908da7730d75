// The service page's "Try it": one call through the service's route, with the page's session.
(function () {
  "use strict";
  const form = document.getElementById("try-form");
  if (!form) return;
  const answer = document.getElementById("try-answer");
  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    let body;
    try {
      body = JSON.parse(form.elements.body.value);
    } catch (error) {
      answer.textContent = "The body is not JSON: " + error.message;
      return;
    }
    answer.textContent = "…";
    let response;
    try {
      response = await fetch(form.dataset.url, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          "X-CSRFToken": form.elements.csrfmiddlewaretoken.value,
        },
        body: JSON.stringify({ protocol: form.elements.protocol.value, body: body }),
      });
    } catch (error) {
      // The portal could not be reached (offline, restarting): say so rather than wait forever.
      answer.textContent = "The call could not be sent: " + error.message;
      return;
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      answer.textContent = response.status + " " + (data.detail || JSON.stringify(data));
      return;
    }
    answer.textContent =
      "HTTP " + data.status + " · revision " + data.revision + " · " + data.latency_ms + " ms\n" +
      JSON.stringify(data.body, null, 2);
  });
})();
