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

// Copy buttons (data-copy="ID" of the element whose text to copy): hidden
// in the markup, shown only here, since without JavaScript the value is
// plain selectable text. The button says data-copied for a moment after.
document.querySelectorAll("button[data-copy]").forEach(function (btn) {
  var el = document.getElementById(btn.getAttribute("data-copy"));
  if (!el) return;
  var label = btn.textContent;
  var done = function () {
    btn.textContent = btn.getAttribute("data-copied") || label;
    setTimeout(function () { btn.textContent = label; }, 1500);
  };
  var fallback = function () {
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    try { if (document.execCommand("copy")) done(); } catch (e) {}
  };
  btn.hidden = false;
  btn.addEventListener("click", function () {
    var text = el.textContent.trim();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, fallback);
    } else {
      fallback();
    }
  });
});
