/* lumaweb: keyframes (issue 10 #7). Everything here is an enhancement: without it the detail
   page's "Use a frame" form still sends the scrubber's frame to the create page, and the
   create page's keyframe fields are plain URL, file and checkbox inputs.

   Detail page ([data-frame-picker]): moving the scrubber says which frame and when, moves the
   paused player there, and loads the server's JPEG of exactly that frame (the bytes the new
   video's keyframe will be), at most one request per pause in the scrubbing.

   Create page ([data-keyframe] slots, start and end): a preview of what each slot holds (a
   chosen file as an object URL, a typed URL as itself, a frame as the server's JPEG), a Clear
   button, drag-and-drop of an image onto the slot, and paste (Ctrl/Cmd+V) of an image anywhere
   in the form: into the slot holding the focus, else the start. A slot holds one keyframe: the
   latest choice replaces the others. Event delegation only: fragments htmx swaps in work too. */
(function () {
  "use strict";

  // --- the detail page's frame picker -------------------------------------------------------
  function fraction(text) {
    var parts = String(text || "24").split("/");
    var value = parseFloat(parts[0]) / (parts.length > 1 ? parseFloat(parts[1]) : 1);
    return value > 0 ? value : 24;
  }

  function describe(picker, index) {
    var total = parseInt(picker.dataset.frames, 10) || 1;
    var seconds = (index / fraction(picker.dataset.fps)).toFixed(2);
    var last = index >= total - 1;
    return {
      short: "Frame " + (index + 1) + " of " + total + " · " + seconds + " s" + (last ? " (the last)" : ""),
      spoken: "Frame " + (index + 1) + " of " + total + ", " + seconds + " seconds" + (last ? " (the last)" : ""),
      alt: "Frame " + (index + 1) + " of " + total + ", at " + seconds + " s" + (last ? " (the last)" : ""),
      src: picker.dataset.src + (last ? "" : "?frame=" + index),
      seconds: index / fraction(picker.dataset.fps),
    };
  }

  var previewTimer = null;
  function showFrame(picker, scrub, now) {
    var index = parseInt(scrub.value, 10) || 0;
    var words = describe(picker, index);
    var output = picker.querySelector("[data-frame-time]");
    if (output) output.textContent = words.short;
    scrub.setAttribute("aria-valuetext", words.spoken);
    var video = document.querySelector(".stage video");
    if (video && video.paused && isFinite(video.duration)) {
      try { video.currentTime = Math.min(words.seconds, video.duration); } catch (e) { /* not seekable yet */ }
    }
    var image = picker.querySelector("[data-frame-image]");
    if (!image) return;
    clearTimeout(previewTimer);
    var load = function () {
      if (image.getAttribute("src") === words.src) return;
      picker.classList.add("is-loading");
      image.alt = words.alt;
      image.src = words.src;
    };
    if (now) load(); else previewTimer = setTimeout(load, 150);
  }

  document.addEventListener("input", function (event) {
    var scrub = event.target instanceof Element && event.target.closest("[data-frame-scrub]");
    if (scrub) showFrame(scrub.closest("[data-frame-picker]"), scrub, false);
  });
  document.addEventListener("change", function (event) {
    var scrub = event.target instanceof Element && event.target.closest("[data-frame-scrub]");
    if (scrub) showFrame(scrub.closest("[data-frame-picker]"), scrub, true);
  });
  // Image load and error events do not bubble: caught on the way down.
  function loaded(event) {
    var target = event.target;
    if (!(target instanceof HTMLImageElement)) return;
    var picker = target.closest("[data-frame-picker]");
    if (picker) picker.classList.remove("is-loading");
    var slot = target.closest("[data-keyframe]");
    if (slot && event.type === "error" && target.getAttribute("src")) {
      target.hidden = true;
      caption(slot, "No preview: this image cannot be shown here. The video service fetches the address itself.");
    }
  }
  document.addEventListener("load", loaded, true);
  document.addEventListener("error", loaded, true);

  // --- the create page's keyframe slots ------------------------------------------------------
  var objectUrls = new WeakMap();
  var frameCaptions = new WeakMap(); // the server's words for a slot's frame (with its link)

  function part(slot, name) { return slot.querySelector("[data-keyframe-" + name + "]"); }
  function fileInput(slot) { return slot.querySelector("input[type=file]"); }
  function urlInput(slot) { return slot.querySelector("input[type=url]"); }
  function slotTitle(slot) { return slot.dataset.keyframe === "end" ? "end" : "start"; }

  function caption(slot, text) {
    var element = part(slot, "preview-caption");
    if (element) element.textContent = text;
  }

  function announce(slot, text) {
    var status = part(slot, "status");
    if (status) status.textContent = text;
    showError(slot, "");
  }

  // A refusal is also shown under the slot (the status above is read out, not seen).
  function showError(slot, text) {
    var error = part(slot, "error");
    if (!error) return;
    error.textContent = text;
    error.hidden = !text;
  }

  function dropObjectUrl(slot) {
    var previous = objectUrls.get(slot);
    if (previous) { URL.revokeObjectURL(previous); objectUrls.delete(slot); }
  }

  function showPreview(slot, src, text, alt) {
    var figure = part(slot, "preview");
    var image = part(slot, "preview-image");
    if (!figure || !image) return;
    image.hidden = false;
    image.removeAttribute("width");
    image.removeAttribute("height");
    image.alt = alt;
    if (image.getAttribute("src") !== src) image.src = src;
    if (typeof text === "string") caption(slot, text);
    else if (text) part(slot, "preview-caption").replaceChildren(text.cloneNode(true));
    figure.hidden = false;
    var clear = part(slot, "clear");
    if (clear) clear.hidden = false;
    var panel = slot.closest("details");
    if (panel) panel.open = true;
  }

  function hidePreview(slot) {
    var figure = part(slot, "preview");
    var image = part(slot, "preview-image");
    dropObjectUrl(slot);
    if (image) { image.removeAttribute("src"); image.alt = ""; }
    if (figure) figure.hidden = true;
  }

  function size(bytes) {
    if (bytes < 1024) return bytes + " bytes";
    if (bytes < 1024 * 1024) return Math.round(bytes / 1024) + " KB";
    return (bytes / 1024 / 1024).toFixed(1) + " MB";
  }

  function uncheckFrame(slot) {
    var frame = part(slot, "frame");
    if (frame) frame.checked = false;
  }

  // Each "from" shows what the slot holds; ``chosen`` (a person's choice, not the page loading)
  // also empties the slot's other two inputs: the latest choice replaces them.
  function fromFile(slot, chosen) {
    var input = fileInput(slot);
    var file = input && input.files && input.files[0];
    if (!file) { restore(slot); return; }
    var url = urlInput(slot);
    if (chosen) {
      uncheckFrame(slot);
      if (url) url.value = "";
    }
    dropObjectUrl(slot);
    var src = URL.createObjectURL(file);
    objectUrls.set(slot, src);
    showPreview(slot, src, file.name + " · " + size(file.size), "The chosen " + slotTitle(slot) + " keyframe: " + file.name);
  }

  function fromUrl(slot, chosen) {
    var url = urlInput(slot);
    var value = url ? url.value.trim() : "";
    if (!/^https?:\/\/\S+$/i.test(value)) { restore(slot); return; }
    var input = fileInput(slot);
    if (chosen) {
      uncheckFrame(slot);
      if (input) input.value = "";
    }
    dropObjectUrl(slot);
    showPreview(slot, value, "The image at this address", "The " + slotTitle(slot) + " keyframe at the address typed");
  }

  function fromFrame(slot, chosen) {
    var frame = part(slot, "frame");
    if (!frame || !frame.checked) { restore(slot); return; }
    var input = fileInput(slot);
    var url = urlInput(slot);
    if (chosen) {
      if (input) input.value = "";
      if (url) url.value = "";
    }
    dropObjectUrl(slot);
    var words = frameCaptions.get(slot);
    showPreview(slot, frame.dataset.frameSrc, words ? words.cloneNode(true) : "", frame.dataset.frameAlt || "The chosen frame");
  }

  // What the slot holds now, shown (or nothing).
  function restore(slot) {
    var input = fileInput(slot);
    var url = urlInput(slot);
    var frame = part(slot, "frame");
    if (input && input.files && input.files.length) fromFile(slot);
    else if (frame && frame.checked) fromFrame(slot);
    else if (url && /^https?:\/\/\S+$/i.test(url.value.trim())) fromUrl(slot);
    else hidePreview(slot);
  }

  function clearSlot(slot) {
    var input = fileInput(slot);
    if (input) input.value = "";
    var url = urlInput(slot);
    if (url) url.value = "";
    uncheckFrame(slot);
    hidePreview(slot);
    announce(slot, "The " + slotTitle(slot) + " keyframe was cleared.");
    if (input) input.focus();
  }

  function putFile(slot, file, how) {
    var input = fileInput(slot);
    if (!input) return;
    if (!file || !/^image\//.test(file.type)) {
      announce(slot, "Only an image can be a keyframe.");
      showError(slot, "Only an image can be a keyframe.");
      return;
    }
    var transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    announce(slot, how + " as the " + slotTitle(slot) + " keyframe: " + (file.name || "image") + ".");
  }

  function imageOf(list) {
    for (var i = 0; list && i < list.length; i++) {
      if (/^image\//.test(list[i].type)) return list[i];
    }
    return null;
  }

  function slotFor(target) {
    return target instanceof Element ? target.closest("[data-keyframe]") : null;
  }

  document.addEventListener("change", function (event) {
    var slot = slotFor(event.target);
    if (!slot) return;
    showError(slot, "");
    if (event.target.matches("input[type=file]")) fromFile(slot, true);
    else if (event.target.matches("[data-keyframe-frame]")) fromFrame(slot, true);
    else if (event.target.matches("input[type=url]")) fromUrl(slot, true);
  });

  var urlTimer = null;
  document.addEventListener("input", function (event) {
    var slot = slotFor(event.target);
    if (!slot || !event.target.matches("input[type=url]")) return;
    clearTimeout(urlTimer);
    urlTimer = setTimeout(function () { fromUrl(slot, true); }, 500);
  });

  document.addEventListener("click", function (event) {
    var clear = event.target instanceof Element && event.target.closest("[data-keyframe-clear]");
    if (clear) clearSlot(clear.closest("[data-keyframe]"));
  });

  function carriesFiles(event) {
    var types = event.dataTransfer && event.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }
  document.addEventListener("dragover", function (event) {
    var slot = slotFor(event.target);
    if (!slot || !carriesFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    slot.classList.add("is-dragover");
  });
  document.addEventListener("dragleave", function (event) {
    var slot = slotFor(event.target);
    if (slot && !(event.relatedTarget instanceof Element && slot.contains(event.relatedTarget))) {
      slot.classList.remove("is-dragover");
    }
  });
  document.addEventListener("drop", function (event) {
    var slot = slotFor(event.target);
    if (!slot || !event.dataTransfer) return;
    event.preventDefault();
    slot.classList.remove("is-dragover");
    putFile(slot, imageOf(event.dataTransfer.files), "Dropped");
  });

  // Paste an image anywhere in a form with keyframe slots: into the focused slot, else the start.
  // A paste of text into a text field stays a paste of text.
  document.addEventListener("paste", function (event) {
    var form = event.target instanceof Element && event.target.closest("form");
    var data = event.clipboardData;
    if (!form || !data || !form.querySelector("[data-keyframe]")) return;
    var image = imageOf(data.files);
    if (!image) return;
    var active = document.activeElement;
    var typing = active && active.matches("textarea, input[type=text], input[type=url], input[type=search]");
    if (typing && data.types && Array.prototype.indexOf.call(data.types, "text/plain") !== -1) return;
    event.preventDefault();
    var slot = slotFor(active) || form.querySelector("[data-keyframe=start]");
    putFile(slot, image, "Pasted");
  });

  function start() {
    document.querySelectorAll("[data-keyframe]").forEach(function (slot) {
      var hint = part(slot, "hint");
      if (hint) hint.hidden = false;
      var clear = part(slot, "clear");
      if (clear) clear.hidden = false;
      var words = part(slot, "preview-caption");
      if (part(slot, "frame") && words) {
        var kept = document.createDocumentFragment();
        words.childNodes.forEach(function (node) { kept.appendChild(node.cloneNode(true)); });
        frameCaptions.set(slot, kept);
      }
      restore(slot); // a file kept by the browser (Back), a frame or a URL sent back with an error
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
