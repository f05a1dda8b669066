// The price on the Extend, "What came before" and Interpolate buttons (QA of issue 11): where the
// provider prices by model, resolution and duration, the note ([data-option-cost], its unit)
// follows what that form has chosen, read from the price table (#price-table, the create page's).
// Without JavaScript it says the price with the default options; the server prices on submit.
(function () {
  "use strict";
  function update(form) {
    var note = form.querySelector("[data-option-cost]");
    var script = document.getElementById("price-table");
    if (!note || !script) return;
    var table = JSON.parse(script.textContent);
    var key = table.options.map(function (name) {
      var field = form.querySelector("select[name=" + name + "]");
      return field && field.value ? field.value : table["default"][name];
    }).join("|");
    var price = table.prices[key];
    if (price === undefined) return;
    note.textContent = price.toLocaleString("en-US") + " " + note.dataset.optionCost;
  }
  document.addEventListener("change", function (event) {
    var form = event.target instanceof Element ? event.target.closest("form") : null;
    if (form) update(form);
  });
})();
