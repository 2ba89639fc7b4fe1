// Progressive enhancement only: every page works without JavaScript.
// Elements with data-poll="URL" refresh their inner HTML from URL every 2s
// (used for live progress of running jobs). Destructive actions ask on a
// confirmation page rendered by the server (templates/confirm.go).
// All behaviour lives in this file: the Content-Security-Policy (script-src
// 'self') refuses inline <script> bodies and on*= handlers in the templates,
// and a test walks the templates to keep it so.
document.querySelectorAll("[data-poll]").forEach(function (el) {
  var url = el.getAttribute("data-poll");
  var tick = function () {
    fetch(url, { headers: { "Accept": "text/html" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) el.innerHTML = html; })
      .catch(function () {});
  };
  setInterval(tick, 2000);
});
