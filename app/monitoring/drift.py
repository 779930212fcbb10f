"""Data drift of live inputs against the training reference, with Evidently 0.7.

`compute_drift` is the (blocking, ~seconds) Evidently run; `DriftMonitor` keeps its latest result
cached, refreshes it every ``drift_refresh_s`` from a background asyncio task in a child process
(`drift_worker`), and publishes the drift gauges, so `GET /monitoring/drift` never computes on
the request path (it waits for the child once when nothing is cached yet).

Features come from the contract. The multilabel ``symptoms`` field is not a column Evidently can
test, so it is expanded into ``symptoms_count`` (numeric) and one 0/1 flag per symptom among the
reference's most frequent (`TOP_SYMPTOMS`): a few well-populated columns instead of 33 sparse ones
that would add noise and seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from train_pipeline.contract import ED_COHORT, SYMPTOM_SEPARATOR, TaskContract

logger = logging.getLogger(__name__)

TOP_SYMPTOMS = 8
MIN_VALUES = 10  # fewer non-missing values than this in either window: the column is skipped
REFERENCE_MAX_ROWS = 2000
DATASET_DRIFT_SHARE = 0.5  # Evidently's default: dataset drift when half the columns drift


@dataclass(frozen=True)
class FeatureDrift:
    """Drift test of one column: method, score, threshold and verdict (from Evidently)."""

    feature: str
    kind: str
    method: str
    threshold: float
    score: float
    drifted: bool


@dataclass(frozen=True)
class DriftSummary:
    """JSON body of `GET /monitoring/drift`."""

    computed_at: str
    window_size: int
    reference_size: int
    run_id: str
    drift_share: float
    n_drifted: int
    n_features: int
    dataset_drift: bool
    features: list[FeatureDrift]
    skipped: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DriftResult:
    """A drift summary and the full Evidently HTML report it came from."""

    summary: DriftSummary
    html: str


def _symptom_codes(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        return [c for c in value.split(SYMPTOM_SEPARATOR) if c]
    return [str(c) for c in value]


def to_frame(
    rows: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]], task: TaskContract = ED_COHORT
) -> pd.DataFrame:
    """Canonical records (or a column mapping) -> one row per input, contract columns only.

    Booleans become 0/1, numbers float, missing values NaN; ``symptoms`` stays a list of codes.
    """
    df = pd.DataFrame(rows) if not isinstance(rows, Mapping) else pd.DataFrame(dict(rows))
    out: dict[str, Any] = {}
    for f in task.features:
        col = df[f.name] if f.name in df else pd.Series([None] * len(df), dtype=object)
        if f.kind in ("numeric", "integer"):
            out[f.name] = pd.to_numeric(col, errors="coerce").astype(float)
        elif f.kind == "boolean":
            out[f.name] = col.map(lambda v, d=bool(f.default): float(d if v is None else bool(v)))
        elif f.kind == "multilabel":
            out[f.name] = col.map(_symptom_codes)
        else:
            out[f.name] = col.map(lambda v: None if v is None or v != v else str(v))
    return pd.DataFrame(out, index=range(len(df)))


def reference_from_csv(
    path: Path, max_rows: int = REFERENCE_MAX_ROWS, seed: int = 0
) -> pd.DataFrame:
    """Fallback reference when the model carries none: a seeded sample of the training CSV."""
    df = pd.read_csv(path)
    if len(df) > max_rows:
        df = df.sample(max_rows, random_state=seed)
    return to_frame(df.to_dict("records"))


def top_symptoms(reference: pd.DataFrame, task: TaskContract = ED_COHORT) -> list[str]:
    """The `TOP_SYMPTOMS` most frequent symptom codes in the reference (contract order on ties)."""
    multilabel = task.names_of("multilabel")
    if not multilabel:
        return []
    counts = pd.Series([c for codes in reference[multilabel[0]] for c in codes]).value_counts()
    order = {c: i for i, c in enumerate(task.feature(multilabel[0]).categories)}
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], order.get(kv[0], 0)))
    return [code for code, _ in ranked[:TOP_SYMPTOMS]]


def expand(
    frame: pd.DataFrame, symptoms: Sequence[str], task: TaskContract = ED_COHORT
) -> pd.DataFrame:
    """Replace the multilabel column by its count and one 0/1 flag per listed code."""
    out = frame.copy()
    for name in task.names_of("multilabel"):
        codes = out.pop(name)
        out[f"{name}_count"] = codes.map(len).astype(float)
        for code in symptoms:
            out[f"{name}_{code}"] = codes.map(lambda c, code=code: code in c).astype(int)
    return out


def _definition(frame: pd.DataFrame, task: TaskContract) -> tuple[list[str], list[str]]:
    categorical = [
        n
        for n in frame.columns
        if n in task.names_of("categorical", "boolean")
        or (n.startswith(tuple(task.names_of("multilabel"))) and not n.endswith("_count"))
    ]
    numerical = [n for n in frame.columns if n not in categorical]
    return numerical, categorical


def compute_drift(
    reference: pd.DataFrame, current: pd.DataFrame, run_id: str = "", task: TaskContract = ED_COHORT
) -> DriftResult:
    """Run Evidently's `DataDriftPreset` of ``current`` against ``reference`` (blocking).

    Both frames come from `to_frame`. Columns with fewer than `MIN_VALUES` values in either
    window are left out and listed in ``skipped``.
    """
    # lazy: evidently takes seconds to import and only the drift child process needs it
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    symptoms = top_symptoms(reference, task)
    ref, cur = expand(reference, symptoms, task), expand(current, symptoms, task)
    skipped = {}
    for name in list(ref.columns):
        if ref[name].notna().sum() < MIN_VALUES or cur[name].notna().sum() < MIN_VALUES:
            skipped[name] = f"fewer than {MIN_VALUES} values in the reference or the window"
    ref, cur = ref.drop(columns=list(skipped)), cur.drop(columns=list(skipped))
    numerical, categorical = _definition(ref, task)
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    report = Report([DataDriftPreset(drift_share=DATASET_DRIFT_SHARE)], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    features = _feature_drifts(snapshot.dict(), set(categorical))
    n_drifted = sum(f.drifted for f in features)
    share = n_drifted / len(features) if features else 0.0
    summary = DriftSummary(
        computed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        window_size=len(current),
        reference_size=len(reference),
        run_id=run_id,
        drift_share=share,
        n_drifted=n_drifted,
        n_features=len(features),
        dataset_drift=bool(features) and share >= DATASET_DRIFT_SHARE,
        features=features,
        skipped=skipped,
    )
    return DriftResult(
        summary=summary, html=with_banner(snapshot.get_html_str(as_iframe=False), summary)
    )


def with_banner(report_html: str, summary: DriftSummary) -> str:
    """Evidently's page with our summary on top: its column table is paged and sorted by
    score, so the drifted features are not necessarily visible without scrolling through it."""
    drifted = [f for f in summary.features if f.drifted]
    names = ", ".join(escape(f.feature) for f in drifted) or "none"
    rows = "".join(
        f"<tr><td>{escape(f.feature)}</td><td>{escape(f.method)}</td>"
        f"<td>{f.score:.4g}</td><td>{f.threshold:.4g}</td></tr>"
        for f in drifted
    )
    table = (
        "<table><tr><th>feature</th><th>test</th><th>score</th><th>threshold</th></tr>"
        f"{rows}</table>"
        if rows
        else ""
    )
    banner = (
        '<section id="healthpredict-drift-summary" style="font-family:sans-serif;'
        'padding:12px 24px;border-bottom:1px solid #ccc">'
        "<h1>HealthPredict input drift</h1>"
        f"<p>Window of {summary.window_size} live inputs vs {summary.reference_size} training "
        f"rows (run {escape(summary.run_id) or 'unknown'}), computed {summary.computed_at}.</p>"
        f"<p><b>Drifted features ({summary.n_drifted} of {summary.n_features}, share "
        f"{summary.drift_share:.1%}):</b> {names}</p>{table}</section>"
    )
    head, sep, tail = report_html.partition("<body>")
    return head + sep + banner + tail if sep else banner + report_html


def _feature_drifts(snapshot: dict[str, Any], categorical: set[str]) -> list[FeatureDrift]:
    """Per-column drift from the snapshot: score from the metric, verdict from its test."""
    verdicts = {}
    for test in snapshot.get("tests", []):
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith("ValueDrift"):
            verdicts[params["column"]] = test["status"] == "FAIL"
    out = []
    for metric in snapshot.get("metrics", []):
        config = metric.get("config", {})
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        column = config["column"]
        out.append(
            FeatureDrift(
                feature=column,
                kind="categorical" if column in categorical else "numerical",
                method=str(config.get("method")),
                threshold=float(config.get("threshold") or 0.0),
                score=float(metric["value"]),
                drifted=verdicts[column],
            )
        )
    return out
