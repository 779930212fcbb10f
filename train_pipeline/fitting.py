"""Fit and assess both pipelines on a split (no MLflow, no files: plain objects out)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline

from train_pipeline import evaluate as ev
from train_pipeline.contract import TaskContract
from train_pipeline.fast_path.pipeline import FastPipeline
from train_pipeline.models import baseline, diagnosis, treatment
from train_pipeline.models.calibrated import base_model, calibrated, calibration_method
from train_pipeline.models.coherence import coherent_choice, learn_allowed_pairs, merge_overrides
from train_pipeline.models.pipeline import class_weights
from train_pipeline.models.treatment import DIAGNOSIS_COLUMN
from train_pipeline.split import class_order, encode_labels

logger = logging.getLogger(__name__)

CALIBRATION_FOLDS = 3
"""Folds of a calibrated model's out-of-fold scores (fixed, not `FitOptions.cv_folds`: retraining
refits the champion's calibrated model the same way whatever CV its run used)."""
CALIBRATION_TWO_FOLD_ROWS = 10_000
"""Above this many training rows 2 folds instead (the ED cohort: 2 CatBoost fits on half the rows
instead of 3 on two thirds; each row still gets an out-of-fold score)."""


@dataclass(frozen=True)
class FitOptions:
    """Model choices of one training run (plain values, no environment)."""

    model_type: str = "catboost"
    seed: int = 42
    params: dict[str, Any] = field(default_factory=dict)
    cv_folds: int = 3
    cv_params: dict[str, Any] = field(default_factory=dict)
    class_weight: str = "sqrt_balanced"
    explain_rows: int = 400
    calibration: str | None = None  # "sigmoid" / "isotonic": the diagnosis model's calibration


