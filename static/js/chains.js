/* Play a chain from its root to one video as one sequence (templates/generations/chain.html).

   A "Play from the start" button names the clips of its path (data-chain-play: ids in order);
   each clip's address and poster are on its node in the tree (data-chain-clip). They play one
   after another in the section's one <video>: while a clip plays, the next is fetched by a
   detached <video preload="auto">, and when it ends the next one's first frame (its poster) is
   shown at once while its source takes over, so there is no blank frame between them. The step
   playing is announced politely (aria-live). No inline script: the page's CSP forbids it. */
(function () {
  "use strict";

  function clipsOf(section, ids) {
    return ids.split(",").map(function (id) {
      var node = section.querySelector('[data-chain-clip="' + id + '"]');
      return node && node.dataset.src
        ? { src: node.dataset.src, poster: node.dataset.poster || "", label: node.dataset.label || "" }
        : null;
    }).filter(Boolean);
  }

  function start(section, ids) {
    var player = section.querySelector("[data-chain-player]");
    var video = player && player.querySelector("video");
    var now = player && player.querySelector("[data-chain-now]");
    var clips = clipsOf(section, ids);
    if (!video || !clips.length) return;
    var state = { clips: clips, index: 0, preloader: null };
    player.chainState = state;
    player.hidden = false;

    function preload(index) {
      if (state.preloader) { state.preloader.removeAttribute("src"); state.preloader.load(); }
      state.preloader = null;
      if (index >= clips.length) return;
      var next = document.createElement("video");
      next.preload = "auto";
      next.muted = true;
      next.src = clips[index].src;
      next.load();
      state.preloader = next;
    }

    function show(index) {
      var clip = clips[index];
      state.index = index;
      video.poster = clip.poster;
      video.src = clip.src;
      video.dataset.step = String(index + 1);
      now.textContent = "Playing " + (index + 1) + " of " + clips.length + ": " + clip.label;
      var playing = video.play();
      if (playing && playing.catch) playing.catch(function () { /* autoplay refused: controls */ });
      preload(index + 1);
    }

    video.onended = function () {
      if (player.chainState !== state) return;
      if (state.index + 1 < clips.length) {
        show(state.index + 1);
      } else {
        now.textContent = "Played all " + clips.length + " of the chain from the start.";
        preload(clips.length);
      }
    };
    show(0);
    player.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function reveal(root) {
    (root || document).querySelectorAll("[data-chain] [data-chain-play][hidden]").forEach(function (button) {
      button.hidden = false;
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-chain-play]");
    if (!button) return;
    var section = button.closest("[data-chain]");
    if (!section) return;
    event.preventDefault();
    start(section, button.dataset.chainPlay);
  });
  document.addEventListener("DOMContentLoaded", function () { reveal(document); });
  document.addEventListener("htmx:afterSettle", function (event) { reveal(event.target); });
})();
