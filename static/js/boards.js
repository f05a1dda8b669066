// Boards (issue 10 #2): a video's board menu (templates/generations/board_parts.html#pick)
// closes with Escape, giving focus back to its Boards button, and when a click lands outside
// it. Closing is the menu's own toggle button (an htmx GET that swaps the closed control in);
// without JavaScript the menu is a page of its own and none of this is needed.
(function () {
  "use strict";

  function toggleOf(pick) {
    return pick.querySelector(".board-btn[aria-expanded='true']");
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !event.target.closest) return;
    // After "Make it and add" the menu was swapped with the focused button in it: the focus is
    // on the body then, and Escape still closes the open menu.
    var pick = event.target.closest(".board-pick.is-open") ||
      (event.target === document.body && document.querySelector(".board-pick.is-open"));
    var button = pick && toggleOf(pick);
    if (!button) return;
    event.preventDefault();
    event.stopPropagation();
    button.focus(); // htmx gives focus back to the element of the same id after the swap
    button.click();
  });

  document.addEventListener("click", function (event) {
    document.querySelectorAll(".board-pick.is-open").forEach(function (pick) {
      if (pick.contains(event.target) || !pick.isConnected) return;
      var button = toggleOf(pick);
      if (button) button.click();
    });
  });
})();
