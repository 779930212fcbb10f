"""The shared shape of every HealthPredict pipeline: features -> encode -> impute -> model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from catboost import CatBoostClassifier
from sklearn.pipeline import Pipeline

from train_pipeline.contract import Feature
from train_pipeline.features import ClinicalFeatures, MedianImputer, TargetEncoder

ModelType = Literal["catboost", "xgboost", "logreg"]
MODEL_TYPES: tuple[str, ...] = ("catboost", "xgboost", "logreg")
BOOSTERS: tuple[str, ...] = ("catboost", "xgboost")

# Sized so that `make train` (30k rows, CV included) stays under 3 minutes on 2 cores:
# CatBoost 300 rounds on 23.5k rows x 82 columns x 13 classes costs ~75 CPU-s single-threaded;
# Plain boosting and 64 borders halve it against the defaults for no loss of macro-F1.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "catboost": {
        "iterations": 300,
        "depth": 6,
        "learning_rate": 0.15,
        "l2_leaf_reg": 3.0,
        "boosting_type": "Plain",
        "border_count": 64,
    },
    "xgboost": {
        "n_estimators": 300,
        "max_depth": 6,
        "learning_rate": 0.1,
        "subsample": 0.9,
        "colsample_bytree": 0.8,
        "min_child_weight": 1.0,
        "max_bin": 64,
    },
    "logreg": {"C": 1.0, "max_iter": 300, "tol": 1e-4},
}


def make_classifier(model_type: str, params: Mapping[str, Any] | None, seed: int) -> Any:
    """An unfitted CatBoost, XGBoost or logistic regression (`ScaledLogisticRegression`)
    classifier with our defaults overridden by `params`."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model type {model_type!r}; choose one of {MODEL_TYPES}")
    merged = {**DEFAULT_PARAMS[model_type], **(params or {})}
    if model_type == "logreg":
        from train_pipeline.models.linear import ScaledLogisticRegression

        return ScaledLogisticRegression(**merged, random_state=seed)
    if model_type == "catboost":
        return CatBoostClassifier(
            **{"verbose": False, "allow_writing_files": False, **merged}, random_seed=seed
        )
    from xgboost import XGBClassifier  # lazy: ~0.3 s of the service's import time, unused there

    return XGBClassifier(**{"tree_method": "hist", **merged}, random_state=seed)


def assemble(
    features: tuple[Feature, ...],
    model: Any,
    seed: int,
    engineered: bool = True,
) -> Pipeline:
    """features (contract-driven) -> ordered target encoding -> median imputation -> `model`."""
    cat_pos = ClinicalFeatures.categorical_positions(features, engineered)
    return Pipeline(
        [
            ("features", ClinicalFeatures(features=features, engineered=engineered)),
            ("encode", TargetEncoder(categorical=cat_pos, prior_weight=1.0, random_state=seed)),
            ("impute", MedianImputer()),
            ("model", model),
        ]
    )


def class_weights(y: np.ndarray, scheme: str = "sqrt_balanced") -> np.ndarray:
    """Per-row weights for imbalance: ``balanced`` (n / (K n_k)), its square root, or none."""
    values, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    if scheme == "none":
        return np.ones(len(y))
    w = len(y) / (len(values) * counts)
    if scheme == "sqrt_balanced":
        w = np.sqrt(w)
    elif scheme != "balanced":
        raise ValueError(f"unknown class weight scheme {scheme!r}")
    return w[inverse]


def output_sources(pipeline: Pipeline) -> list[list[str]]:
    """For each column of the model's input matrix, the original contract fields behind it."""
    feats: ClinicalFeatures = pipeline.named_steps["features"]
    enc: TargetEncoder = pipeline.named_steps["encode"]
    names = list(feats.get_feature_names_out())
    return [feats.feature_sources_[names[i]] for i in enc.output_sources()]


def model_feature_names(pipeline: Pipeline) -> list[str]:
    """Names of the model's input columns (after encoding)."""
    feats = pipeline.named_steps["features"]
    return list(pipeline.named_steps["encode"].get_feature_names_out(feats.get_feature_names_out()))
