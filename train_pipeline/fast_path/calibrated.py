"""A calibrated model step's fitted calibrators applied to the classifier's probabilities.

scikit-learn's fitted calibrated classifier (``CalibratedClassifierCV(ensemble=False)``'s one
``_CalibratedClassifier``) asks its classifier for scores through ``_get_response_values``,
which checks the classifier's classes with ``type_of_target`` on every call, and temperature
scaling validates its input again (``check_array``, narwhals' data-frame probes); CatBoost is
then called with the thread count it was trained with. On the one or two rows of a `/predict`
model call that validation cost more than the model: measured in-process (default model:
temperature-scaled CatBoost, 300 trees, 13 classes, 2 rows, same run): 504-725 µs a call
through scikit-learn's calibrated classifier reading the NumPy forest, 239-269 µs calling the
calibrator's own ``predict`` on the forest's probabilities, 61-72 µs with the arithmetic below,
37-40 µs for the forest alone.

`Calibrators.apply` is ``_CalibratedClassifier.predict_proba`` (scikit-learn 1.9) on scores the
caller computed (`FastPipeline`: the NumPy forest up to its row bound, CatBoost on one thread
above):

- temperature: ``softmax(beta * log(p + 1e-12))`` when the scores are probabilities (every entry
  in [0, 1], rows summing to 1 within ``isclose``), as ``_convert_to_logits`` decides; the raw
  scores otherwise;
- sigmoid and isotonic: each class's calibrator on its column (binary: the positive class only,
  the negative being 1 - p), then the rows normalised (uniform where a row sums to 0); sigmoid's
  ``expit(-(a * T + b))`` written out, isotonic through the fitted ``IsotonicRegression``;
- probabilities above 1 by at most 1e-5 set to 1.

`FastPipeline` keeps them only when they reproduce the step's own ``predict_proba`` on the
forest's check rows, through both score sources, to the forest's tolerance; otherwise the step
serves, and that is logged, counted and shown (`FastPipeline.forest_serves`). Tests:
tests/unit/test_calibrated_forest.py (sigmoid, isotonic, temperature; multi-class and binary)
and tests/unit/test_calibration.py (against ``Pipeline.predict_proba``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, softmax

from train_pipeline.fast_path.forest import TOLERANCE

EPS = 1e-12
"""``_convert_to_logits``' guard against log(0)."""
METHODS = ("sigmoid", "isotonic", "temperature")


@dataclass(frozen=True)
class Calibrators:
    """One fitted calibrated classifier's calibrators, applied to its classifier's scores.

    Attributes:
        method: ``sigmoid``, ``isotonic`` or ``temperature``.
        calibrators: the fitted calibrators (one per class; binary: one; temperature: one).
        n_classes: columns of the output (the calibrated step's classes).
        positions: for each one-vs-rest calibrator, its class's column in the output.
    """

    method: str
    calibrators: tuple[Any, ...]
    n_classes: int
    positions: tuple[int, ...]

    @classmethod
    def of_step(cls, step: Any) -> Calibrators | None:
        """The calibrators of ``step`` (``CalibratedClassifierCV`` with ``ensemble=False``: one
        fitted calibrated classifier), or None (several, or a method not written here)."""
        if len(step.calibrated_classifiers_) != 1:
            return None
        fitted = step.calibrated_classifiers_[0]
        if fitted.method not in METHODS:
            return None
        classes = np.asarray(fitted.classes)
        if len(classes) == 2 or fitted.method == "temperature":
            positions = [1] * (len(classes) == 2)  # binary: the positive class's calibrator
        else:  # the classifier's classes among the step's (scikit-learn's LabelEncoder)
            found = [np.flatnonzero(classes == c) for c in fitted.estimator.classes_]
            if any(len(f) != 1 for f in found):
                return None
            positions = [int(f[0]) for f in found]
        return cls(fitted.method, tuple(fitted.calibrators), len(classes), tuple(positions))

    def reproduce(self, expected: np.ndarray, scores: np.ndarray) -> bool:
        """True when `apply` to ``scores`` (the classifier's, on some rows) gives ``expected``
        (the calibrated step's ``predict_proba`` of those rows) to `TOLERANCE`."""
        got = self.apply(scores)
        return got.shape == expected.shape and np.allclose(got, expected, rtol=0, atol=TOLERANCE)

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """(n, K) calibrated probabilities from the classifier's (n, K) probabilities, in the
        calibrated step's class order."""
        if self.method == "temperature":
            logits = _logits(np.asarray(scores, dtype=float))
            proba = np.asarray(softmax(self.calibrators[0].beta_ * logits, axis=1))
        else:
            proba = self._one_vs_rest(scores)
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        return proba

    def _one_vs_rest(self, scores: np.ndarray) -> np.ndarray:
        n, k = scores.shape[0], self.n_classes
        proba = np.zeros((n, k))
        columns = [scores[:, 1]] if k == 2 else list(scores.T)
        for position, column, calibrator in zip(
            self.positions, columns, self.calibrators, strict=True
        ):
            if self.method == "sigmoid":
                proba[:, position] = expit(-(calibrator.a_ * column + calibrator.b_))
            else:
                proba[:, position] = calibrator.predict(column)
        if k == 2:
            proba[:, 0] = 1.0 - proba[:, 1]
            return proba
        total = proba.sum(axis=1)[:, np.newaxis]
        uniform = np.full_like(proba, 1 / k)
        return np.asarray(np.divide(proba, total, out=uniform, where=total != 0))


def _logits(scores: np.ndarray) -> np.ndarray:
    """Log-probabilities when ``scores`` are probabilities, else the scores themselves."""
    # np.isclose(sums, 1.0) with its default tolerances, written out (|a - 1| <= atol + rtol):
    # the same test, without isclose's Python wrapper (~15 µs a call).
    sums = scores.sum(axis=1)
    if ((scores >= 0) & (scores <= 1)).all() and (np.abs(sums - 1.0) <= 1e-08 + 1e-05).all():
        return np.log(scores + EPS)
    return scores