@dataclass
class Assessment:
    """Everything the run logs: fitted pipelines, metrics, figures, texts, baseline verdicts."""

    diagnosis_pipeline: Pipeline
    diagnosis_classes: list[str]
    treatment_pipeline: Pipeline | None = None
    treatment_classes: list[str] = field(default_factory=list)
    allowed_pairs: dict[str, list[str]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    baselines: dict[str, ev.BaselineComparison] = field(default_factory=dict)
    importance: dict[str, float] = field(default_factory=dict)


def threads_params(model_type: str, threads: int | None) -> dict[str, Any]:
    """The thread-count parameter of each booster (None: library default, all cores)."""
    if threads is None or model_type not in ("catboost", "xgboost"):
        return {}
    return {"thread_count": threads} if model_type == "catboost" else {"n_jobs": threads}


def fit_diagnosis(
    task: TaskContract, train: pd.DataFrame, opts: FitOptions, params: dict[str, Any]
) -> tuple[Pipeline, list[str]]:
    """Fit the diagnosis pipeline with class weights; returns it and its class codes.

    With ``opts.calibration`` the model step is calibrated (`models.calibrated`): the class
    weights go to the classifier inside it, never to the calibrators."""
    target = task.diagnosis.name
    classes = class_order(task.diagnosis.codes, train[target].astype(str).unique())
    y = encode_labels(train[target], classes)
    pipe = diagnosis.build_pipeline(task, opts.model_type, params, opts.seed)
    if opts.calibration is None:
        pipe.fit(train, y, model__sample_weight=class_weights(y, opts.class_weight))
        return pipe, classes
    folds = 2 if len(y) > CALIBRATION_TWO_FOLD_ROWS else CALIBRATION_FOLDS
    folds = max(2, min(folds, int(np.bincount(y).min())))
    model = calibrated(pipe.steps[-1][1], opts.calibration, folds, opts.seed, opts.class_weight)
    pipe.steps[-1] = ("model", model)
    pipe.fit(train, y)
    return pipe, classes


def cross_validate(
    task: TaskContract, train: pd.DataFrame, opts: FitOptions, params: dict[str, Any]
) -> dict[str, float]:
    """Stratified k-fold macro-F1 of the diagnosis pipeline (cheaper params) on the train split."""
    target = task.diagnosis.name
    classes = class_order(task.diagnosis.codes, train[target].astype(str).unique())
    y = encode_labels(train[target], classes)
    folds = min(opts.cv_folds, int(np.bincount(y).min()))
    if folds < 2:
        logger.warning("a diagnosis class has fewer than 2 rows: cross-validation skipped")
        return {}
    scores = []
    cv = StratifiedKFold(folds, shuffle=True, random_state=opts.seed)
    for fit_idx, val_idx in cv.split(train, y):
        pipe = diagnosis.build_pipeline(task, opts.model_type, params, opts.seed)
        fold = train.iloc[fit_idx]
        yf = y[fit_idx]
        if len(np.unique(yf)) < len(classes):  # a class missing from this fold
            continue
        pipe.fit(fold, yf, model__sample_weight=class_weights(yf, opts.class_weight))
        proba = pipe.predict_proba(train.iloc[val_idx])
        scores.append(ev.classification_metrics(y[val_idx], proba, classes)["f1_macro"])
    if not scores:
        return {}
    return {
        "cv_f1_macro_mean": float(np.mean(scores)),
        "cv_f1_macro_std": float(np.std(scores)),
        "cv_folds": float(len(scores)),
    }


def assess_diagnosis(
    task: TaskContract,
    train: pd.DataFrame,
    test: pd.DataFrame,
    out: Assessment,
    seed: int,
    explain: bool = True,
) -> np.ndarray:
    """Held-out metrics, figures, baselines of the diagnosis model.

    Returns:
        the predicted diagnosis code of every row of `test` (input of the end-to-end
        treatment evaluation).
    """
    classes = out.diagnosis_classes
    target = task.diagnosis.name
    pipe = out.diagnosis_pipeline
    proba_all = pipe.predict_proba(test)
    y_all = encode_labels(test[target], classes)
    keep = y_all >= 0  # a class never seen in training cannot be scored
    y_test, proba = y_all[keep], proba_all[keep]
    pred = proba.argmax(axis=1)
    m = ev.classification_metrics(y_test, proba, classes)
    m["latency_per_sample_ms"] = ev.latency_per_sample_ms(pipe.predict_proba, test.iloc[:1000])
    out.metrics |= {f"diagnosis_{k}": v for k, v in m.items()}
    out.figures["confusion_matrix_diagnosis.png"] = ev.confusion_matrix_figure(
        y_test, pred, classes, "Diagnosis (held-out)"
    )
    out.texts["classification_report_diagnosis.txt"] = ev.report_text(y_test, pred, classes)
    judge_diagnosis(task, train, test, out, proba_all.argmax(axis=1), seed)
    if explain:
        explain_diagnosis(test, out, seed)
    return np.asarray(np.array(classes, dtype=object)[proba_all.argmax(axis=1)])


def judge_diagnosis(
    task: TaskContract,
    train: pd.DataFrame,
    test: pd.DataFrame,
    out: Assessment,
    pred: np.ndarray,
    seed: int,
) -> None:
    """The diagnosis model's held-out predictions ``pred`` (class indices, every row of
    ``test``) against the majority class and logistic regression: ``out.baselines`` and the
    ``diagnosis_baseline_*`` / ``beats_*`` metrics, which the champion gate reads."""
    classes, target = out.diagnosis_classes, task.diagnosis.name
    y_all = encode_labels(test[target], classes)
    keep = y_all >= 0
    out.baselines["diagnosis"] = _baselines(
        task.features,
        train,
        encode_labels(train[target], classes),
        test.loc[keep],
        y_all[keep],
        np.asarray(pred)[keep],
        len(classes),
        seed,
        out.metrics,
        "diagnosis",
        _model_name(out.diagnosis_pipeline),
    )


def explain_diagnosis(test: pd.DataFrame, out: Assessment, seed: int, rows: int = 400) -> None:
    """Global mean |SHAP| per original feature on a held-out sample, and its bar chart."""
    fast = FastPipeline.from_pipeline(out.diagnosis_pipeline, forest=False)
    sample = test.sample(min(len(test), rows), random_state=seed)
    out.importance = fast.global_importance({c: sample[c].to_numpy() for c in sample.columns})
    out.figures["shap_importance_diagnosis.png"] = ev.importance_figure(
        out.importance, "Diagnosis: global feature importance (mean |SHAP|)"
    )


def _model_name(pipe: Pipeline) -> str:
    model = pipe.named_steps["model"]
    method = calibration_method(model)
    name = type(base_model(model)).__name__
    return f"{name} ({method} calibration)" if method else name


def _baselines(
    features: Any,
    train: pd.DataFrame,
    y_train: np.ndarray,
    test: pd.DataFrame,
    y_test: np.ndarray,
    model_pred: np.ndarray,
    n_classes: int,
    seed: int,
    metrics: dict[str, float],
    role: str,
    model_name: str,
    choose: Any = None,
) -> ev.BaselineComparison:
    """Majority class and logistic regression on the same split; verdicts into `metrics`."""
    preds = {}
    for name, build in (
        ("majority", baseline.majority_pipeline),
        ("logreg", baseline.logreg_pipeline),
    ):
        pipe = build(features, seed).fit(train, y_train)
        proba = pipe.predict_proba(test)
        full = np.zeros((len(proba), n_classes))
        full[:, pipe.classes_] = proba
        # coherence applies to logistic regression as it would when served; the majority
        # baseline stays the plain most frequent class
        preds[name] = (
            choose(full) if choose is not None and name == "logreg" else (full.argmax(axis=1))
        )
    cmp = ev.compare_baselines(
        y_test, model_pred, preds["majority"], preds["logreg"], n_classes, model_name, seed
    )
    for row, key in zip(cmp.rows, ("majority", "logreg", "model"), strict=True):
        metrics[f"{role}_baseline_{key}_f1_macro"] = row.f1_macro
        metrics[f"{role}_baseline_{key}_balanced_accuracy"] = row.balanced_accuracy
    metrics[f"{role}_beats_majority"] = float(cmp.beats_majority)
    metrics[f"{role}_beats_logreg"] = float(cmp.beats_logreg)
    return cmp


def fit_treatment(
    task: TaskContract,
    train: pd.DataFrame,
    opts: FitOptions,
    params: dict[str, Any],
    out: Assessment,
) -> tuple[pd.DataFrame, np.ndarray]:
    """The treatment pipeline (true diagnoses in, class weights) and the allowed-pairs table
    learned from the same rows (task overrides applied); used by training and retraining.

    Returns:
        The rows the pipeline was fitted on (with the diagnosis column) and their labels.
    """
    assert task.treatment is not None
    target, dtarget = task.treatment.name, task.diagnosis.name
    tr = train.loc[train[target].notna()].copy()
    tr[DIAGNOSIS_COLUMN] = tr[dtarget].astype(str)
    classes = class_order(task.treatment.codes, tr[target].astype(str).unique())
    y = encode_labels(tr[target], classes)
    pipe = treatment.build_pipeline(task, opts.model_type, params, opts.seed)
    pipe.fit(tr, y, model__sample_weight=class_weights(y, opts.class_weight))
    learned = learn_allowed_pairs(tr[DIAGNOSIS_COLUMN], tr[target].astype(str))
    out.treatment_pipeline, out.treatment_classes = pipe, classes
    out.allowed_pairs = merge_overrides(learned, task.allowed_pairs)
    return tr, y


def fit_and_assess_treatment(
    task: TaskContract,
    train: pd.DataFrame,
    test: pd.DataFrame,
    pred_diag: np.ndarray,
    out: Assessment,
    opts: FitOptions,
    params: dict[str, Any],
) -> None:
    """Train on true diagnoses; evaluate end-to-end on the PREDICTED diagnoses of `test`."""
    assert task.treatment is not None
    target = task.treatment.name
    tr, y = fit_treatment(task, train, opts, params, out)
    pipe, classes, allowed = out.treatment_pipeline, out.treatment_classes, out.allowed_pairs
    assert pipe is not None

    te = test.assign(**{DIAGNOSIS_COLUMN: pred_diag})
    te = te.loc[te[target].notna()]
    y_test = encode_labels(te[target], classes)
    te, y_test = te.loc[y_test >= 0], y_test[y_test >= 0]
    diag_codes = te[DIAGNOSIS_COLUMN].astype(str).tolist()
    _, proba = coherent_choice(diag_codes, pipe.predict_proba(te), classes, allowed)
    pred = proba.argmax(axis=1)
    m = ev.classification_metrics(y_test, proba, classes)
    m["latency_per_sample_ms"] = ev.latency_per_sample_ms(pipe.predict_proba, te.iloc[:1000])
    out.metrics |= {f"treatment_{k}": v for k, v in m.items()}
    out.figures["confusion_matrix_treatment.png"] = ev.confusion_matrix_figure(
        y_test, pred, classes, "Treatment, end-to-end on predicted diagnoses (held-out)"
    )
    out.texts["classification_report_treatment.txt"] = ev.report_text(y_test, pred, classes)

    def choose(full: np.ndarray) -> np.ndarray:
        return np.asarray(coherent_choice(diag_codes, full, classes, allowed)[1].argmax(axis=1))

    out.baselines["treatment"] = _baselines(
        treatment.treatment_features(task),
        tr,
        y,
        te,
        y_test,
        pred,
        len(classes),
        opts.seed,
        out.metrics,
        "treatment",
        _model_name(pipe),
        choose=choose,
    )
