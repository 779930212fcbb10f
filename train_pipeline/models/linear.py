"""Logistic regression as the ``model`` step of a HealthPredict pipeline (model selection's
``logreg`` candidate), with its own standardisation so the pipeline keeps the shared shape
features -> encode -> impute -> model that serving's fast path unpacks.

Its SHAP values are exact for a linear model under feature independence, relative to the
training mean: ``coef * (x - mean) / scale`` in log-odds units, the layout of XGBoost's
``pred_contribs`` (bias last), so serving explains it like the boosters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.utils.extmath import softmax


class ScaledLogisticRegression(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """StandardScaler + (multinomial) LogisticRegression in one estimator taking sample weights.

    Args:
        C: inverse regularisation strength.
        max_iter / tol: the solver's budget.
        random_state: seed (lbfgs is deterministic; kept for a uniform interface).
    """

    def __init__(
        self, C: float = 1.0, max_iter: int = 300, tol: float = 1e-4, random_state: int = 0
    ) -> None:
        self.C = C
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(
        self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> ScaledLogisticRegression:
        X = np.asarray(X, dtype=float)
        self.scaler_ = StandardScaler().fit(X)
        self.clf_ = LogisticRegression(
            C=self.C, max_iter=self.max_iter, tol=self.tol, random_state=self.random_state
        ).fit(self.scaler_.transform(X), y, sample_weight=sample_weight)
        self.classes_ = self.clf_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    # Scoring is the fitted arithmetic of `StandardScaler.transform` and
    # `LogisticRegression.predict_proba`, in their order, without their input checks (validation,
    # feature names, array-API dispatch): those cost ~150 µs a call, several times the
    # arithmetic on a serving micro-batch. Same values (a unit test compares them with
    # scikit-learn's).
    def _standardised(self, X: Any) -> np.ndarray:
        Z = np.array(X, dtype=float)  # a copy: scaled in place as StandardScaler does
        scaler = self.scaler_
        if scaler.with_mean:
            Z -= scaler.mean_
        if scaler.with_std:
            Z /= scaler.scale_
        return Z

    def predict_proba(self, X: Any) -> np.ndarray:
        clf = self.clf_
        scores = self._standardised(X) @ clf.coef_.T + clf.intercept_
        if scores.shape[1] == 1:  # binary: scikit-learn's one-vs-rest logistic of the logit
            p = expit(scores[:, 0])
            return np.vstack([1 - p, p]).T
        return np.asarray(softmax(scores, copy=False))

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])

    def pred_contribs(self, X: Any) -> np.ndarray:
        """Per-feature log-odds contributions with the bias last: (n, F+1) for a binary model
        (contributions to class 1), (n, K, F+1) otherwise (XGBoost's ``pred_contribs`` shape)."""
        Z = self._standardised(X)
        coef = self.clf_.coef_  # (1, F) binary, (K, F) multinomial
        contrib = Z[:, None, :] * coef[None, :, :]
        bias = np.broadcast_to(self.clf_.intercept_[None, :, None], (Z.shape[0], coef.shape[0], 1))
        out = np.concatenate([contrib, bias], axis=2)
        return out[:, 0, :] if coef.shape[0] == 1 else out
