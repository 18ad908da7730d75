/* Every page: selects marked data-autosubmit (the team and language switches) submit their form on change.
 * Kept out of the templates: the Content-Security-Policy runs scripts from the portal's static files only. */
(function () {
  "use strict";
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () {
      select.form.submit();
    });
  });
})();
