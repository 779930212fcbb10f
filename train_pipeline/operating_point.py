"""The operating point of a binary task: a decision threshold on the positive class's probability
(the task's second class), chosen on OUT-OF-FOLD predictions of the training split from the task
config (``operating_point: {sensitivity: 0.80}`` or ``{metric: f2}``), then reported on the
held-out rows with bootstrap 95 % intervals, and drawn as ROC and precision-recall curves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import (
    f1_score,
    fbeta_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

RATES = ("sensitivity", "specificity", "ppv", "npv")


@dataclass(frozen=True)
class OperatingPoint:
    """The chosen threshold, the rule behind it and what it achieved out of fold."""

    threshold: float
    rule: str  # "sensitivity>=0.8" | "max f2"
    oof_sensitivity: float
    oof_specificity: float


def choose_threshold(
    y: np.ndarray, p: np.ndarray, sensitivity: float | None = None, metric: str | None = None
) -> OperatingPoint:
    """The highest threshold whose sensitivity reaches ``sensitivity``, or the one maximising
    ``metric`` (``f1``/``f2``), on labels ``y`` (1 = positive) and probabilities ``p``."""
    y = np.asarray(y).astype(int)
    grid = np.unique(np.round(np.asarray(p, float), 4))[::-1]  # high -> low
    if sensitivity is not None:
        threshold = float(grid[-1])
        for t in grid:
            if _rates(y, p >= t)["sensitivity"] >= sensitivity:
                threshold = float(t)
                break
        rule = f"sensitivity>={sensitivity:g}"
    elif metric in ("f1", "f2"):
        beta = 2.0 if metric == "f2" else 1.0
        scores = [fbeta_score(y, p >= t, beta=beta, zero_division=0) for t in grid]
        threshold, rule = float(grid[int(np.argmax(scores))]), f"max {metric}"
    else:
        raise ValueError("operating point: give a sensitivity or a metric (f1, f2)")
    rates = _rates(y, p >= threshold)
    return OperatingPoint(threshold, rule, rates["sensitivity"], rates["specificity"])


def _rates(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    tp = float(np.sum((pred == 1) & (y == 1)))
    tn = float(np.sum((pred == 0) & (y == 0)))
    fp = float(np.sum((pred == 1) & (y == 0)))
    fn = float(np.sum((pred == 0) & (y == 1)))

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("nan")

    return {
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
    }


def held_out_report(
    y: np.ndarray, p: np.ndarray, threshold: float, seed: int = 0, n_boot: int = 500
) -> dict[str, float]:
    """Sensitivity, specificity, PPV, NPV, macro-F1 and ROC-AUC at ``threshold`` with their
    bootstrap 95 % intervals (keys ``<name>``, ``<name>_lo``, ``<name>_hi``)."""
    y = np.asarray(y).astype(int)
    pred = (p >= threshold).astype(int)
    stats: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
        **{r: (lambda t, q, _pr, r=r: _rates(t, q)[r]) for r in RATES},  # type: ignore[misc]
        "f1_macro": lambda t, q, _pr: float(f1_score(t, q, average="macro", zero_division=0)),
        "roc_auc": lambda t, _q, pr: (
            float(roc_auc_score(t, pr)) if len(np.unique(t)) == 2 else float("nan")
        ),
    }
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, len(y), len(y)) for _ in range(n_boot)]
    out: dict[str, float] = {"threshold": float(threshold)}
    for name, stat in stats.items():
        values = np.array([stat(y[i], pred[i], p[i]) for i in draws])
        lo, hi = np.nanpercentile(values, [2.5, 97.5])
        out |= {name: stat(y, pred, p), f"{name}_lo": float(lo), f"{name}_hi": float(hi)}
    return out


def curve_figures(y: np.ndarray, p: np.ndarray, threshold: float, title: str) -> dict[str, Figure]:
    """``roc_curve.png`` and ``precision_recall_curve.png`` with the operating point marked."""
    y = np.asarray(y).astype(int)
    r = _rates(y, p >= threshold)
    fpr, tpr, _ = roc_curve(y, p)
    roc, ax = plt.subplots(figsize=(5, 5))
    ax.plot(fpr, tpr, color="#3b6ea5", label=f"ROC-AUC {roc_auc_score(y, p):.3f}")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.plot(1 - r["specificity"], r["sensitivity"], "o", color="#c0392b", label="operating point")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"{title}: ROC (held-out)")
    ax.legend(loc="lower right")
    roc.tight_layout()
    precision, recall, _ = precision_recall_curve(y, p)
    pr, ax = plt.subplots(figsize=(5, 5))
    ax.plot(recall, precision, color="#3b6ea5")
    ax.axhline(y.mean(), ls=":", color="grey", label=f"prevalence {y.mean():.3f}")
    ax.plot(r["sensitivity"], r["ppv"], "o", color="#c0392b", label="operating point")
    ax.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title=f"{title}: PR")
    ax.legend(loc="upper right")
    pr.tight_layout()
    return {"roc_curve.png": roc, "precision_recall_curve.png": pr}


def markdown(op: OperatingPoint, report: dict[str, float], positive: str) -> str:
    """The model card's operating-point section."""
    rows = [
        f"| {name} | {report[name]:.3f} | {report[name + '_lo']:.3f} – {report[name + '_hi']:.3f} |"
        for name in (*RATES, "f1_macro", "roc_auc")
    ]
    return "\n".join(
        [
            "## Operating point",
            "",
            f"Positive class `{positive}` when its probability ≥ **{op.threshold:.4f}**, chosen "
            f"on out-of-fold predictions of the training split ({op.rule}: out of fold "
            f"sensitivity {op.oof_sensitivity:.3f}, specificity {op.oof_specificity:.3f}). "
            "The baseline comparison and the champion gate judge the predictions at this "
            "threshold.",
            "",
            "| held-out at the threshold | value | 95 % bootstrap interval |",
            "|---|---|---|",
            *rows,
            "",
        ]
    )
