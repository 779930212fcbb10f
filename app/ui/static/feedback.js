// A clinician's verdict on the answer shown: confirm, or correct with coherent choices only.
import { call } from "./api.js";
import { diagnosisLabel, treatmentLabel } from "./answer.js";
import { $, DATA, T, el, say } from "./dom.js";
import { clearErrors, showErrors } from "./errors.js";

// Which correction each verdict takes (as `POST /feedback` enforces it).
const RULES = {
  correct: [false, false],
  wrong_diagnosis: [true, true],
  wrong_treatment: [false, true],
  both_wrong: [true, true],
};
const CLINICIAN = "healthpredict.clinicianId";
let served = null; // GET /models: the classes and the coherence table of the served pair
let answer = null;

async function servedModels() {
  if (!served) {
    try {
      served = (await call("GET", "/models")).body;
    } catch {
      return { models: [], allowed_pairs: {} };
    }
  }
  return served;
}

function options(select, codes, label) {
  const kept = select.value;
  select.replaceChildren(el("option", { value: "", text: T.choose }),
    ...codes.map((c) => el("option", { value: c, text: label(c) })));
  if (codes.includes(kept)) select.value = kept;
}

function classes(models, role, fallback) {
  const model = models.models.find((m) => m.role === role);
  return model ? model.classes.map((c) => c.code) : Object.keys(fallback);
}

async function refresh(form) {
  const models = await servedModels();
  const verdict = form.elements.verdict.value;
  const [diagnosisOn, treatmentOn] = RULES[verdict];
  const diagnosis = form.elements.corrected_diagnosis;
  const treatment = form.elements.corrected_treatment;
  options(diagnosis, classes(models, "diagnosis", DATA.diagnoses), diagnosisLabel);
  const basis = diagnosisOn ? diagnosis.value : answer && answer.diagnosis && answer.diagnosis.code;
  const all = classes(models, "treatment", DATA.treatments);
  const coherent = basis && models.allowed_pairs[basis] ? models.allowed_pairs[basis] : all;
  options(treatment, coherent, treatmentLabel);
  diagnosis.disabled = !diagnosisOn;
  treatment.disabled = !treatmentOn;
  if (!diagnosisOn) diagnosis.value = "";
  if (!treatmentOn) treatment.value = "";
}

export function startFeedback(form, shown) {
  answer = shown;
  form.reset();
  clearErrors(form, $("#feedback-errors"));
  say($("#feedback-status"), "");
  const abstained = !shown.diagnosis;
  form.elements.verdict.value = abstained ? "both_wrong" : "correct";
  $("#v-correct").disabled = abstained;
  form.elements.clinician_id.value = sessionStorage.getItem(CLINICIAN) || "";
  return refresh(form);
}

async function send(form) {
  const e = form.elements;
  const body = {
    prediction_id: answer.prediction_id,
    verdict: e.verdict.value,
    clinician_id: e.clinician_id.value.trim(),
  };
  if (!e.corrected_diagnosis.disabled && e.corrected_diagnosis.value) body.corrected_diagnosis = e.corrected_diagnosis.value;
  if (!e.corrected_treatment.disabled && e.corrected_treatment.value) body.corrected_treatment = e.corrected_treatment.value;
  if (e.reason.value.trim()) body.reason = e.reason.value.trim();
  const status = $("#feedback-status");
  const box = $("#feedback-errors");
  try {
    const { status: code, body: stored } = await call("POST", "/feedback", body);
    clearErrors(form, box);
    sessionStorage.setItem(CLINICIAN, body.clinician_id);
    say(status, code === 200 && stored.duplicate
      ? `${T.feedback_duplicate} (${stored.verdict}, ${new Date(stored.created_at).toLocaleString(DATA.lang)}).`
      : T.feedback_recorded);
  } catch (error) {
    say(status, "");
    showErrors(form, box, error);
  }
}

export function setUpFeedback(form) {
  form.addEventListener("change", (event) => {
    if (["verdict", "corrected_diagnosis"].includes(event.target.name)) refresh(form);
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (answer) send(form);
  });
}
