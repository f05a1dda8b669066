/* lumaweb: the little behaviour htmx does not cover. Everything here is an enhancement: the
   pages work without it. Event delegation only, so fragments swapped in by htmx just work. */
(function () {
  "use strict";

  // --- cards: a hover or the keyboard's focus previews the video; a click opens it --------------
  // A click or a tap on a card's picture follows its link (the viewer, static/js/viewer.js; the
  // detail page without JavaScript). Previews never answer a click, so the two cannot fight: a
  // touch never previews (a tap is a click: no "first tap previews, second tap opens"), and a
  // click that lands while a preview starts or stops opens the viewer all the same.
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
  document.addEventListener("pointerover", function (event) {
    if (event.pointerType === "touch") return;
    var video = cardVideo(event.target);
    if (video && video.paused) play(video);
  });
  document.addEventListener("pointerout", function (event) {
    if (event.pointerType === "touch") return;
    var video = cardVideo(event.target);
    if (!video) return;
    var to = event.relatedTarget;
    if (to instanceof Element && to.closest(".card-media") === video.closest(".card-media")) return;
    pause(video);
  });
  // The keyboard's hover: a card taking the keyboard's focus previews its video; leaving it stops
  // it. A tap or a click focuses too, but is not a hover (:focus-visible tells them apart).
  document.addEventListener("focusin", function (event) {
    if (!(event.target instanceof Element) || !event.target.matches(":focus-visible")) return;
    var card = event.target.closest(".card");
    var video = card && card.querySelector(".card-media video");
    if (video && video.paused) play(video);
  });
  document.addEventListener("focusout", function (event) {
    var card = event.target instanceof Element && event.target.closest(".card");
    var video = card && card.querySelector(".card-media video");
    if (!video) return;
    if (event.relatedTarget instanceof Element && card.contains(event.relatedTarget)) return;
    pause(video);
  });
  document.addEventListener("click", function (event) {
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
      if (el.tagName === "SELECT" && el.selectedIndex < 0) el.selectedIndex = 0; // ?sort=newest
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

  // --- the create page: how many videos a batch makes and what it costs, as the person types ----
  // The server draws the same line from what was posted and decides on submit; this only keeps
  // it current between the two (same rules as CreateForm.planned_jobs and Allowance.short_of).
  var LINE_BREAK = /\r\n|[\n\r\u0085\u2028\u2029]/;
  function fmt(n) { return n.toLocaleString("en-US"); }
  function limit(value) { return value === undefined || value === "" ? null : Number(value); }
  // The chosen aspect ratio's own box under "Also make each one in" shows as ticked and
  // unavailable (it is made anyway); the others count one more video per line each.
  function moreRatios(form) {
    var first = form.querySelector("input[name=aspect_ratio]:checked");
    var more = 0;
    form.querySelectorAll("input[name=more_aspect_ratios]").forEach(function (box) {
      var chosen = !!first && box.value === first.value;
      if (chosen && !box.disabled) {
        box.dataset.was = box.checked ? "1" : "";
        box.checked = true;
        box.disabled = true;
      } else if (!chosen && box.disabled) {
        box.disabled = false;
        box.checked = box.dataset.was === "1";
      }
      if (!chosen && box.checked) more += 1;
    });
    return more;
  }
  // One video's price: the panel's data-cost, or, where the provider prices by model,
  // resolution and duration, the price table (#price-table) entry for the chosen ones.
  function priceOf(form, panel) {
    var script = document.getElementById("price-table");
    if (!script) return Number(panel.dataset.cost);
    var table = JSON.parse(script.textContent);
    var key = table.options.map(function (name) {
      var field = form.querySelector("[name=" + name + "]:checked") ||
        form.querySelector("select[name=" + name + "], input[name=" + name + "]:not([type=radio])");
      return field && field.value ? field.value : table["default"][name];
    }).join("|");
    var price = table.prices[key];
    return price === undefined ? Number(panel.dataset.cost) : price;
  }
  function updateBatch(form) {
    var panel = form.querySelector("[data-batch-cost]");
    var prompt = form.querySelector("textarea[name=user_prompt]");
    var toggle = form.querySelector("input[name=batch]");
    if (!panel || !prompt || !toggle) return;
    var on = toggle.checked;
    // The counter counts against the whole batch's limit in batch mode (the server names any
    // line that is too long on its own); nothing is ever cut (see updateCount).
    if (prompt.dataset.batchMaxlength && prompt.dataset.maxlength) {
      if (prompt.dataset.singleMaxlength === undefined) prompt.dataset.singleMaxlength = prompt.dataset.maxlength;
      prompt.dataset.maxlength = on ? prompt.dataset.batchMaxlength : prompt.dataset.singleMaxlength;
      updateCount(prompt);
    }
    var jobs = 1, extra = moreRatios(form);
    if (on) {
      var lines = prompt.value.split(LINE_BREAK).filter(function (line) { return line.trim() !== ""; }).length;
      jobs = lines * (1 + extra);
    }
    var cost = priceOf(form, panel), most = Number(panel.dataset.max), total = cost * jobs;
    var unit = " " + (panel.dataset.unit || "tokens");
    var count = panel.querySelector("#cost-count");
    panel.querySelector("#cost-total").textContent = fmt(total) + unit;
    if (!on) count.textContent = "One generation, charged when the service accepts it.";
    else if (jobs === 0) count.textContent = "No videos yet: write one prompt per line.";
    else if (jobs > most) count.textContent = jobs + " videos: one batch makes at most " + most + ".";
    else count.textContent = jobs + " video" + (jobs === 1 ? "" : "s") + " · " + fmt(total) + unit + ", each charged when the service accepts it.";
    count.classList.toggle("is-over", on && (jobs === 0 || jobs > most));
    var line = panel.querySelector("#budget-line"), short = panel.querySelector("#budget-short");
    if (!line || !short) return;
    var wanted = cost * Math.max(jobs, 1);
    var person = limit(panel.dataset.personLeft), team = limit(panel.dataset.teamLeft);
    var whose = person !== null && wanted > person ? "person" : team !== null && wanted > team ? "team" : "";
    short.textContent = (whose === "team" ? " (the team's budget)" : "") +
      (whose ? ": not enough for " + (jobs <= 1 ? "one more" : "these " + jobs + " videos") : "");
    line.classList.toggle("is-over", whose !== "");
  }
  function batchForm(target) {
    return target instanceof Element ? target.closest("form.create") : null;
  }
  document.addEventListener("input", function (event) {
    var form = batchForm(event.target);
    if (form) updateBatch(form);
  });
  document.addEventListener("change", function (event) {
    var form = batchForm(event.target);
    if (form) updateBatch(form);
  });

  // --- "my job is done": the tab title and, if asked for, browser notifications -----------------
  // The running badge's poll (every 5 s, 204 while nothing changed) carries the events of my own
  // jobs since this page's cursor in data-notify. The title counts them until I come back to the
  // tab (or touch the page); a notification is shown only after I pressed "Notify me" and the
  // browser granted it (the permission is asked on that click, never before).
  var NOTIFY_KEY = "lumaweb.notify";
  var WORDS = { completed: "Finished", failed: "Failed", needs_attention: "Needs attention" };
  var baseTitle = document.title;
  var unseen = 0;
  var unseenTrouble = false;
  function canNotify() { return "Notification" in window; }
  function notifyWanted() {
    try { return window.localStorage.getItem(NOTIFY_KEY) === "on"; } catch (e) { return false; }
  }
  function notifyOn() { return canNotify() && notifyWanted() && Notification.permission === "granted"; }
  function drawNotifyToggle() {
    var button = document.querySelector("[data-notify-toggle]");
    if (!button || !canNotify()) return;
    button.hidden = false;
    button.setAttribute("aria-pressed", notifyOn() ? "true" : "false");
    button.textContent = notifyOn() ? "Notifications on (turn off)" : "Notify me when my jobs finish";
    var state = document.querySelector("[data-notify-state]");
    if (state) {
      var blocked = Notification.permission === "denied";
      state.hidden = !blocked;
      state.textContent = blocked ? "Notifications are blocked for this site in the browser's settings." : "";
    }
  }
  function wantNotify(on) {
    try { window.localStorage.setItem(NOTIFY_KEY, on ? "on" : "off"); } catch (e) { /* private mode */ }
    drawNotifyToggle();
  }
  document.addEventListener("click", function (event) {
    var button = event.target instanceof Element ? event.target.closest("[data-notify-toggle]") : null;
    if (!button || !canNotify()) return;
    if (notifyOn()) { wantNotify(false); return; }
    if (Notification.permission !== "default") { wantNotify(Notification.permission === "granted"); return; }
    var asked = Notification.requestPermission();
    if (asked && asked.then) asked.then(function (answer) { wantNotify(answer === "granted"); });
  });
  function showUnseen() {
    document.title = unseen ? "(" + unseen + ") " + (unseenTrouble ? "!" : "\u2713") + " " + baseTitle : baseTitle;
  }
  function seen() {
    if (!unseen) return;
    unseen = 0;
    unseenTrouble = false;
    showUnseen();
  }
  document.addEventListener("visibilitychange", function () { if (!document.hidden) seen(); });
  document.addEventListener("pointerdown", seen);
  document.addEventListener("keydown", seen);
  function jobEvents(badge) {
    var raw = badge.getAttribute("data-notify");
    if (!raw) return;
    var events;
    try { events = JSON.parse(raw); } catch (e) { return; }
    events.forEach(function (job) {
      unseen += 1;
      if (job.status !== "completed") unseenTrouble = true;
      if (!notifyOn()) return;
      try {
        var shown = new Notification((WORDS[job.status] || job.status) + ": " + job.label, {
          body: "lumaweb", tag: "lumaweb-" + job.id + "-" + job.status
        });
        shown.onclick = function () { window.focus(); window.location.href = job.url; };
      } catch (e) { /* a browser that shows them only from a service worker */ }
    });
    showUnseen();
  }
  document.addEventListener("htmx:load", function (event) {
    if (event.target.id === "running-badge") jobEvents(event.target);
  });

  // --- htmx glue ---------------------------------------------------------------------------------
  // (An expired session is the server's business: it answers htmx with HX-Redirect to log in.)
  document.addEventListener("htmx:afterSettle", function (event) { scheduleToasts(event.target); });
  document.addEventListener("htmx:oobAfterSwap", function () { scheduleToasts(document); });
  // The database is out of reach (generations/outage.py): htmx swaps nothing in for the 503 and
  // live polls keep polling; one toast says what is going on, stays while it lasts, and goes as
  // soon as an answer comes through again.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var box = document.getElementById("toasts");
    if (!box || !xhr || xhr.getResponseHeader("Lumaweb-Outage") !== "database") return;
    if (box.querySelector(".toast[data-outage]")) return;
    var toast = document.createElement("div");
    toast.className = "toast toast-error";
    toast.setAttribute("role", "status");
    toast.dataset.outage = "1";
    toast.dataset.timed = "1";
    var text = document.createElement("span");
    text.className = "toast-text";
    text.textContent = xhr.responseText;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.dataset.dismiss = "";
    close.textContent = "×";
    toast.append(text, close);
    box.appendChild(toast);
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.successful) removeToast(document.querySelector(".toast[data-outage]"));
  });
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
    document.querySelectorAll("form.create").forEach(updateBatch);
    scheduleToasts(document);
    drawNotifyToggle();
    tick();
    startEtaBars(document.body);
    addCounters(document);
    focusFirstError(document);
  });
})();
