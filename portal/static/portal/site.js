// The pages' small behaviours, a static file because the Content Security Policy (script-src 'self')
// refuses inline scripts and on*="" attributes. Each is declared in the markup by a data attribute.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // <select data-autosubmit>: choosing an option submits its form (a <noscript> button does it without
  // JavaScript).
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }

  // <input type="checkbox" data-select-all="NAME">: ticks or clears every checkbox named NAME.
  for (const master of document.querySelectorAll("input[data-select-all]")) {
    master.addEventListener("change", () => {
      const selector = `input[type=checkbox][name="${CSS.escape(master.dataset.selectAll)}"]`;
      for (const box of document.querySelectorAll(selector)) box.checked = master.checked;
    });
  }
});
