/* critmin dashboard: small progressive enhancements; every view also works as plain links and forms. */
(function () {
  "use strict";
  // Controls marked data-autosubmit submit their form when changed (the form's GET keeps the state in the URL).
  document.querySelectorAll("[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { if (el.form) { el.form.requestSubmit ? el.form.requestSubmit() : el.form.submit(); } });
  });
  // A submitted form says the next page is being computed (a first view of new inputs runs the analysis).
  document.querySelectorAll("form.controls").forEach(function (form) {
    form.addEventListener("submit", function () {
      var busy = document.getElementById("busy");
      if (busy) { busy.hidden = false; }
      form.setAttribute("aria-busy", "true");
    });
  });
  window.addEventListener("pageshow", function () {   // back to a page kept by the browser: not busy any more
    var busy = document.getElementById("busy");
    if (busy) { busy.hidden = true; }
    document.querySelectorAll("form[aria-busy]").forEach(function (f) { f.removeAttribute("aria-busy"); });
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
