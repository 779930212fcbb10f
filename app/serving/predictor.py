"""Canonical patient records -> predictions: diagnosis, coherent treatment, quality, rules.

One fast-path call per model for the whole list (no DataFrame): records are turned into the
feature matrix (`ClinicalFeatures.transform_records`), the diagnosis model scores every record
that is not `insufficient`, the treatment model scores them on their *predicted* diagnosis, and
the bundle's `CoherenceTable` keeps the treatment inside the diagnosis' allowed set.

The `Prediction` it returns is the response body itself (`app.serving.prediction`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from app.monitoring import metrics
from app.serving.bundle import ModelBundle, class_codes
from app.serving.prediction import Prediction, response_body
from app.serving.quality import assess, assess_many
from app.serving.reuse import SharedFeatures
from app.serving.rules import evaluate, news2_many, warnings_many
from train_pipeline.contract import ED_COHORT, Feature, TaskContract
from train_pipeline.models.coherence import CoherenceTable
from train_pipeline.models.treatment import DIAGNOSIS_COLUMN

Record = Mapping[str, Any]
COLUMNS_FROM = 32
"""From this many records, `predict_many` builds columns once (quality, NEWS2 and features read
them with NumPy); below it, per-record Python costs less than the NumPy calls."""


def build_columns(records: Sequence[Record], features: Sequence[Feature]) -> dict[str, Any]:
    """Canonical records -> raw columns the fast path takes (absent numeric -> NaN)."""
    cols: dict[str, Any] = {}
    for f in features:
        name = f.name
        if f.kind in ("numeric", "integer"):
            cols[name] = np.array([r.get(name) for r in records], dtype=float)
        elif f.kind == "boolean":
            default = bool(f.default)
            cols[name] = np.array(
                [default if (v := r.get(name)) is None else bool(v) for r in records], dtype=float
            )
        elif f.kind == "multilabel":
            cols[name] = [r.get(name) or () for r in records]
        else:
            cols[name] = [r.get(name) for r in records]
    return cols


def _take(column: Any, index: list[int]) -> Any:
    """The rows ``index`` of one column (an array or a list)."""
    if isinstance(column, np.ndarray):
        return column[index]
    return [column[i] for i in index]


def probe_records(task: TaskContract = ED_COHORT) -> list[dict[str, Any]]:
    """Valid records built from the contract: mid-range, minimum, maximum, and bare.

    Used to warm the models up at load and to verify the shared-features shortcut.
    """
    mid: dict[str, Any] = {}
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    bare: dict[str, Any] = {}
    for f in task.features:
        if f.kind in ("numeric", "integer") and f.minimum is not None and f.maximum is not None:
            middle = (f.minimum + f.maximum) / 2
            mid[f.name] = round(middle) if f.kind == "integer" else middle
            low[f.name], high[f.name] = f.minimum, f.maximum
        elif f.kind == "categorical":
            first = f.categories[0] if f.categories else None
            mid[f.name] = low[f.name] = bare[f.name] = first
            high[f.name] = f.categories[-1] if f.categories else None
        elif f.kind == "multilabel":
            mid[f.name], low[f.name], high[f.name] = list(f.categories[:1]), [], list(f.categories)
        else:
            mid[f.name], low[f.name], high[f.name] = f.default, False, True
        if f.tier == "required" and f.name not in bare:
            bare[f.name] = mid[f.name]
    return [mid, low, high, bare]


class Predictor:
    """Scores canonical records with one `ModelBundle` (immutable; build a new one per bundle).

    Args:
        bundle: the loaded pipelines and their metadata.
        top_k: how many diagnoses `DiagnosisResult.top_k` lists.
        task: the contract (labels of the classes).
        observe: record Prometheus metrics (off for warm-up calls).
    """

    def __init__(
        self,
        bundle: ModelBundle,
        top_k: int = 3,
        task: TaskContract = ED_COHORT,
        *,
        observe: bool = True,
    ) -> None:
        self.bundle = bundle
        self._observe = observe
        self.top_k = max(1, top_k)
        self._features = tuple(bundle.diagnosis.features.features)
        meta = bundle.meta
        self._diag_classes = class_codes(bundle.diagnosis.classes, meta.diagnosis_classes)
        self._treat_classes = class_codes(bundle.treatment.classes, meta.treatment_classes)
        self._diag_labels = [task.diagnosis.label(c) for c in self._diag_classes]
        treatment = task.treatment
        self._treat_labels = {
            c: (treatment.label(c) if treatment else c) for c in self._treat_classes
        }
        self._allowed = bundle.meta.allowed_pairs
        self._coherence = CoherenceTable(self._diag_classes, self._treat_classes, self._allowed)
        self._model_info = bundle.info()
        probe = probe_records(task)
        probe_cols = build_columns(probe, self._features)
        self._shared = SharedFeatures.probe(
            bundle.diagnosis, bundle.treatment, self._diag_classes, probe_cols
        )
        self._code_values = (
            None if self._shared is None else self._shared.code_values(self._diag_classes)
        )
        # records -> matrix without columns, checked against the column path at load (a few
        # records: row by row; many: in blocks)
        features = bundle.diagnosis.features
        self._by_records = all(
            np.array_equal(
                features.transform_records(batch),
                features.transform_columns(build_columns(batch, self._features)),
                equal_nan=True,
            )
            for batch in (probe, probe * 4)
        )

    def predict_many(self, records: Sequence[Record]) -> list[Prediction]:
        """Predict every record; `insufficient` ones get no model call and None outputs."""
        t0 = time.perf_counter()
        cols: dict[str, Any] | None = None
        if len(records) >= COLUMNS_FROM:  # quality, NEWS2 and features from one set of columns
            cols = build_columns(records, self._features)
            qualities = assess_many(records, cols)
        else:
            qualities = [assess(r) for r in records]
        scored = [i for i, q in enumerate(qualities) if q.quality != "insufficient"]
        t1 = time.perf_counter()
        diagnoses: list[dict[str, Any] | None] = [None] * len(records)
        treatments: list[dict[str, Any] | None] = [None] * len(records)
        if scored:
            subset = None if len(scored) == len(records) else scored
            rows = records if subset is None else [records[i] for i in scored]
            self._score(rows, scored, diagnoses, treatments, cols, subset)
        t2 = time.perf_counter()
        model = self._model_info
        news2_parts: list[tuple[int | None, str | None]] = []
        blocks: list[list[dict[str, str]]] = []
        if cols is not None:  # NEWS2 and warnings from the columns too
            news2_results = news2_many(cols)
            news2_parts = [(score, band) for score, band, _ in news2_results]
            blocks = warnings_many(cols, qualities, news2_results)
        else:
            for r, q in zip(records, qualities, strict=True):
                rules = evaluate(r, q)
                news2_parts.append((rules.news2_score, rules.news2_band))
                blocks.append(
                    [
                        {"code": w.code, "severity": w.severity, "message": w.message}
                        for w in rules.warnings
                    ]
                )
        out = [
            Prediction.of_body(
                response_body(d, t, q.quality, q.missing, q.imputed, n2[0], n2[1], w, model)
            )
            for q, d, t, n2, w in zip(
                qualities, diagnoses, treatments, news2_parts, blocks, strict=True
            )
        ]
        t3 = time.perf_counter()
        if self._observe:
            metrics.observe_stage("rules", (t1 - t0) + (t3 - t2))
            # One inc(n) per label combination: 1,000 records 7 -> <1 ms (cProfile).
            metrics.observe_predictions(
                (
                    (
                        d["code"] if d else None,
                        t["code"] if t else None,
                        q.quality,
                    )
                    for d, t, q in zip(diagnoses, treatments, qualities, strict=True)
                ),
                self.bundle.diagnosis_version,
            )
        return out

    def _score(
        self,
        records: Sequence[Record],
        index: list[int],
        diagnoses: list[dict[str, Any] | None],
        treatments: list[dict[str, Any] | None],
        cols: dict[str, Any] | None = None,
        subset: list[int] | None = None,
    ) -> None:
        """Score `records` (all sufficient); fill the response blocks at the given `index`.

        ``cols``: the columns of the whole batch, if built, and ``subset`` the rows of it that
        `records` are (None: all). The matrix is made for the whole batch and then cut: one
        NumPy take instead of one per column.
        """
        t0 = time.perf_counter()
        diag, treat = self.bundle.diagnosis, self.bundle.treatment
        if cols is not None:
            raw = diag.features.transform_columns(cols)
            if subset is not None:
                raw = raw[subset]
        elif self._by_records:
            raw = diag.features.transform_records(records)
        else:
            cols, subset = build_columns(records, self._features), None  # `records`' own
            raw = diag.features.transform_columns(cols)
        X = diag.imputer.transform_array(diag.encoder.transform_array(raw))
        t1 = time.perf_counter()
        proba = diag.predict_proba_matrix(X)
        k = min(self.top_k, proba.shape[1])
        order = (-proba).argsort(axis=1, kind="stable")[:, :k]
        top = order[:, 0]
        t2 = time.perf_counter()
        if self._shared is not None and self._code_values is not None:
            # the diagnosis' raw features + the code column
            traw = self._shared.insert(raw, self._code_values[top])
            treat_raw = treat.predict_proba_matrix(
                treat.imputer.transform_array(treat.encoder.transform_array(traw))
            )
        else:
            if cols is not None and subset is not None:
                cols = {k: _take(v, subset) for k, v in cols.items()}
            cols = dict(cols) if cols is not None else build_columns(records, self._features)
            cols[DIAGNOSIS_COLUMN] = [self._diag_classes[j] for j in top.tolist()]
            treat_raw = treat.predict_proba(cols)
        treat_codes, treat_proba = self._coherence.choose(top, treat_raw)
        t3 = time.perf_counter()
        if self._observe:
            metrics.observe_stage("features", t1 - t0)
            metrics.observe_stage("diagnosis", t2 - t1)
            metrics.observe_stage("treatment", t3 - t2)

        # Plain Python lists: indexing NumPy scalars one by one costs more than the trees.
        labels, dclasses, tlabels = self._diag_labels, self._diag_classes, self._treat_labels
        chosen = treat_proba.max(axis=1).tolist()  # the chosen code is the renormalised argmax
        top_p = np.take_along_axis(proba, order, axis=1).tolist()  # only the k kept
        for row, (i, js, ps) in enumerate(zip(index, order.tolist(), top_p, strict=True)):
            top_k = [
                {"code": dclasses[j], "label": labels[j], "probability": p}
                for j, p in zip(js, ps, strict=True)
            ]
            first = top_k[0]
            diagnoses[i] = {
                "code": first["code"],
                "label": first["label"],
                "probability": first["probability"],
                "top_k": top_k,
            }
            code = treat_codes[row]
            treatments[i] = {"code": code, "label": tlabels[code], "probability": chosen[row]}
