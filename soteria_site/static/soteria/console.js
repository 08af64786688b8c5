/* Soteria's console: the one script. Progressive enhancement only: every page works without it.
   An element with data-poll="URL" is replaced every data-poll-seconds by the HTML fragment
   that URL answers (the Activity page's "Running now"), while the page is visible. */
(function () {
  "use strict";
  function poll(el) {
    var seconds = Math.max(parseInt(el.getAttribute("data-poll-seconds"), 10) || 5, 2);
    function tick() {
      if (document.hidden) { return; }
      fetch(el.getAttribute("data-poll"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
        .then(function (html) {
          var box = document.createElement("div");
          box.innerHTML = html;
          var fresh = box.querySelector("[data-poll]");
          if (fresh) { el.innerHTML = fresh.innerHTML; el.setAttribute("data-polled", "1"); }
        })
        .catch(function () { el.setAttribute("data-poll-error", "1"); });
    }
    window.setInterval(tick, seconds * 1000);
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(poll);
  });
}());
