// A CSV of patients scored with `POST /predict/batch`: a sortable table, downloadable as CSV.
import { call } from "./api.js";
import { diagnosisLabel, treatmentLabel } from "./answer.js";
import { $, DATA, FIELDS, T, el, say } from "./dom.js";
import { cellValue } from "./form.js";

const QUALITY_RANK = { high: 0, medium: 1, low: 2, insufficient: 3 };
const BAND_RANK = { low: 0, "low-medium": 1, medium: 2, high: 3 };
const COLUMNS = [
  { key: "row", title: T.row },
  { key: "diagnosis", title: T.diagnosis },
  { key: "probability", title: T.probability },
  { key: "treatment", title: T.treatment },
  { key: "quality", title: T.quality, rank: QUALITY_RANK, css: "q-" },
  { key: "news2", title: T.news2 },
  { key: "band", title: `${T.news2} ${T.band}`, rank: BAND_RANK, css: "band-" },
  { key: "warnings", title: T.warnings },
  { key: "prediction_id", title: T.prediction_id, csvOnly: true },
];
let rows = [];
let sorted = { key: "row", descending: false };

// RFC 4180: quoted fields, doubled quotes, commas and newlines inside quotes.
export function parseCsv(text) {
  const out = [];
  let row = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i += 1; }
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(cell); cell = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i += 1;
      row.push(cell); out.push(row); row = []; cell = "";
    } else cell += c;
  }
  if (cell !== "" || row.length) { row.push(cell); out.push(row); }
  return out.filter((r) => r.some((v) => v.trim() !== ""));
}

function toRecords(table) {
  const [header, ...body] = table;
  const names = header.map((h) => h.trim());
  const ignored = names.filter((n) => !FIELDS[n]);
  const records = body.map((cells) => {
    const record = {};
    names.forEach((name, i) => {
      const value = FIELDS[name] && cellValue(FIELDS[name], cells[i] || "");
      if (value !== undefined) record[name] = value;
    });
    return record;
  });
  return { records, ignored };
}

function toRow(index, p) {
  return {
    row: index + 1,
    diagnosis: p.diagnosis ? diagnosisLabel(p.diagnosis.code) : "—",
    probability: p.diagnosis ? Number(p.diagnosis.probability.toFixed(3)) : null,
    treatment: p.treatment ? treatmentLabel(p.treatment.code) : "—",
    quality: p.prediction_quality,
    news2: p.news2.score,
    band: p.news2.band,
    warnings: p.warnings.map((w) => `${w.severity}: ${w.message}`).join("; "),
    prediction_id: p.prediction_id,
  };
}

function sortKey(column, row) {
  const value = row[column.key];
  if (column.rank) return value in column.rank ? column.rank[value] : -1;
  return value === null ? -Infinity : value;
}

function render(holder) {
  const column = COLUMNS.find((c) => c.key === sorted.key);
  const ordered = [...rows].sort((a, b) => {
    const x = sortKey(column, a);
    const y = sortKey(column, b);
    const order = x < y ? -1 : x > y ? 1 : 0;
    return sorted.descending ? -order : order;
  });
  const shown = COLUMNS.filter((c) => !c.csvOnly);
  const head = el("tr", {}, shown.map((c) => el("th", {
    scope: "col", "aria-sort": c.key === sorted.key ? (sorted.descending ? "descending" : "ascending") : null,
  }, el("button", { type: "button", "data-sort": c.key, text: c.title }))));
  const body = ordered.map((r) => el("tr", { class: `row-${r.quality}` }, shown.map((c) => el("td", {
    class: c.css && r[c.key] ? `${c.css}${r[c.key]}` : null,
    text: r[c.key] === null ? "—" : r[c.key],
  }))));
  holder.replaceChildren(el("table", { id: "list-results" },
    el("caption", { text: `${rows.length} ${T.scored}` }), el("thead", {}, head), el("tbody", {}, body)));
}

function csvText() {
  const quote = (v) => {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [COLUMNS.map((c) => c.key).join(",")];
  for (const r of rows) lines.push(COLUMNS.map((c) => quote(r[c.key])).join(","));
  return lines.join("\r\n") + "\r\n";
}

export function download(name, blob) {
  const url = URL.createObjectURL(blob);
  const link = el("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function score(file, holder, status, box) {
  box.hidden = true;
  box.replaceChildren();
  const { records, ignored } = toRecords(parseCsv(await file.text()));
  rows = [];
  say(status, T.sending);
  for (let start = 0; start < records.length; start += DATA.batch_max) {
    try {
      const chunk = records.slice(start, start + DATA.batch_max);
      const { body } = await call("POST", "/predict/batch", { records: chunk });
      body.predictions.forEach((p, i) => rows.push(toRow(start + i, p)));
    } catch (error) {
      const items = error.details.map((d) => {
        const match = /^records\[(\d+)\]\.?(.*)$/.exec(d.field || "");
        const where = match ? `${T.row} ${start + Number(match[1]) + 1} · ${match[2]}` : d.field;
        return el("li", { text: `${where}: ${d.reason} (${JSON.stringify(d.value)})` });
      });
      box.replaceChildren(el("p", {}, el("strong", { text: `${T.row_errors}: ${error.message}` })), el("ul", {}, items));
      box.hidden = false;
      break;
    }
  }
  say(status, `${rows.length} ${T.scored}${ignored.length ? ` · ${T.ignored_columns}: ${ignored.join(", ")}` : ""}`);
  sorted = { key: "row", descending: false };
  render(holder);
  $("#download").hidden = rows.length === 0;
}

export function setUpList(form) {
  const holder = $("#list-table");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = form.elements["csv-file"].files[0];
    if (file) score(file, holder, $("#list-status"), $("#list-errors"));
  });
  holder.addEventListener("click", (event) => {
    const key = event.target.dataset && event.target.dataset.sort;
    if (!key) return;
    sorted = { key, descending: sorted.key === key ? !sorted.descending : false };
    render(holder);
    holder.querySelector(`[data-sort="${key}"]`).focus();
  });
  $("#download").addEventListener("click", () =>
    download("healthpredict-predictions.csv", new Blob([csvText()], { type: "text/csv" })));
}
