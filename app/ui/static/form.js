// The patient form: its values as a `POST /predict` record, and the searchable symptom list.
import { $, $$, DATA, T, say } from "./dom.js";

const BOOLEAN_TEXT = { 1: true, true: true, yes: true, oui: true, 0: false, false: false, no: false, non: false };

export function readRecord(form) {
  const record = {};
  for (const field of DATA.fields) {
    const controls = $$(`[name="${field.name}"]`, form);
    if (field.kind === "numeric" || field.kind === "integer") {
      const raw = controls[0].value.trim();
      if (raw !== "") record[field.name] = Number(raw);
    } else if (field.kind === "categorical") {
      const checked = controls.find((c) => c.checked);
      if (checked) record[field.name] = checked.value;
    } else if (field.kind === "boolean") {
      record[field.name] = controls[0].checked;
    } else if (field.kind === "multilabel") {
      const codes = controls.filter((c) => c.checked).map((c) => c.value);
      if (codes.length) record[field.name] = codes;
    }
  }
  return record;
}

// One CSV cell as the API expects it for a field of this kind; the API judges the result.
export function cellValue(field, raw) {
  const text = raw.trim();
  if (text === "") return undefined;
  if (field.kind === "numeric" || field.kind === "integer") {
    const number = Number(text);
    return Number.isNaN(number) ? text : number;
  }
  if (field.kind === "boolean") {
    const value = BOOLEAN_TEXT[text.toLowerCase()];
    return value === undefined ? text : value;
  }
  if (field.kind === "multilabel") {
    return text.split(";").map((c) => c.trim()).filter(Boolean);
  }
  return text;
}

function fold(text) {
  return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
}

export function setUpSymptoms(form) {
  const filter = $("#symptom-filter", form);
  if (!filter) return;
  const choices = $$(".choice", form);
  const count = $("#symptom-count", form);
  filter.addEventListener("input", () => {
    const wanted = fold(filter.value.trim());
    for (const choice of choices) {
      choice.hidden = wanted !== "" && !fold(choice.textContent + " " + choice.querySelector("input").value).includes(wanted);
    }
  });
  const update = () => say(count, `${choices.filter((c) => c.querySelector("input").checked).length} ${T.symptoms_selected}`);
  form.addEventListener("change", update);
  form.addEventListener("reset", () => setTimeout(() => {
    filter.value = "";
    for (const choice of choices) choice.hidden = false;
    update();
  }));
}
