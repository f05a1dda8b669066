/* lumaweb: the live gallery. Its one poll (components.html#watcher) slots new videos in at the
   top of the grid, out of band (gallery_live.html#answer). Two answers can name the same video
   (a poll sent again before the first answer moved the page's state on): a card the page
   already shows is left out of what is slotted in, so a video is never shown twice. */
(function () {
  "use strict";

  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var detail = event.detail;
    if (!detail || !detail.target || detail.target.id !== "grid" || !detail.fragment) return;
    detail.fragment.querySelectorAll(".card[id]").forEach(function (card) {
      if (document.getElementById(card.id)) card.remove();
    });
  });
})();
