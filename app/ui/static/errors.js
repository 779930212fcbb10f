// The API's error shape shown where it belongs: each detail next to its field, the rest above.
import { $$, el, fieldLabel } from "./dom.js";

export function clearErrors(form, box) {
  for (const node of $$(".error", form)) node.textContent = "";
  for (const node of $$("[aria-invalid]", form)) node.removeAttribute("aria-invalid");
  box.hidden = true;
  box.replaceChildren();
}

function show(value) {
  return value === null || value === undefined ? "" : ` (${JSON.stringify(value)})`;
}

// Field of a detail as the form names it: `heart_rate`, `body.heart_rate`, `records[3].x`.
function fieldOf(detail) {
  return String(detail.field || "").replace(/^body\./, "");
}

export function showErrors(form, box, error, describe = (d) => fieldLabel(fieldOf(d))) {
  clearErrors(form, box);
  const items = [];
  let first = null;
  for (const detail of error.details) {
    const name = fieldOf(detail);
    const slot = form.querySelector(`[id="e-${CSS.escape(name)}"]`);
    const text = `${detail.reason}${show(detail.value)}`;
    items.push(el("li", {}, `${describe(detail)}: ${text}`));
    if (!slot) continue;
    slot.textContent = text;
    const control = form.querySelector(`[name="${CSS.escape(name)}"]`);
    const target = control && control.type === "radio" ? control.closest("fieldset") : control;
    if (target) target.setAttribute("aria-invalid", "true");
    first = first || control;
  }
  box.append(el("p", {}, el("strong", { text: error.message })));
  if (items.length) box.append(el("ul", {}, items));
  box.hidden = false;
  if (first) {
    first.focus();
  } else {
    box.setAttribute("tabindex", "-1");
    box.focus();
  }
}
