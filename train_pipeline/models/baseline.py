"""Reference models for the model card: majority class and logistic regression."""

from __future__ import annotations

from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from train_pipeline.contract import Feature
from train_pipeline.models.pipeline import assemble


def majority_pipeline(features: tuple[Feature, ...], seed: int = 42) -> Pipeline:
    """Always predicts the most frequent training class (probabilities = class priors)."""
    return assemble(features, DummyClassifier(strategy="prior"), seed)


def logreg_pipeline(features: tuple[Feature, ...], seed: int = 42) -> Pipeline:
    """The same features, encoding and imputation, then scaled multinomial logistic regression."""
    pipe = assemble(
        features, LogisticRegression(max_iter=200, tol=1e-3, C=1.0, random_state=seed), seed
    )
    pipe.steps.insert(3, ("scale", StandardScaler()))
    return pipe
