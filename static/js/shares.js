// Share links (templates/generations/share_panel.html, shares.html): Copy buttons, and the Share
// panel opened again on the new link after its form came back (#share-...). Without JavaScript
// the links are selectable in their read-only fields and the panel opens with a click.
(function () {
  "use strict";

  function copyFrom(button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) return;
    var done = function () {
      button.firstChild.nodeValue = "Copied";
      setTimeout(function () { button.firstChild.nodeValue = "Copy"; }, 2000);
    };
    var fallback = function () {
      field.focus();
      field.select();
      try {
        if (document.execCommand("copy")) done();
      } catch (e) { /* selected: the person copies it themself */ }
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, fallback);
    } else {
      fallback();
    }
  }

  function setUp(root) {
    root.querySelectorAll("[data-copy]").forEach(function (button) {
      button.hidden = false;
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (button) copyFrom(button);
    // A click outside an open Share panel closes it (it floats over the page's first cards).
    document.querySelectorAll("details[data-share-panel][open]").forEach(function (panel) {
      if (!panel.contains(event.target)) panel.open = false;
    });
  });
  // Escape closes the open Share panel the focus is in (or any, the focus being on the page),
  // giving focus back to its summary.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !event.target.closest) return;
    var panel = event.target.closest("details[data-share-panel][open]") ||
      (event.target === document.body && document.querySelector("details[data-share-panel][open]"));
    if (!panel) return;
    event.preventDefault();
    panel.open = false;
    var summary = panel.querySelector("summary");
    if (summary) summary.focus();
  });
  // A read-only link field selects itself whole when focused: one keystroke to copy.
  document.addEventListener("focusin", function (event) {
    if (event.target.matches && event.target.matches("[data-share-url]")) event.target.select();
  });
  document.addEventListener("htmx:afterSwap", function (event) { setUp(event.target); });

  document.addEventListener("DOMContentLoaded", function () { setUp(document); });
  // After the load (and the browser's own scroll to #share-...), so that nothing moves the
  // focus again: the panel open, its newest link focused and selected.
  window.addEventListener("load", function () {
    var id = decodeURIComponent(location.hash.slice(1));
    var panel = id && document.getElementById(id);
    if (!panel || !panel.hasAttribute("data-share-panel")) return;
    panel.open = true;
    var first = panel.querySelector("[data-share-url]");
    if (first) first.focus();
  });
})();
