// Ops view: the models served, the service's state, feedback, drift and (when loaded) shadow.
import { call } from "./api.js";
import { $, T, el, percent, say } from "./dom.js";
import { download } from "./list.js";

function facts(id, title, pairs) {
  return el("div", { class: "card", id },
    el("h3", { text: title }),
    el("dl", { class: "facts" }, pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v ?? "—")])));
}

function unavailable(id, title, error) {
  return el("div", { class: "card", id }, el("h3", { text: title }),
    el("p", { text: `${T.ops_unavailable}: ${error.message}` }));
}

function modelsCard(m, health) {
  const versions = m.models.map((x) => [`${x.role} (${x.name})`, el("span", { class: "version", text: `v${x.version}` })]);
  return facts("ops-models", T.ops_models, [
    [T.ops_status, health ? `${health.status}${health.loader && health.loader.reason ? ` — ${health.loader.reason}` : ""}` : null],
    [T.ops_source, m.source],
    [T.ops_alias, m.alias],
    ...versions,
    [T.ops_run, el("code", { text: m.run_id })],
    [T.ops_type, m.model_type],
    [T.ops_trained, m.trained_at],
    [T.ops_loaded, `${m.loaded_at} (${m.load_seconds} s)`],
  ]);
}

function feedbackCard(s) {
  const rate = (r) => (r === null ? "—" : percent(r));
  return facts("ops-feedback", T.ops_feedback, [
    [T.ops_total, `${s.total} (${Object.entries(s.by_verdict).map(([k, v]) => `${k} ${v}`).join(", ") || T.none})`],
    [T.ops_error_rate, rate(s.error_rate)],
    [T.ops_retrain, `${s.retraining_recommended ? T.yes : T.no} — ${s.recommendation_reason}`],
  ]);
}

function driftCard(d) {
  const drifted = d.features.filter((f) => f.drifted).map((f) => f.feature);
  const card = facts("ops-drift", T.ops_drift, [
    [T.ops_drift_share, `${percent(d.drift_share)} (${d.n_drifted} / ${d.n_features})`],
    [T.ops_drifted, drifted.join(", ") || T.none],
    ["", d.computed_at],
  ]);
  const button = el("button", { type: "button", id: "drift-report", text: T.ops_drift_report });
  // The report needs the key header, so it cannot be a plain link: fetched, then saved.
  button.addEventListener("click", async () => {
    const { body } = await call("GET", "/monitoring/drift?format=html", undefined, "text/html");
    download("drift_report.html", new Blob([body], { type: "text/html" }));
  });
  card.append(el("p", {}, button));
  return card;
}

// Shown only when the service has a shadow endpoint and a challenger is loaded (200).
function shadowCard(s) {
  const scalars = Object.entries(s).filter(([, v]) => v === null || typeof v !== "object");
  return facts("ops-shadow", T.ops_shadow, scalars.map(([k, v]) => [k, String(v)]));
}

// Each card is shown as soon as its own call answers (the drift report may take seconds).
export async function loadOps(holder, status) {
  say(status, T.sending);
  const grid = el("div", { class: "ops-grid" });
  holder.replaceChildren(grid);
  const slot = () => grid.appendChild(el("div", { class: "card", "aria-busy": "true" }));
  const health = call("GET", "/health").then((r) => r.body, () => null);
  const cards = [
    [slot(), call("GET", "/models"), async (b) => modelsCard(b, await health), "ops-models", T.ops_models],
    [slot(), call("GET", "/feedback/stats"), feedbackCard, "ops-feedback", T.ops_feedback],
    [slot(), call("GET", "/monitoring/drift"), driftCard, "ops-drift", T.ops_drift],
  ].map(async ([place, request, render, id, title]) => {
    let card;
    try {
      card = await render((await request).body);
    } catch (error) {
      card = unavailable(id, title, error);
    }
    place.replaceWith(card);
  });
  const shadow = call("GET", "/models/shadow").then(
    (r) => r.status === 200 && grid.append(shadowCard(r.body)),
    () => null,
  );
  await Promise.all([...cards, shadow]);
  say(status, "");
}

export function setUpOps() {
  $("#ops-load").addEventListener("click", () => loadOps($("#ops-body"), $("#ops-status")));
}
