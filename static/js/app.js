/* lumaweb: the little behaviour htmx does not cover. Everything here is an enhancement: the
   pages work without it. Event delegation only, so fragments swapped in by htmx just work. */
(function () {
  "use strict";

  // --- cards: play on hover, toggle on click ---------------------------------------------------
  function cardVideo(target) {
    if (!(target instanceof Element)) return null;
    var media = target.closest(".card-media");
    return media ? media.querySelector("video") : null;
  }
  function play(video) {
    var card = video.closest(".card");
    var promise = video.play();
    if (card) card.classList.add("is-playing");
    if (promise && promise.catch) promise.catch(function () { if (card) card.classList.remove("is-playing"); });
  }
  function pause(video) {
    video.pause();
    var card = video.closest(".card");
    if (card) card.classList.remove("is-playing");
  }
  var hoverable = window.matchMedia("(hover: hover)").matches;
  document.addEventListener("mouseover", function (event) {
    if (!hoverable) return;
    var video = cardVideo(event.target);
    if (video && video.paused && !video.dataset.clicked) play(video);
  });
  document.addEventListener("mouseout", function (event) {
    var video = cardVideo(event.target);
    if (!video || video.dataset.clicked) return;
    var to = event.relatedTarget;
    if (to instanceof Element && to.closest(".card-media") === video.closest(".card-media")) return;
    pause(video);
  });
  // The keyboard's hover: a card taking the focus previews its video; leaving it stops it.
  document.addEventListener("focusin", function (event) {
    var card = event.target instanceof Element && event.target.closest(".card");
    var video = card && card.querySelector(".card-media video");
    if (video && video.paused && !video.dataset.clicked) play(video);
  });
  document.addEventListener("focusout", function (event) {
    var card = event.target instanceof Element && event.target.closest(".card");
    var video = card && card.querySelector(".card-media video");
    if (!video || video.dataset.clicked) return;
    if (event.relatedTarget instanceof Element && card.contains(event.relatedTarget)) return;
    pause(video);
  });
  document.addEventListener("click", function (event) {
    var video = cardVideo(event.target);
    if (video && event.target.closest("a, button") === null) {
      if (video.paused) { video.dataset.clicked = "1"; play(video); }
      else { delete video.dataset.clicked; pause(video); }
      return;
    }
    // Close an inline extend form.
    var close = event.target instanceof Element && event.target.closest("[data-close-slot]");
    if (close) { closeSlot(close.closest(".extend-slot")); return; }
    // Dismiss a toast.
    var dismiss = event.target instanceof Element && event.target.closest("[data-dismiss]");
    if (dismiss) removeToast(dismiss.closest(".toast"));
  });

  // An inline extend form closes (Cancel, Escape) and the focus goes back to its card's Extend.
  function closeSlot(slot) {
    if (!slot) return;
    var card = slot.closest(".card");
    slot.innerHTML = "";
    var opener = card && card.querySelector(".extend-btn");
    if (opener) opener.focus();
  }
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape" || !(event.target instanceof Element)) return;
    var slot = event.target.closest(".extend-slot");
    if (slot && slot.querySelector("form")) { event.preventDefault(); closeSlot(slot); }
  });

  // --- a form with errors: the first one is opened (closed <details>) and takes the focus ------
  function focusFirstError(root) {
    var field = root.querySelector("[aria-invalid=true]");
    if (!field) return;
    for (var el = field.parentElement; el; el = el.parentElement) {
      if (el.tagName === "DETAILS") el.open = true;
    }
    field.focus();
  }

  // --- a length limit is counted, never enforced by cutting what is typed or pasted ----------
  // The server refuses an over-long text with a message; the field keeps all of it. The count
  // is read out (aria-live) only near the limit, not at every key.
  function counted(field) {
    var value = field.value;
    // As the server counts: characters, a line break sent as two (CR LF).
    return Array.from(value).length + (value.match(/\n/g) || []).length;
  }
  function updateCount(field) {
    var count = document.getElementById(field.id + "_count");
    if (!count) return;
    var max = Number(field.dataset.maxlength), n = counted(field), left = max - n;
    var text = n.toLocaleString("en") + " / " + max.toLocaleString("en");
    if (left < 0) text += " · " + (-left).toLocaleString("en") + " too many: shorten it to send";
    else if (left <= Math.max(20, max / 10)) text += " · " + left.toLocaleString("en") + " left";
    count.textContent = text;
    count.classList.toggle("is-over", left < 0);
    if (left <= Math.max(20, max / 10)) count.setAttribute("aria-live", "polite");
    else count.removeAttribute("aria-live");
    if (left < 0) { field.setAttribute("aria-invalid", "true"); field.dataset.over = "1"; }
    else if (field.dataset.over) { field.removeAttribute("aria-invalid"); delete field.dataset.over; }
  }
  function addCounters(root) {
    root.querySelectorAll("textarea[data-maxlength][id]").forEach(function (field) {
      if (document.getElementById(field.id + "_count")) return;
      var count = document.createElement("p");
      count.id = field.id + "_count";
      count.className = "char-count help";
      field.insertAdjacentElement("afterend", count);
      var described = field.getAttribute("aria-describedby");
      field.setAttribute("aria-describedby", (described ? described + " " : "") + count.id);
      updateCount(field);
    });
  }
  document.addEventListener("input", function (event) {
    if (event.target instanceof HTMLTextAreaElement && event.target.dataset.maxlength) {
      updateCount(event.target);
    }
  });

  // --- the gallery's filters show the filter of the address ---------------------------------
  // htmx puts a kept copy of the page back on Back/Forward: its controls are as first drawn.
  function syncFilters() {
    var form = document.querySelector("form.filters");
    if (!form) return;
    var params = new URLSearchParams(window.location.search);
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name) return;
      var value = params.get(el.name) || "";
      if (el.type === "radio") el.checked = el.value === value;
      else if (el.type === "checkbox") el.checked = params.getAll(el.name).indexOf(el.value) >= 0;
      else if (el.tagName === "SELECT" || el.type === "search" || el.type === "text") el.value = value;
    });
  }
  document.addEventListener("htmx:historyRestore", syncFilters);

  // --- toasts fade away by themselves -----------------------------------------------------------
  function removeToast(toast) {
    if (!toast || toast.classList.contains("is-leaving")) return;
    toast.classList.add("is-leaving");
    setTimeout(function () { toast.remove(); }, 300);
  }
  function scheduleToasts(root) {
    (root || document).querySelectorAll(".toast:not([data-timed])").forEach(function (toast) {
      toast.dataset.timed = "1";
      var delay = toast.classList.contains("toast-error") ? 9000 : 5000;
      setTimeout(function () { removeToast(toast); }, delay);
    });
  }

  // --- "time in state" keeps counting between server updates ------------------------------------
  function human(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    if (seconds < 60) return seconds + "s";
    var minutes = Math.floor(seconds / 60); seconds %= 60;
    if (minutes < 60) return minutes + "m " + String(seconds).padStart(2, "0") + "s";
    var hours = Math.floor(minutes / 60); minutes %= 60;
    if (hours < 48) return hours + "h " + String(minutes).padStart(2, "0") + "m";
    return Math.floor(hours / 24) + "d " + (hours % 24) + "h";
  }
  function tick() {
    var now = Date.now();
    document.querySelectorAll("time[data-since]").forEach(function (el) {
      var since = Date.parse(el.dataset.since);
      if (!isNaN(since)) el.textContent = human((now - since) / 1000);
    });
  }
  setInterval(tick, 1000);

  // --- ETA bars start where the job is and run at its pace -------------------------------------
  // The server writes both into data attributes (the Content-Security-Policy refuses style=""
  // attributes); set through the CSSOM, which the policy allows, the CSS animates the rest.
  function startEtaBars(root) {
    if (!(root instanceof Element)) return;
    var bars = Array.prototype.slice.call(root.querySelectorAll("[data-eta-from]"));
    if (root.matches("[data-eta-from]")) bars.push(root);
    bars.forEach(function (bar) {
      bar.style.setProperty("--from", bar.dataset.etaFrom + "%");
      bar.style.setProperty("--secs", bar.dataset.etaSecs + "s");
    });
  }
  // --- a form is sent once ------------------------------------------------------------------------
  // A second click on a submit button (a double-click, an impatient click while the page loads)
  // would post the form again. The server already answers a re-post with the same one-time key
  // by pointing at the first job; this keeps the second request from being sent at all. htmx
  // forms are left to htmx (it has cancelled their submit event; hx-disabled-elt disables their
  // button while the request runs).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || event.defaultPrevented) return;
    if ((form.getAttribute("method") || "get").toLowerCase() !== "post") return;
    if (form.dataset.sending) { event.preventDefault(); return; }
    form.dataset.sending = "1";
    // After this event, so the browser has already read the form (a disabled button is not sent).
    setTimeout(function () {
      form.querySelectorAll("button[type=submit], button:not([type])").forEach(function (button) {
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
      });
    }, 0);
  });
  // Back to a page kept in the browser's cache: its forms can be used again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    syncFilters();
    document.querySelectorAll("form[data-sending]").forEach(function (form) {
      delete form.dataset.sending;
      form.querySelectorAll("button[aria-busy]").forEach(function (button) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
      });
    });
  });

  // --- htmx glue ---------------------------------------------------------------------------------
  // (An expired session is the server's business: it answers htmx with HX-Redirect to log in.)
  document.addEventListener("htmx:afterSettle", function (event) { scheduleToasts(event.target); });
  document.addEventListener("htmx:oobAfterSwap", function () { scheduleToasts(document); });
  document.addEventListener("htmx:afterSwap", function (event) {
    // Focus the prompt of an inline extend form as soon as it opens (its first error, if any).
    var slot = event.target;
    var field = slot.querySelector && slot.querySelector(".extend-form textarea");
    if (!field || !slot.classList.contains("extend-slot")) return;
    if (slot.querySelector("[aria-invalid=true]")) focusFirstError(slot);
    else field.focus();
  });

  document.addEventListener("htmx:load", function (event) {
    startEtaBars(event.target);
    if (event.target instanceof Element) addCounters(event.target);
  });

  document.addEventListener("DOMContentLoaded", function () {
    scheduleToasts(document);
    tick();
    startEtaBars(document.body);
    addCounters(document);
    focusFirstError(document);
  });
})();
