/* lumaweb: the viewer. A click on a card's video (or its prompt) opens it large, over the
   gallery, in a modal <dialog>; without JavaScript the same links open the detail page.

   - Its content is the detail page's "viewer" partial (templates/generations/detail.html),
     fetched by htmx from the detail URL (HX-Target: viewer-body), so whatever the page shows
     beside the video (like, download, boards, sharing, the chain...) is in the viewer too.
     Every htmx request from inside it says so (the Lumaweb-Viewer header): the server gives
     the ids it renders there a prefix, so that none is also a card's behind it (htmx aims at,
     and gives the focus back to, the first element with an id).
   - It remembers the card it shows by its id, never by its element: the gallery's poll may
     replace that card (its video's copy finished) while the viewer is open.
   - Its URL is the detail page's: pushed when it opens (so Back closes it, and a reload or a
     shared link shows the page), replaced by Previous/Next (Back never walks through videos),
     taken back by closing it, which leaves the gallery's address, filters and all.
   - Previous/Next (buttons, arrow keys) go through the cards in the order the page shows them;
     past the last loaded card, the grid's "load more" sentinel is fetched first.
   - Closing (Escape, Close, Back, a click beside it) gives the focus to the card last shown.
   - The video plays muted at once, unless the person asked for reduced motion. */
