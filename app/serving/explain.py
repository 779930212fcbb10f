"""SHAP explanations of the predicted diagnosis, in the contract's original field names.

Exact tree SHAP on the model's input matrix (`FastPipeline.transform_matrix`): for CatBoost
from per-tree tables precomputed once per model (`train_pipeline.fast_path.tree_shap`: ~0.3 ms a
patient instead of ~5-10 ms for CatBoost's ``ShapValues``, same values), for XGBoost from
``pred_contribs``. Then summed back onto the original fields with the pipeline's column sources
(`FastPipeline.to_original`): the 33 symptom flags add up into ``symptoms``, and a derived
column of several fields (shock index = heart rate / systolic BP) is split equally between
them. Contributions are in raw-score units (the log-odds / softmax input of the predicted
class), so ``base_value + sum(contributions) == raw_score`` for every patient.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from train_pipeline.contract import ED_COHORT, SYMPTOM_SEPARATOR, TaskContract
from train_pipeline.fast_path.pipeline import FastPipeline
from train_pipeline.fast_path.tree_shap import ObliviousTreeShap

logger = logging.getLogger(__name__)
DEFAULT_TOP_N = 5


@dataclass(frozen=True)
class Explanation:
    """One patient's explanation of the predicted diagnosis.

    Attributes:
        class_code: the explained (predicted) diagnosis.
        base_value: the model's expected raw score for that class over the training data.
        raw_score: the patient's raw score for that class (base + sum of contributions).
        contributions: original field -> SHAP contribution, every field of the pipeline.
    """

    class_code: str
    base_value: float
    raw_score: float
    contributions: dict[str, float]


# id(model) -> its explainer; entries go when the model is garbage-collected (a reload).
_fast: dict[int, ObliviousTreeShap | None] = {}
_fast_lock = threading.Lock()


def _native_shap(pipeline: FastPipeline, X: np.ndarray) -> np.ndarray:
    if pipeline.kind == "linear":  # logistic regression: exact linear SHAP, bias last
        return np.asarray(pipeline.model.pred_contribs(X), dtype=float)
    if pipeline.kind == "catboost":
        from catboost import Pool

        return np.asarray(
            pipeline.model.get_feature_importance(
                Pool(X), type="ShapValues", thread_count=pipeline.single_row_threads
            ),
            dtype=float,
        )
    from xgboost import DMatrix

    return np.asarray(pipeline.model.get_booster().predict(DMatrix(X), pred_contribs=True))


def fast_explainer(pipeline: FastPipeline) -> ObliviousTreeShap | None:
    """The precomputed CatBoost explainer of ``pipeline`` (built once, ~1-2 s), or None.

    It is checked against CatBoost's own ``ShapValues`` on a few random rows when built; any
    difference or unsupported model disables it (CatBoost's slower native path is used).
    """
    if pipeline.kind != "catboost":
        return None
    with _fast_lock:
        key = id(pipeline.model)
        if key in _fast:
            return _fast[key]
        explainer: ObliviousTreeShap | None
        try:
            explainer = ObliviousTreeShap(pipeline.model)
            rows = np.random.default_rng(0).normal(0, 3, (4, explainer.n_features))
            if not np.allclose(
                explainer.shap_values(rows), _native_shap(pipeline, rows), atol=1e-8
            ):
                raise ValueError("differs from CatBoost's ShapValues")
        except Exception as exc:
            logger.warning("fast SHAP disabled, using CatBoost's own: %s", exc)
            explainer = None
        _fast[key] = explainer
        weakref.finalize(pipeline.model, _fast.pop, key, None)
        return explainer


def prepare(bundle: Any) -> None:
    """Build the fast explainer now (e.g. at model load) instead of on the first request."""
    fast_explainer(bundle.diagnosis)


def raw_shap(pipeline: FastPipeline, X: np.ndarray) -> np.ndarray:
    """SHAP values with the bias as last column: (n, K, F + 1); K = 1 for a binary model."""
    explainer = fast_explainer(pipeline)
    vals = explainer.shap_values(X) if explainer is not None else _native_shap(pipeline, X)
    return vals[:, None, :] if vals.ndim == 2 else vals


def explain_rows(bundle: Any, cols: Mapping[str, Any]) -> list[Explanation]:
    """Explain the predicted diagnosis of every row of ``cols`` (raw columns, as for predict)."""
    pipeline: FastPipeline = bundle.diagnosis
    shap = raw_shap(pipeline, pipeline.transform_matrix(cols))
    raw = shap.sum(axis=2)  # (n, K): the model's raw scores
    classes = [str(c) for c in pipeline.classes]
    if shap.shape[1] == 1:  # binary: contributions to the log-odds of classes[1]
        predicted = (raw[:, 0] > 0).astype(int)
        sign = np.where(predicted == 1, 1.0, -1.0)
        chosen = shap[:, 0, :] * sign[:, None]
    else:
        predicted = raw.argmax(axis=1)
        chosen = shap[np.arange(shap.shape[0]), predicted, :]
    fields, per_field = pipeline.to_original(chosen[:, :-1])
    out = []
    for i, row in enumerate(per_field):
        base = float(chosen[i, -1])
        out.append(
            Explanation(
                class_code=classes[predicted[i]],
                base_value=base,
                raw_score=base + float(row.sum()),
                contributions=dict(zip(fields, map(float, row), strict=True)),
            )
        )
    return out


def _display_value(cols: Mapping[str, Any], name: str, row: int, task: TaskContract) -> Any:
    if name not in cols:
        return None
    value = cols[name][row]
    kind = task.feature(name).kind if name in task.feature_names else ""
    if value is None:
        return None
    if kind == "multilabel":
        codes = value.split(SYMPTOM_SEPARATOR) if isinstance(value, str) else value
        return [str(c) for c in codes if c]
    if isinstance(value, (float, np.floating)) and np.isnan(value):
        return None
    if kind == "boolean":
        return bool(value)
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def top_contributions(
    explanation: Explanation,
    cols: Mapping[str, Any],
    row: int,
    top_n: int = DEFAULT_TOP_N,
    task: TaskContract = ED_COHORT,
) -> list[dict[str, Any]]:
    """The ``top_n`` largest |contributions|, as ``{"feature", "value", "contribution"}``."""
    ranked = sorted(explanation.contributions.items(), key=lambda kv: -abs(kv[1]))[:top_n]
    return [
        {"feature": name, "value": _display_value(cols, name, row, task), "contribution": c}
        for name, c in ranked
    ]


def explain_many(
    bundle: Any, record_cols: Mapping[str, Any], top_n: int = DEFAULT_TOP_N
) -> list[list[dict[str, Any]]]:
    """Per row of ``record_cols``, its top contributions to the predicted diagnosis."""
    return [
        top_contributions(e, record_cols, i, top_n)
        for i, e in enumerate(explain_rows(bundle, record_cols))
    ]


def explain(
    bundle: Any, record_cols: Mapping[str, Any], top_n: int = DEFAULT_TOP_N
) -> list[dict[str, Any]]:
    """Top contributions for the single patient in ``record_cols`` (its first row)."""
    return explain_many(bundle, record_cols, top_n)[0]
