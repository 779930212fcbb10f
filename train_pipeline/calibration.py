"""Probability calibration of the diagnosis model: whether to calibrate, and how.

The method is chosen by cross-validation on the training split only: the model's out-of-fold
probabilities (the model search's, or a CV of a forced model) are calibrated by each method of
`models.calibrated.METHODS` in a 3-fold cross-fit (a calibrator fitted on two thirds of the
rows scores the third, with scikit-learn's own `CalibratedClassifierCV`), and the calibration
error (top-label ECE, `evaluate.expected_calibration_error`) of each is compared with the
uncalibrated one. The method with the lowest error is applied when it lowers the error by at
least `MIN_GAIN` and costs at most `SCORE_TOLERANCE` of the task's primary metric (calibrating
class-weighted probabilities moves the argmax towards frequent classes: on hepatitis sigmoid
calibration halves the error and costs 0.03 of macro-F1). The held-out rows
then give the error before (the classifier fitted on every row, inside the calibrated step) and
after, and a reliability diagram of both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import StratifiedKFold

from train_pipeline import evaluate as ev
from train_pipeline.models.calibrated import METHODS
from train_pipeline.selection import fold_score

MIN_GAIN = 0.002
"""Smallest drop of the out-of-fold calibration error for which a calibrator is applied."""
SCORE_TOLERANCE = 0.005
"""Largest loss of the out-of-fold primary metric a calibration method may cost."""
N_BINS = 15


class _Scores(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A 'classifier' whose probabilities are its input: calibrates given probabilities."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> _Scores:
        self.classes_ = np.arange(np.asarray(X).shape[1])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=float)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X).argmax(axis=1)


@dataclass(frozen=True)
class CalibrationChoice:
    """The out-of-fold comparison behind the decision, and the decision.

    Attributes:
        method: the method applied, None when the model is served uncalibrated.
        errors / scores: ``none`` and each method -> out-of-fold calibration error / metric.
        metric: the primary metric of `scores`.
        oof_proba: out-of-fold probabilities as served (calibrated by `method` when set).
    """

    method: str | None
    errors: dict[str, float]
    scores: dict[str, float]
    metric: str
    oof_proba: np.ndarray = field(repr=False)

    def reason(self) -> str:
        best = min(METHODS, key=lambda m: self.errors.get(m, np.inf))
        if self.method is not None and self.errors[self.method] >= self.errors["none"]:
            return f"{self.method} forced (--calibration)"
        if self.method is not None:
            return (
                f"{self.method} lowered the out-of-fold calibration error from "
                f"{self.errors['none']:.3f} to {self.errors[self.method]:.3f}"
            )
        if best not in self.errors:
            return "no method could be cross-fitted (too few rows of a class)"
        return (
            f"not calibrated: the best method ({best}) gave {self.errors[best]:.3f} against "
            f"{self.errors['none']:.3f} uncalibrated (a gain below {MIN_GAIN}), or cost more "
            f"than {SCORE_TOLERANCE} {self.metric} "
            f"({self.scores[best]:.3f} vs {self.scores['none']:.3f})"
        )

    def metrics(self) -> dict[str, float]:
        out = {f"calibration_cv_error_{k}": v for k, v in self.errors.items()}
        return out | {f"calibration_cv_{self.metric}_{k}": v for k, v in self.scores.items()}


def cross_fitted(
    y: np.ndarray, proba: np.ndarray, method: str, seed: int, folds: int = 3
) -> np.ndarray:
    """Probabilities ``proba`` calibrated by ``method``, each row by a calibrator that did not
    see it."""
    out = np.zeros_like(proba, dtype=float)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    scores = _Scores().fit(proba, y)
    for fit_idx, val_idx in cv.split(proba, y):
        cal = CalibratedClassifierCV(FrozenEstimator(scores), method=method)
        cal.fit(proba[fit_idx], y[fit_idx])
        part = cal.predict_proba(proba[val_idx])
        out[np.ix_(val_idx, cal.classes_)] = part
    return out


def choose_calibration(
    y: np.ndarray,
    proba: np.ndarray,
    classes: list[str],
    metric: str,
    seed: int,
    forced: str | None = None,
) -> CalibrationChoice:
    """Compare the out-of-fold probabilities ``proba`` (labels ``y``) uncalibrated and
    cross-fitted by each method; choose (see the module docstring), or apply ``forced``."""
    y = np.asarray(y)
    variants = {"none": np.asarray(proba, dtype=float)}
    folds = min(3, int(np.bincount(y, minlength=len(classes)).min()))
    if folds >= 2:
        for method in METHODS:
            variants[method] = cross_fitted(y, variants["none"], method, seed, folds)
    errors = {k: ev.expected_calibration_error(y, p, N_BINS) for k, p in variants.items()}
    scores = {k: fold_score(metric, y, p, classes) for k, p in variants.items()}
    eligible = [
        m
        for m in METHODS
        if m in errors
        and scores[m] >= scores["none"] - SCORE_TOLERANCE
        and errors[m] <= errors["none"] - MIN_GAIN
    ]
    method = min(eligible, key=lambda m: errors[m]) if eligible else None
    if forced is not None:
        if forced not in variants:
            raise ValueError(f"calibration {forced!r}: a class has fewer than 2 training rows")
        method = forced
    return CalibrationChoice(method, errors, scores, metric, variants[method or "none"])


def reliability_figure(y: np.ndarray, curves: dict[str, np.ndarray], title: str) -> Figure:
    """Top-label reliability diagram: accuracy against mean confidence per confidence bin, one
    line per probability set (e.g. before / after calibration), bins with rows only."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    for (name, proba), colour in zip(curves.items(), ("#c0392b", "#3b6ea5"), strict=False):
        conf, acc = _bins(np.asarray(y), proba)
        ece = ev.expected_calibration_error(y, proba, N_BINS)
        ax.plot(conf, acc, "o-", color=colour, label=f"{name} (ECE {ece:.3f})")
    ax.set(xlabel="confidence (top-class probability)", ylabel="accuracy", title=title)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def _bins(y: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(float)
    idx = np.minimum((conf * N_BINS).astype(int), N_BINS - 1)
    keep = [b for b in range(N_BINS) if np.any(idx == b)]
    return (
        np.array([conf[idx == b].mean() for b in keep]),
        np.array([correct[idx == b].mean() for b in keep]),
    )


def markdown(choice: CalibrationChoice, held_out: dict[str, Any]) -> str:
    """The model card's calibration section."""
    rows = [
        f"| {k} | {choice.errors[k]:.3f} | {choice.scores[k]:.3f} |"
        for k in ("none", *METHODS)
        if k in choice.errors
    ]
    before, after = held_out["before"], held_out["after"]
    return "\n".join(
        [
            "## Calibration",
            "",
            f"Method chosen by 3-fold cross-fitting on out-of-fold probabilities of the training "
            f"split: {choice.reason()}.",
            "",
            f"| out of fold | calibration error (ECE) | {choice.metric} |",
            "|---|---|---|",
            *rows,
            "",
            f"Held-out calibration error: **{before:.3f} before, {after:.3f} after** "
            f"({'calibrated: ' + choice.method if choice.method else 'served uncalibrated'}); "
            "reliability diagram: `reliability_diagram.png`.",
            "",
        ]
    )
