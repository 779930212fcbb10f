"""Evaluation as pure functions: metrics, calibration, latency, baselines, figures and reports."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

EPS = 1e-15


def confidence_bins(conf: np.ndarray, n_bins: int = 15) -> np.ndarray:
    """The equal-width bin (0..n_bins-1) of each top-label confidence (1.0 in the last)."""
    return np.minimum((conf * n_bins).astype(int), n_bins - 1)


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: |accuracy - confidence| averaged over equal-width confidence bins."""
    y_true = np.asarray(y_true)
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y_true).astype(float)
    bins = confidence_bins(conf, n_bins)
    ece = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: Sequence[str], y_pred: np.ndarray | None = None
) -> dict[str, float]:
    """Every held-out metric of DESIGN §3 for integer labels 0..K-1 and (n, K) probabilities.

    Per-class recall keys are ``recall_<class code>``; ROC-AUC is one-vs-rest macro (binary:
    plain ROC-AUC), NaN when a class is absent from `y_true`.
    """
    y_true = np.asarray(y_true)
    pred = proba.argmax(axis=1) if y_pred is None else np.asarray(y_pred)
    labels = np.arange(len(classes))
    out = {
        "accuracy": accuracy_score(y_true, pred),
        "balanced_accuracy": balanced_accuracy_score(y_true, pred),
        "f1_macro": f1_score(y_true, pred, labels=labels, average="macro", zero_division=0),
        "precision_macro": precision_score(
            y_true, pred, labels=labels, average="macro", zero_division=0
        ),
        "recall_macro": recall_score(y_true, pred, labels=labels, average="macro", zero_division=0),
    }
    per_class = recall_score(y_true, pred, labels=labels, average=None, zero_division=0)
    out |= {f"recall_{c}": r for c, r in zip(classes, per_class, strict=True)}
    clipped = np.clip(proba, EPS, 1.0)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    out["log_loss"] = log_loss(y_true, clipped, labels=labels)
    present = np.unique(y_true)
    try:
        if len(classes) == 2:
            out["roc_auc_ovr"] = roc_auc_score(y_true, clipped[:, 1])
        elif len(present) == len(classes):
            out["roc_auc_ovr"] = roc_auc_score(y_true, clipped, multi_class="ovr", labels=labels)
        else:
            out["roc_auc_ovr"] = float("nan")
    except ValueError:
        out["roc_auc_ovr"] = float("nan")
    out["calibration_error"] = expected_calibration_error(y_true, proba)
    return {k: float(v) for k, v in out.items()}


def latency_per_sample_ms(predict: Callable[[Any], Any], X: Any, repeats: int = 3) -> float:
    """Best-of-`repeats` wall time of one batch call on `X`, per sample, in milliseconds."""
    n = len(X) if hasattr(X, "__len__") else 1
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predict(X)
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best / max(n, 1)


