// One prediction, as a clinician reads it: diagnosis, treatment, trust, NEWS2, warnings, reasons.
import { DATA, FIELDS, T, el, fieldLabel, percent } from "./dom.js";

const SEVERITY = ["critical", "high", "medium", "low", "info"]; // most severe first

export function diagnosisLabel(code) {
  return DATA.diagnoses[code] || code;
}

export function treatmentLabel(code) {
  return DATA.treatments[code] || code;
}

function names(list) {
  return list.length ? list.map(fieldLabel).join(", ") : T.none;
}

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
}

function verdictCard(answer) {
  if (!answer.diagnosis) {
    // What the service needs before it answers: the missing critical fields.
    const critical = answer.missing_features.filter((n) => FIELDS[n] && FIELDS[n].tier === "critical");
    return el("div", { class: "card abstained", id: "abstention" },
      el("p", { class: "big", text: T.abstained }),
      el("p", {}, `${T.abstained_missing}: `, el("strong", { text: names(critical) })));
  }
  const d = answer.diagnosis;
  const t = answer.treatment;
  const others = d.top_k.filter((k) => k.code !== d.code);
  return el("div", { class: "card", id: "verdict" },
    el("p", {}, `${T.diagnosis}: `, el("span", { class: "big", id: "diagnosis", text: diagnosisLabel(d.code) }),
      ` — ${T.probability} ${percent(d.probability)}`),
    others.length ? el("p", {}, `${T.top_k}: `,
      others.map((k) => `${diagnosisLabel(k.code)} ${percent(k.probability)}`).join(" · ")) : null,
    t ? el("p", {}, `${T.treatment}: `, el("strong", { id: "treatment", text: treatmentLabel(t.code) }),
      ` — ${T.probability} ${percent(t.probability)}`) : null);
}

function trustCard(answer) {
  const q = answer.prediction_quality;
  const n = answer.news2 || {};
  return el("div", { class: "card" }, facts([
    [T.quality, el("span", { class: `badge q-${q}`, id: "quality", text: q })],
    [T.missing, el("span", { class: "list", text: names(answer.missing_features) })],
    [T.imputed, el("span", { class: "list", text: names(answer.imputed_features) })],
    [T.news2, n.score === null || n.score === undefined ? "—"
      : el("span", {}, `${n.score} · ${T.band} `, el("span", { class: `badge band-${n.band}`, id: "news2-band", text: n.band }))],
    [T.model, `${answer.model.source} · v${answer.model.diagnosis_version} / v${answer.model.treatment_version}`],
    [T.prediction_id, el("code", { id: "prediction-id", text: answer.prediction_id })],
  ]));
}

function warningsCard(answer) {
  const sorted = [...answer.warnings].sort((a, b) => SEVERITY.indexOf(a.severity) - SEVERITY.indexOf(b.severity));
  return el("div", { class: "card" }, el("h3", { text: T.warnings }),
    sorted.length
      ? el("ul", { class: "warnings", id: "warnings" }, sorted.map((w) =>
        el("li", { class: `sev-${w.severity}`, "data-code": w.code }, `${w.severity.toUpperCase()} — ${w.message}`)))
      : el("p", { id: "warnings", text: T.no_warnings }));
}

export function renderAnswer(container, answer) {
  container.replaceChildren(el("div", { class: "answer-grid" },
    verdictCard(answer), trustCard(answer), warningsCard(answer)));
}

function valueText(name, value, most) {
  const field = FIELDS[name];
  if (value === null || value === undefined) return T.missing.toLowerCase();
  if (typeof value === "boolean") return value ? T.yes : T.no;
  if (Array.isArray(value)) {
    const labels = Object.fromEntries(field ? field.options : []);
    const shown = value.slice(0, most).map((c) => labels[c] || c).join(", ");
    return value.length > most ? `${shown} (+${value.length - most})` : shown || T.none;
  }
  if (typeof value === "number") {
    const shown = Number.isInteger(value) ? value : Number(value.toFixed(2));
    // A unit that is a scale ("0–10") says nothing after the number.
    return !field || field.unit.includes("–") ? `${shown}` : `${shown} ${field.unit}`;
  }
  return String(value);
}

// "SpO2 89 % raised Community-acquired pneumonia", one sentence per contribution.
export function contributionSentence(item, diagnosis, most = Infinity) {
  const verb = item.contribution >= 0 ? T.raised : T.lowered;
  const field = FIELDS[item.feature];
  // The label without its trailing note: "Serum bicarbonate (low = …)" -> "Serum bicarbonate".
  const label = fieldLabel(item.feature).replace(/\s*\([^)]*\)$/, "");
  const name = field && field.kind === "multilabel" ? T.section_symptoms : label;
  return `${name} ${valueText(item.feature, item.value, most)} ${verb} ${diagnosis}`;
}

// On the bar, at most 2 symptoms and a cut if still long; the full sentence is in its title.
function shortened(text, limit = 86) {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

export function renderChart(figure, holder, answer) {
  const items = answer.explanation || [];
  figure.hidden = !items.length || !answer.diagnosis;
  if (figure.hidden) return holder.replaceChildren();
  const diagnosis = diagnosisLabel(answer.diagnosis.code);
  const width = 900;
  const row = 28;
  const textWidth = 560;
  const half = (width - textWidth - 20) / 2;
  const zero = textWidth + 10 + half;
  const largest = Math.max(...items.map((i) => Math.abs(i.contribution)), 1e-9);
  const sentences = items.map((item) => contributionSentence(item, diagnosis));
  const svg = el("svg", {
    class: "chart", id: "shap-chart", role: "img", "aria-labelledby": "chart-title",
    viewBox: `0 0 ${width} ${row * items.length + 8}`, width: "100%",
  }, el("title", { id: "chart-title", text: sentences.join(". ") }));
  items.forEach((item, i) => {
    const y = 4 + i * row;
    const length = (Math.abs(item.contribution) / largest) * (half - 4);
    const up = item.contribution >= 0;
    svg.append(el("g", { class: "bar", "data-feature": item.feature },
      el("text", { x: 0, y: y + 17, text: shortened(contributionSentence(item, diagnosis, 2)) },
        el("title", { text: sentences[i] })),
      el("rect", { class: up ? "up" : "down", x: up ? zero : zero - length, y: y + 4, width: Math.max(length, 1), height: row - 10 })));
  });
  svg.append(el("line", { x1: zero, x2: zero, y1: 0, y2: row * items.length + 8 }));
  holder.replaceChildren(svg);
}