(function () {
  "use strict";

  var dialog = null;
  var body = null;
  var cardId = "";        // the id of the card whose video is shown (its element may be replaced)
  var galleryUrl = "";     // the address the viewer was opened from
  var galleryTitle = "";
  var onEntry = false;     // the current history entry is the viewer's own (pushed when opened)
  var leaving = false;     // a close went back one entry: that popstate is the viewer's
  var waiting = false;     // Next is waiting for the next page of cards
  var loading = false;     // the viewer's content is on its way (the video shown is changing)

  function supported() {
    return typeof HTMLDialogElement === "function" && window.htmx && window.history.pushState;
  }
  function reducedMotion() {
    return window.matchMedia("(prefers-reduced-motion: reduce)").matches;
  }

  // --- the cards -------------------------------------------------------------------------------
  function viewLink(el) {
    return el ? el.querySelector("a[data-viewer]") : null;
  }
  function focusLink(el) {
    return el.querySelector("a[data-viewer]:not([tabindex='-1'])") || viewLink(el);
  }
  function promptOf(el) {
    var link = el.querySelector("a[data-viewer][title]");
    return (link ? link.getAttribute("title") : viewLink(el).textContent).trim();
  }
  function current() {
    return cardId ? document.getElementById(cardId) : null;
  }
  function grid() {
    var card = current();
    return (card && card.closest(".grid")) || document;
  }
  function viewable() {
    return Array.prototype.filter.call(grid().querySelectorAll(".card"), viewLink);
  }
  function neighbour(step) {
    var cards = viewable();
    var at = cards.indexOf(current());
    return at < 0 ? null : cards[at + step] || null;
  }
  function sentinel() {
    return grid().querySelector(".sentinel[hx-get]");
  }
  function cardFor(url) {
    var links = document.querySelectorAll(".card a[data-viewer]");
    for (var i = 0; i < links.length; i++) {
      if (links[i].href === url) return links[i].closest(".card");
    }
    return null;
  }
  function pausePreviews() {
    document.querySelectorAll(".card video").forEach(function (video) {
      if (!video.paused) video.pause();
      var owner = video.closest(".card");
      if (owner) owner.classList.remove("is-playing");
    });
  }

  // --- the dialog ------------------------------------------------------------------------------
  function part(name) {
    return dialog.querySelector("[data-viewer-" + name + "]");
  }
  function build() {
    dialog = document.createElement("dialog");
    dialog.className = "viewer";
    dialog.innerHTML =
      '<div class="viewer-frame">' +
      '<div class="viewer-bar">' +
      '<button type="button" class="btn btn-small btn-ghost" data-viewer-prev><span aria-hidden="true">\u2190</span> Previous</button>' +
      '<button type="button" class="btn btn-small btn-ghost" data-viewer-next>Next <span aria-hidden="true">\u2192</span></button>' +
      '<a class="btn btn-small btn-ghost viewer-page" data-viewer-page href="">Full page</a>' +
      '<button type="button" class="btn btn-small btn-ghost viewer-close" data-viewer-close autofocus>Close <span aria-hidden="true">\u2715</span></button>' +
      "</div>" +
      '<p class="sr-only" aria-live="polite" data-viewer-status></p>' +
      '<div id="viewer-body" class="viewer-body" hx-sync="this:replace" hx-disinherit="hx-sync" hx-headers=\'{"Lumaweb-Viewer": "1"}\'></div>' +
      "</div>";
    body = dialog.querySelector("#viewer-body");

    dialog.addEventListener("click", function (event) {
      if (event.target === dialog) {  // the dialog itself: its scrollbar, or the backdrop beside it
        var box = dialog.getBoundingClientRect();
        if (event.clientX < box.left || event.clientX > box.right ||
            event.clientY < box.top || event.clientY > box.bottom) finish();
        return;
      }
      var button = event.target instanceof Element && event.target.closest("button");
      if (!button || !dialog.contains(button)) return;
      if (button.hasAttribute("data-viewer-close")) finish();
      else if (button.hasAttribute("data-viewer-prev")) step(-1);
      else if (button.hasAttribute("data-viewer-next")) step(1);
    });
    dialog.addEventListener("keydown", function (event) {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      if (event.defaultPrevented || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
      // Arrows that mean something where the focus is (a text field, a slider, the video's own
      // seeking) keep their meaning.
      var at = event.target instanceof Element ? event.target : null;
      if (at && at.closest("input, textarea, select, video, audio, [contenteditable]")) return;
      event.preventDefault();
      step(event.key === "ArrowRight" ? 1 : -1);
    });
    // Escape in a field someone typed in (the Extend prompt) keeps the viewer and the text.
    dialog.addEventListener("cancel", function (event) {
      var at = document.activeElement;
      if (at && body.contains(at) && "defaultValue" in at && at.value !== at.defaultValue) {
        event.preventDefault();
      }
    });
    // Escape closes the dialog by itself; its "close" event comes a moment later (by then the
    // viewer may have been opened again: then there is nothing to do).
    dialog.addEventListener("close", function () { if (!dialog.open) finish(); });
    body.addEventListener("htmx:afterSwap", startVideo);
    // Its own load replaces the previous one (hx-sync); the requests of what it shows (a poll,
    // Like, the Boards menu) are not synced on it: one would abort the other, the load itself
    // too. While a load is on its way, what it replaces asks nothing more (a late answer of its
    // poll would land over the new video).
    body.addEventListener("htmx:beforeRequest", function (event) {
      if (event.detail.elt === body) loading = true;
      else if (loading) event.preventDefault();
    });
    body.addEventListener("htmx:afterRequest", function (event) {
      if (event.detail.elt === body) loading = false;
    });
    body.addEventListener("htmx:responseError", function (event) {
      trouble(event.detail.xhr && event.detail.xhr.status === 404
        ? "This video is no longer here." : "The video could not be loaded. Try again in a moment.");
    });
    body.addEventListener("htmx:sendError", function () {
      trouble("The video could not be loaded: the connection failed.");
    });
  }
  function trouble(text) {
    var note = document.createElement("p");
    note.className = "alert alert-error";
    note.textContent = text;
    body.replaceChildren(note);
  }

  // In the page only while open: htmx's stored copies of the gallery (for Back) never hold it.
  function attach() {
    if (!dialog) build();
    if (!dialog.isConnected) document.body.appendChild(dialog);
  }

  function open(from) {
    attach();
    pausePreviews();
    galleryUrl = window.location.href;
    galleryTitle = document.title;
    var url = viewLink(from).href;
    window.history.pushState({ lumawebViewer: url }, "", url);
    onEntry = true;
    show(from);
    if (!dialog.open) dialog.showModal();
  }

  function show(next) {
    cardId = next.id;
    waiting = false;
    var url = viewLink(next).href;
    if (window.location.href !== url) window.history.replaceState({ lumawebViewer: url }, "", url);
    var name = promptOf(next);
    dialog.setAttribute("aria-label", name);
    document.title = (name.length > 60 ? name.slice(0, 59) + "\u2026" : name) + " \u00b7 lumaweb";
    part("page").href = url;
    // The focus never goes down with the content it was in.
    if (body.contains(document.activeElement)) part("close").focus();
    if (dialog.open) part("status").textContent = name;
    drawButtons();
    loading = true;
    body.querySelectorAll("[hx-get], [hx-post]").forEach(function (el) {
      window.htmx.trigger(el, "htmx:abort");  // what the content it replaces still asks
    });
    window.htmx.ajax("GET", url, { source: body, target: body, swap: "innerHTML" });
  }

  function drawButtons() {
    var more = sentinel();
    disable(part("prev"), !neighbour(-1));
    disable(part("next"), !neighbour(1) && !more);
    part("next").setAttribute("aria-busy", waiting ? "true" : "false");
  }
  // aria-disabled, not disabled: a button that keeps the focus when it has nothing to do.
  function disable(button, off) {
    if (off) button.setAttribute("aria-disabled", "true");
    else button.removeAttribute("aria-disabled");
  }

  function step(direction) {
    if (!cardId || waiting) return;
    var next = neighbour(direction);
    if (next) { show(next); return; }
    var more = direction > 0 && sentinel();
    if (!more) { drawButtons(); return; }
    // The last loaded card: load the next page (as scrolling to the end would), then go on.
    waiting = true;
    drawButtons();
    if (more.classList.contains("htmx-request")) return;  // already on its way: resume() waits
    more.setAttribute("data-hx-revealed", "true");  // and scrolling will not ask for it again
    window.htmx.ajax("GET", more.getAttribute("hx-get"), {
      source: more, target: more, swap: "outerHTML"
    }).then(resume, resume);
  }
  function resume() {
    if (!waiting || !dialog.open) return;
    var next = neighbour(1);
    if (next) { show(next); return; }
    var more = sentinel();
    if (more && more.classList.contains("htmx-request")) return;
    waiting = false;
    drawButtons();
  }
  document.addEventListener("htmx:afterSettle", resume);

  function startVideo() {
    var video = body.querySelector("video");
    if (!video) return;
    video.muted = true;
    if (reducedMotion()) {
      video.preload = "metadata";
      return;
    }
    video.preload = "auto";
    video.autoplay = true;
    var playing = video.play();
    if (playing && playing.catch) playing.catch(function () { /* the browser said no: controls */ });
  }

  // Everything a close does, once, whatever closed it (Close, Escape, Back, a click beside it).
  function finish() {
    if (!cardId) return;
    var shown = current();
    var video = body.querySelector("video");
    if (video) video.pause();
    body.replaceChildren();  // also ends a live block's poll
    cardId = "";
    waiting = false;
    document.title = galleryTitle;
    if (dialog.open) dialog.close();
    dialog.remove();
    if (onEntry) {
      onEntry = false;
      leaving = true;
      window.history.back();  // the gallery's own entry (the viewer's is dropped)
    }
    if (shown && viewLink(shown)) focusLink(shown).focus();
  }

  // --- opening ---------------------------------------------------------------------------------
  document.addEventListener("click", function (event) {
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;  // a new tab
    var link = event.target instanceof Element ? event.target.closest("a[data-viewer]") : null;
    var from = link && link.closest(".card");
    if (!from || !supported() || (dialog && dialog.contains(link))) return;
    event.preventDefault();
    open(from);
  });

  // --- history ---------------------------------------------------------------------------------
  // Captured before htmx's own handler, which would otherwise put back a stored copy of the
  // gallery over the page that is already there.
  window.addEventListener("popstate", function (event) {
    var here = window.location.href;
    if (leaving) {
      leaving = false;
      if (here === galleryUrl) event.stopImmediatePropagation();
      return;
    }
    if (onEntry) {  // Back while the viewer is open
      onEntry = false;
      if (here === galleryUrl) event.stopImmediatePropagation();
      finish();
      return;
    }
    var url = event.state && event.state.lumawebViewer;
    if (!url || !dialog) return;
    var from = cardFor(url);
    event.stopImmediatePropagation();
    if (!from) { window.location.reload(); return; }  // the address is the detail page's
    // Forward to the viewer again.
    attach();
    pausePreviews();
    onEntry = true;
    show(from);
    dialog.showModal();
  }, true);
  // Back to this page from another one, kept whole by the browser (the "Full page" link, say):
  // its viewer was left open on an address that is no longer the current one.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted || !dialog) return;
    onEntry = leaving = false;
    finish();
  });
})();
