// Latchkey console: live updates and copy buttons. Served from the console
// itself (the Content-Security-Policy allows no inline script).
"use strict";
(function () {
  // Copy buttons: copy the text of the element they name.
  document.addEventListener("click", function (e) {
    var b = e.target.closest("button[data-copy]");
    if (!b) return;
    var el = document.getElementById(b.dataset.copy);
    if (!el || !navigator.clipboard) return;
    navigator.clipboard.writeText(el.textContent).then(function () {
      b.textContent = "Copied";
      setTimeout(function () { b.textContent = "Copy"; }, 2000);
    });
  });

  // New API client with a catalog: offer only the permissions of the
  // chosen scopes (the others are hidden and not sent).
  var toggles = document.querySelectorAll("input[data-scope-toggle]");
  function syncScopes() {
    toggles.forEach(function (t) {
      document.querySelectorAll("fieldset[data-scope=\"" + t.value + "\"]").forEach(function (fs) {
        fs.hidden = !t.checked;
        fs.disabled = !t.checked;
      });
    });
  }
  toggles.forEach(function (t) { t.addEventListener("change", syncScopes); });
  syncScopes();

  // Live region: re-read it when the cluster says something changed.
  var live = document.getElementById("live");
  if (!live || !live.dataset.events || !window.EventSource) return;
  var timer = null;
  function refresh() {
    fetch(live.dataset.live, { credentials: "same-origin", headers: { "Accept": "text/html" } }).then(function (r) {
      if (r.status === 404) {
        live.innerHTML = "<p class=\"problem\" role=\"alert\" id=\"gone\">This no longer exists: it was deleted.</p>";
        return null;
      }
      return r.ok ? r.text() : null;
    }).then(function (html) {
      if (!html) return;
      var doc = new DOMParser().parseFromString(html, "text/html");
      var next = doc.getElementById("live");
      if (next) live.innerHTML = next.innerHTML;
      live.dataset.refreshed = String(Date.now());
    }).catch(function () {});
  }
  var es = new EventSource(live.dataset.events);
  es.addEventListener("change", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  });
  es.addEventListener("problem", function () { es.close(); });
})();
