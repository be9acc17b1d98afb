/* fairpool dashboard: a little progressive enhancement; every page works without it. */
(function () {
  "use strict";

  // filter forms apply as soon as a choice changes
  document.addEventListener("change", function (e) {
    var el = e.target;
    if (el.matches && el.matches("form[data-autosubmit] select")) el.form.submit();
  });

  // destructive forms ask first
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      e.preventDefault();
    }
  });

  document.addEventListener("click", function (e) {
    var el = e.target.closest && e.target.closest("[data-back]");
    if (!el) return;
    e.preventDefault();
    if (history.length > 1) history.back(); else location.href = "/ui";
  });

  function scrollLogs() {
    document.querySelectorAll("pre.log").forEach(function (pre) {
      pre.scrollTop = pre.scrollHeight;
    });
  }
  scrollLogs();

  // auto-refresh: re-fetch this page and swap in its live regions
  var box = document.getElementById("autorefresh");
  if (!box || !document.querySelector("[data-refresh]")) return;
  var KEY = "fairpool.autorefresh";
  var stamp = document.getElementById("refreshed");
  box.checked = window.localStorage.getItem(KEY) !== "off";
  box.addEventListener("change", function () {
    window.localStorage.setItem(KEY, box.checked ? "on" : "off");
  });
  var busy = false;

  function refresh() {
    if (busy || !box.checked || document.hidden) return;
    busy = true;
    fetch(location.href, { credentials: "same-origin", headers: { "X-Fairpool-Refresh": "1" } })
      .then(function (r) {
        if (r.redirected && new URL(r.url).pathname === "/ui/login") {
          location.href = r.url;  // signed out meanwhile
          return null;
        }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        if (html === null) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-refresh]").forEach(function (el) {
          var fresh = doc.getElementById(el.id);
          if (fresh && fresh.innerHTML !== el.innerHTML) el.innerHTML = fresh.innerHTML;
        });
        scrollLogs();
        if (stamp) stamp.textContent = new Date().toLocaleTimeString();
      })
      .catch(function () { /* the server restarting: try again next time */ })
      .then(function () { busy = false; });
  }
  window.setInterval(refresh, 5000);
})();
