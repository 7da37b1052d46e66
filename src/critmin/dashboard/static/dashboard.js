/* critmin dashboard: small progressive enhancements; every view also works as plain links and forms. */
(function () {
  "use strict";
  // Controls marked data-autosubmit submit their form when changed (the form's GET keeps the state in the URL).
  document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { if (el.form) { el.form.requestSubmit ? el.form.requestSubmit() : el.form.submit(); } });
  });
  // Range inputs show their value next to them.
  document.querySelectorAll("input[type=range][data-output]").forEach(function (el) {
    var out = document.getElementById(el.getAttribute("data-output"));
    if (!out) { return; }
    var show = function () { out.textContent = el.value; };
    el.addEventListener("input", show);
    show();
  });
})();
