// The database outage page (templates/503.html): ask /healthz every few seconds and reload the
// page once the database answers again (the broker's state does not matter to a page). The page
// is loaded again with a GET of its link, so a form that met the outage is not sent twice.
(function () {
  "use strict";
  var card = document.querySelector("[data-outage-retry]");
  if (!card) return;
  var seconds = Math.max(2, parseInt(card.getAttribute("data-outage-retry"), 10) || 5);
  var state = card.querySelector("[data-outage-state]");

  function check() {
    fetch("/healthz", { cache: "no-store", credentials: "same-origin" })
      .then(function (answer) { return answer.json(); })
      .then(function (health) {
        if (health.database === "ok") {
          state.textContent = "The database is back: loading the page…";
          window.location.replace(card.querySelector("[data-outage-again]").href);
          return;
        }
        later();
      })
      .catch(later);
  }
  function later() {
    var now = new Date();
    state.textContent = "Still unreachable at " + now.toLocaleTimeString() +
      ". Checking again every " + seconds + " seconds.";
    setTimeout(check, seconds * 1000);
  }
  setTimeout(check, seconds * 1000);
})();