def confusion_matrix_figure(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str], title: str
) -> Figure:
    """Row-normalised confusion matrix (recall on the diagonal) with counts in the cells."""
    cm = confusion_matrix(y_true, y_pred, labels=np.arange(len(classes)))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if cm[i, j]:
                color = "white" if norm[i, j] > 0.5 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def importance_figure(importance: dict[str, float], title: str, top: int = 20) -> Figure:
    """Horizontal bar chart of mean |SHAP| per original feature."""
    items = list(importance.items())[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(items) + 1.5))
    ax.barh([k for k, _ in items], [v for _, v in items], color="#3b6ea5")
    ax.set_xlabel("mean |SHAP value| (all classes)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def report_text(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> str:
    """sklearn's classification report with class codes as row names."""
    return str(
        classification_report(
            y_true,
            y_pred,
            labels=np.arange(len(classes)),
            target_names=list(classes),
            zero_division=0,
            digits=3,
        )
    )


@dataclass(frozen=True)
class BaselineRow:
    """One line of the model card's baseline table."""

    name: str
    accuracy: float
    balanced_accuracy: float
    f1_macro: float


@dataclass(frozen=True)
class BaselineComparison:
    """The chosen model against the majority class and logistic regression on held-out data.

    ``beats_majority`` asks whether the model carries any signal: the lower end of a 95 %
    bootstrap interval of (model - majority) balanced accuracy must be above 0 (the majority
    class always scores 1/K, so noise alone cannot pass). ``beats_logreg`` compares macro-F1.
    """

    rows: tuple[BaselineRow, ...]
    beats_majority: bool
    beats_logreg: bool
    majority_margin_ci: tuple[float, float]
    logreg_margin_ci: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        lines = ["| model | accuracy | balanced accuracy | macro-F1 |", "|---|---|---|---|"]
        lines += [
            f"| {r.name} | {r.accuracy:.3f} | {r.balanced_accuracy:.3f} | {r.f1_macro:.3f} |"
            for r in self.rows
        ]
        return "\n".join(lines)


def _row(name: str, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> BaselineRow:
    labels = np.arange(n_classes)
    return BaselineRow(
        name,
        float(accuracy_score(y_true, y_pred)),
        float(balanced_accuracy_score(y_true, y_pred)),
        float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    )


def _bootstrap_margin(
    y_true: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    metric: Callable[..., float],
    seed: int,
    n_boot: int = 200,
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    diffs = []
    with warnings.catch_warnings():  # a resample may miss a rare class entirely
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(n_boot):
            idx = rng.integers(0, len(y_true), len(y_true))
            diffs.append(metric(y_true[idx], a[idx]) - metric(y_true[idx], b[idx]))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)


def headline_intervals(
    y_true: np.ndarray, proba: np.ndarray, n_classes: int, seed: int = 0, n_boot: int = 200
) -> dict[str, float]:
    """95 % bootstrap intervals of held-out macro-F1 (argmax) and ROC-AUC (binary, else OvR
    macro): ``f1_macro_lo/hi``, ``roc_auc_ovr_lo/hi`` (resamples missing a class are skipped)."""
    y = np.asarray(y_true)
    pred = proba.argmax(axis=1)
    labels = np.arange(n_classes)
    rng = np.random.default_rng(seed)
    f1s, aucs = [], []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        f1s.append(f1_score(y[i], pred[i], labels=labels, average="macro", zero_division=0))
        if len(np.unique(y[i])) != n_classes:
            continue
        if n_classes == 2:
            aucs.append(roc_auc_score(y[i], proba[i, 1]))
        else:
            aucs.append(roc_auc_score(y[i], proba[i], multi_class="ovr", labels=labels))
    out = dict(zip(("f1_macro_lo", "f1_macro_hi"), np.percentile(f1s, [2.5, 97.5]), strict=True))
    if aucs:
        lo, hi = np.percentile(aucs, [2.5, 97.5])
        out |= {"roc_auc_ovr_lo": lo, "roc_auc_ovr_hi": hi}
    return {k: float(v) for k, v in out.items()}


def majority_margin_ci(
    y_true: np.ndarray, model_pred: np.ndarray, majority_pred: np.ndarray, seed: int = 0
) -> tuple[float, float]:
    """95 % bootstrap interval of (model - majority) balanced accuracy: the signal test of
    `BaselineComparison.beats_majority` and of the champion gate (`train_pipeline.gate`)."""

    def bal(t: np.ndarray, p: np.ndarray) -> float:
        return float(balanced_accuracy_score(t, p))

    y = np.asarray(y_true)
    return _bootstrap_margin(y, np.asarray(model_pred), np.asarray(majority_pred), bal, seed)


def compare_baselines(
    y_true: np.ndarray,
    model_pred: np.ndarray,
    majority_pred: np.ndarray,
    logreg_pred: np.ndarray,
    n_classes: int,
    model_name: str,
    seed: int = 0,
) -> BaselineComparison:
    """Build the baseline table and the two explicit verdicts (see `BaselineComparison`)."""
    y_true = np.asarray(y_true)
    rows = (
        _row("majority class", y_true, majority_pred, n_classes),
        _row("logistic regression", y_true, logreg_pred, n_classes),
        _row(model_name, y_true, model_pred, n_classes),
    )

    def f1m(t: np.ndarray, p: np.ndarray) -> float:
        return float(f1_score(t, p, labels=np.arange(n_classes), average="macro", zero_division=0))

    maj_ci = majority_margin_ci(y_true, model_pred, majority_pred, seed)
    log_ci = _bootstrap_margin(y_true, model_pred, logreg_pred, f1m, seed)
    return BaselineComparison(
        rows=rows,
        beats_majority=maj_ci[0] > 0,
        beats_logreg=rows[2].f1_macro > rows[1].f1_macro,
        majority_margin_ci=maj_ci,
        logreg_margin_ci=log_ci,
    )
