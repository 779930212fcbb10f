"""Canonical patient records -> predictions: diagnosis, coherent treatment, quality, rules.

One path for one record and for thousands: records become raw columns (`build_columns`), read
by the quality grading, NEWS2, the warnings and the feature matrix; one fast-path call per model
(`train_pipeline.fast_path`, no DataFrame) scores every record that is not `insufficient`, the
treatment model scores them on their *predicted* diagnosis, and the bundle's `CoherenceTable`
keeps the treatment inside the diagnosis' allowed set.

The `Prediction` it returns is the response body itself (`app.serving.prediction`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from app.monitoring import metrics
from app.serving.bundle import ModelBundle, class_codes
from app.serving.prediction import Prediction, response_body
from app.serving.quality import assess_many
from app.serving.rules import news2_many, warnings_many
from train_pipeline.contract import ED_COHORT, Feature, TaskContract
from train_pipeline.fast_path.shared_features import SharedFeatures
from train_pipeline.models.coherence import CoherenceTable
from train_pipeline.models.treatment import DIAGNOSIS_COLUMN

logger = logging.getLogger(__name__)
Record = Mapping[str, Any]


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
        observe: record Prometheus metrics, and report fast paths that could not be used (off
            for warm-up calls).

    Attributes:
        fast_paths: each fast path and whether it serves this bundle (`/health` shows them).
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
        self._coherence = CoherenceTable(
            self._diag_classes, self._treat_classes, bundle.meta.allowed_pairs
        )
        self._model_info = bundle.info()
        probe_cols = build_columns(probe_records(task), self._features)
        self._shared = SharedFeatures.probe(
            bundle.diagnosis, bundle.treatment, self._diag_classes, probe_cols
        )
        self._code_values = (
            None if self._shared is None else self._shared.code_values(self._diag_classes)
        )
        self.fast_paths = {
            "diagnosis_forest": bundle.diagnosis.forest_serves,
            "treatment_forest": bundle.treatment.forest_serves,
            "shared_features": self._shared is not None,
        }
        if observe:
            self._report_disabled(bundle)

    def _report_disabled(self, bundle: ModelBundle) -> None:
        """Log once and count each fast path this bundle cannot use (its plain path serves)."""
        for path, used in self.fast_paths.items():
            model = bundle.diagnosis if path.startswith("diagnosis") else bundle.treatment
            if used or (path.endswith("forest") and model.kind != "catboost"):
                continue  # (the forest exists for CatBoost models only)
            why = "calibrators not reproduced" if model.forest is not None else "not verified"
            logger.warning(
                "fast path disabled for this bundle; its plain path serves",
                extra={"path": path, "run_id": bundle.run_id, "reason": why},
            )
            metrics.fast_path_disabled(path)

    def predict_many(self, records: Sequence[Record]) -> list[Prediction]:
        """Predict every record; `insufficient` ones get no model call and None outputs."""
        t0 = time.perf_counter()
        cols = build_columns(records, self._features)
        qualities = assess_many(records, cols)
        scored = [i for i, q in enumerate(qualities) if q.quality != "insufficient"]
        t1 = time.perf_counter()
        diagnoses: list[dict[str, Any] | None] = [None] * len(records)
        treatments: list[dict[str, Any] | None] = [None] * len(records)
        if scored:
            self._score(cols, scored if len(scored) < len(records) else None, diagnoses, treatments)
        t2 = time.perf_counter()
        news2_results = news2_many(cols)
        blocks = warnings_many(cols, qualities, news2_results)
        model = self._model_info
        out = [
            Prediction.of_body(
                response_body(d, t, q.quality, q.missing, q.imputed, n2[0], n2[1], w, model)
            )
            for q, d, t, n2, w in zip(
                qualities, diagnoses, treatments, news2_results, blocks, strict=True
            )
        ]
        t3 = time.perf_counter()
        if self._observe:
            metrics.observe_stage("rules", (t1 - t0) + (t3 - t2))
            # One inc(n) per label combination: 1,000 records 7 -> <1 ms (cProfile).
            metrics.observe_predictions(
                (
                    (d["code"] if d else None, t["code"] if t else None, q.quality)
                    for d, t, q in zip(diagnoses, treatments, qualities, strict=True)
                ),
                self.bundle.diagnosis_version,
            )
        return out

    def _score(
        self,
        cols: Mapping[str, Any],
        subset: list[int] | None,
        diagnoses: list[dict[str, Any] | None],
        treatments: list[dict[str, Any] | None],
    ) -> None:
        """Score the rows ``subset`` of ``cols`` (None: all); fill their response blocks.

        The raw matrix is made for the whole batch and then cut: one NumPy take instead of one
        per column.
        """
        t0 = time.perf_counter()
        diag = self.bundle.diagnosis
        raw = diag.features.transform_columns(cols)
        index = list(range(raw.shape[0])) if subset is None else subset
        if subset is not None:
            raw = raw[subset]
        X = diag.imputer.transform_array(diag.encoder.transform_array(raw))
        t1 = time.perf_counter()
        proba = diag.predict_proba_matrix(X)
        k = min(self.top_k, proba.shape[1])
        order = (-proba).argsort(axis=1, kind="stable")[:, :k]
        top = order[:, 0]
        t2 = time.perf_counter()
        treat_raw = self._treatment_proba(cols, subset, raw, top)
        treat_codes, treat_proba = self._coherence.choose(top, treat_raw)
        t3 = time.perf_counter()
        if self._observe:
            metrics.observe_stage("features", t1 - t0)
            metrics.observe_stage("diagnosis", t2 - t1)
            metrics.observe_stage("treatment", t3 - t2)
        self._fill(index, order, proba, treat_codes, treat_proba, diagnoses, treatments)

    def _treatment_proba(
        self, cols: Mapping[str, Any], subset: list[int] | None, raw: Any, top: Any
    ) -> Any:
        """Treatment probabilities of the scored rows on their predicted diagnosis: from the
        diagnosis' raw features plus the code column (`SharedFeatures`), or, when that could
        not be verified for this bundle, from the treatment pipeline's own transform."""
        treat = self.bundle.treatment
        if self._shared is not None and self._code_values is not None:
            traw = self._shared.insert(raw, self._code_values[top])
            return treat.predict_proba_matrix(
                treat.imputer.transform_array(treat.encoder.transform_array(traw))
            )
        rows = subset if subset is not None else range(len(top))
        tcols = {
            name: (col[list(rows)] if isinstance(col, np.ndarray) else [col[i] for i in rows])
            for name, col in cols.items()
        }
        tcols[DIAGNOSIS_COLUMN] = [self._diag_classes[j] for j in top.tolist()]
        return treat.predict_proba(tcols)

    def _fill(
        self,
        index: list[int],
        order: Any,
        proba: Any,
        treat_codes: Sequence[str],
        treat_proba: Any,
        diagnoses: list[dict[str, Any] | None],
        treatments: list[dict[str, Any] | None],
    ) -> None:
        """The diagnosis and treatment blocks of the scored rows, at their ``index``."""
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
