// Wires the page: the key, the patient form and its answer, feedback, the list, the ops view.
import { apiKey, call } from "./api.js";
import { renderAnswer, renderChart } from "./answer.js";
import { $, T, say } from "./dom.js";
import { clearErrors, showErrors } from "./errors.js";
import { setUpFeedback, startFeedback } from "./feedback.js";
import { readRecord, setUpSymptoms } from "./form.js";
import { setUpList } from "./list.js";
import { loadOps, setUpOps } from "./ops.js";

function setUpKey() {
  const status = $("#key-status");
  say(status, apiKey.get() ? T.key_saved : T.key_missing);
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("#api-key");
    if (!input.value.trim()) return;
    apiKey.set(input.value.trim());
    input.value = "";
    say(status, T.key_saved);
  });
  $("#key-forget").addEventListener("click", () => {
    apiKey.clear();
    say(status, T.key_forgotten);
  });
}

async function predict(form) {
  const box = $("#form-errors");
  const status = $("#predict-status");
  const section = $("#answer");
  const explain = $("#explain").checked ? "?explain=true" : "";
  say(status, T.sending);
  try {
    const { body } = await call("POST", `/predict${explain}`, readRecord(form));
    clearErrors(form, box);
    renderAnswer($("#answer-body"), body);
    renderChart($("#chart"), $("#chart-svg"), body);
    section.hidden = false;
    await startFeedback($("#feedback-form"), body);
    say(status, "");
    section.focus();
  } catch (error) {
    say(status, "");
    section.hidden = true;
    showErrors(form, box, error);
  }
}

function setUpPatient() {
  const form = $("#patient-form");
  setUpSymptoms(form);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    predict(form);
  });
  form.addEventListener("reset", () => {
    clearErrors(form, $("#form-errors"));
    $("#answer").hidden = true;
  });
}

setUpKey();
setUpPatient();
setUpFeedback($("#feedback-form"));
setUpList($("#list-form"));
setUpOps();
if (location.hash === "#ops" && apiKey.get()) loadOps($("#ops-body"), $("#ops-status"));

