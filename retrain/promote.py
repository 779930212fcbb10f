"""Champion vs challenger: load the champion, score both on the same held-out rows, decide, and
move the alias (MLflow) and the BentoML copies only when the challenger wins.

With `train_pipeline/register.py`, the only retraining code that talks to MLflow or BentoML.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from retrain.config import RetrainConfig
from train_pipeline import evaluate as ev
from train_pipeline import register
from train_pipeline.bundle_meta import BundleMeta
from train_pipeline.contract import TaskContract
from train_pipeline.gate import GateVerdict, signal_gate
from train_pipeline.models.coherence import coherent_choice
from train_pipeline.models.treatment import DIAGNOSIS_COLUMN
from train_pipeline.split import class_order, encode_labels

logger = logging.getLogger(__name__)

HEADLINE = ("f1_macro", "balanced_accuracy", "accuracy", "log_loss", "roc_auc_ovr")
LOWER_IS_BETTER = ("log_loss", "calibration_error", "latency_per_sample_ms")


class NoChampionError(RuntimeError):
    """There is no champion to compare with (run `make train` first)."""


@dataclass(frozen=True)
class Champion:
    """The currently aliased pair, as loaded from the registry."""

    diagnosis_pipeline: Pipeline
    treatment_pipeline: Pipeline | None
    meta: BundleMeta
    run_id: str
    diagnosis_version: str
    treatment_version: str | None
    run_params: dict[str, str]


def _client(tracking_uri: str) -> Any:
    from mlflow import MlflowClient  # lazy, like the two below: mlflow takes seconds to import

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def champion_meta(config: RetrainConfig) -> BundleMeta | None:
    """The champion's `BundleMeta` (from its run's ``bundle_meta.json``), None if none."""
    from mlflow.exceptions import MlflowException  # lazy: start-up time (see _client)

    client = _client(config.tracking_uri)
    try:
        version = client.get_model_version_by_alias(config.names["diagnosis"], config.alias)
        path = client.download_artifacts(version.run_id, "bundle_meta.json")
    except MlflowException:
        return None
    with open(path, encoding="utf-8") as fh:
        return BundleMeta(**json.load(fh))


def trained_at(meta: BundleMeta) -> datetime | None:
    """The time a bundle was trained (UTC), None if unreadable."""
    try:
        when = datetime.fromisoformat(meta.trained_at)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def load_champion(config: RetrainConfig) -> Champion:
    """Both champion pipelines (same run) with their metadata and run parameters.

    Raises:
        NoChampionError: no version carries the alias, or the two come from different runs.
    """
    import mlflow.sklearn  # lazy: start-up time (see _client)
    from mlflow.exceptions import MlflowException

    client = _client(config.tracking_uri)
    names = config.names
    try:
        diag = client.get_model_version_by_alias(names["diagnosis"], config.alias)
    except MlflowException as exc:
        raise NoChampionError(
            f"no '{config.alias}' version of {names['diagnosis']} at {config.tracking_uri}; "
            "train one first (make train)"
        ) from exc
    treat = None
    if names.get("treatment"):
        try:
            treat = client.get_model_version_by_alias(names["treatment"], config.alias)
        except MlflowException:
            treat = None
    if treat is not None and treat.run_id != diag.run_id:
        raise NoChampionError(
            "the champion diagnosis and treatment models come from different "
            f"runs ({diag.run_id} vs {treat.run_id})"
        )
    mlflow.set_registry_uri(config.tracking_uri)
    mlflow.set_tracking_uri(config.tracking_uri)
    diag_pipe = mlflow.sklearn.load_model(f"models:/{names['diagnosis']}/{diag.version}")
    treat_pipe = (
        mlflow.sklearn.load_model(f"models:/{names['treatment']}/{treat.version}")
        if treat is not None
        else None
    )
    meta = champion_meta(config)
    if meta is None:
        raise NoChampionError(f"champion run {diag.run_id} has no bundle_meta.json")
    run = client.get_run(diag.run_id)
    return Champion(
        diag_pipe,
        treat_pipe,
        meta,
        diag.run_id,
        str(diag.version),
        str(treat.version) if treat is not None else None,
        dict(run.data.params),
    )


def _aligned(proba: np.ndarray, own: Sequence[str], common: Sequence[str]) -> np.ndarray:
    """(n, K_own) probabilities -> (n, K_common), zeros for classes the model does not know."""
    out = np.zeros((proba.shape[0], len(common)))
    index = {c: j for j, c in enumerate(common)}
    for i, code in enumerate(own):
        out[:, index[code]] = proba[:, i]
    return out


def score_pair(
    task: TaskContract,
    test: pd.DataFrame,
    diagnosis: tuple[Pipeline, Sequence[str]],
    treatment: tuple[Pipeline | None, Sequence[str], dict[str, list[str]]],
    classes: tuple[Sequence[str], Sequence[str]],
) -> dict[str, float]:
    """Held-out metrics of one diagnosis + treatment pair, in a label space shared by the
    models being compared (every row scored; a class a model lacks counts as an error).

    The treatment is scored end-to-end, on the pair's own predicted diagnoses, after the
    coherence mask (`coherent_choice`): what the API would answer.
    """
    diag_pipe, diag_own = diagnosis
    diag_common, treat_common = classes
    dproba = _aligned(diag_pipe.predict_proba(test), diag_own, diag_common)
    y = encode_labels(test[task.diagnosis.name], diag_common)
    scores = {
        f"diagnosis_{k}": v
        for k, v in ev.classification_metrics(y, dproba, list(diag_common)).items()
    }
    treat_pipe, treat_own, allowed = treatment
    if treat_pipe is None or task.treatment is None:
        return scores
    pred_diag = np.asarray(diag_common, dtype=object)[dproba.argmax(axis=1)]
    te = test.assign(**{DIAGNOSIS_COLUMN: pred_diag})
    keep = te[task.treatment.name].notna().to_numpy()
    te = te.loc[keep]
    _, tproba = coherent_choice(
        te[DIAGNOSIS_COLUMN].astype(str).tolist(),
        treat_pipe.predict_proba(te),
        list(treat_own),
        allowed,
    )
    ty = encode_labels(te[task.treatment.name], treat_common)
    tm = ev.classification_metrics(
        ty, _aligned(tproba, treat_own, treat_common), list(treat_common)
    )
    return scores | {f"treatment_{k}": v for k, v in tm.items()}


def common_classes(
    task: TaskContract, test: pd.DataFrame, *model_classes: tuple[Sequence[str], Sequence[str]]
) -> tuple[list[str], list[str]]:
    """Diagnosis and treatment label spaces covering the held-out labels and every model."""
    diag_seen = {str(v) for v in test[task.diagnosis.name].dropna()}
    treat_seen: set[str] = set()
    if task.treatment is not None:
        treat_seen = {str(v) for v in test[task.treatment.name].dropna()}
    for diag, treat in model_classes:
        diag_seen |= set(diag)
        treat_seen |= set(treat)
    treat_codes = task.treatment.codes if task.treatment else ()
    return class_order(task.diagnosis.codes, sorted(diag_seen)), class_order(
        treat_codes, sorted(treat_seen)
    )


def decision_key(metric: str) -> str:
    """``f1_macro`` -> ``diagnosis_f1_macro``; an already prefixed metric is kept."""
    if metric.startswith(("diagnosis_", "treatment_")):
        return metric
    return f"diagnosis_{metric}"


def challenger_wins(champion: float, challenger: float, metric: str, margin: float) -> bool:
    """Strictly better by more than ``margin`` (lower is better for losses and errors).

    A non-finite score on either side never promotes: there is no comparison to win.
    """
    if not (math.isfinite(champion) and math.isfinite(challenger)):
        return False
    if metric.endswith(LOWER_IS_BETTER):
        return champion - challenger > margin
    return challenger - champion > margin


def signal_verdict(
    task: TaskContract,
    train: pd.DataFrame,
    test: pd.DataFrame,
    diagnosis: tuple[Pipeline, Sequence[str]],
    seed: int,
    allow_no_signal: bool = False,
) -> GateVerdict:
    """The champion gate (`train_pipeline.gate`) for a challenger: its held-out diagnoses
    against the training rows' majority class, bootstrap CI of the balanced-accuracy margin."""
    pipe, own = diagnosis
    y_true = test[task.diagnosis.name].astype(str).to_numpy()
    pred = np.asarray(own, dtype=object)[pipe.predict_proba(test).argmax(axis=1)].astype(str)
    majority = str(train[task.diagnosis.name].astype(str).mode().iloc[0])
    ci = ev.majority_margin_ci(y_true, pred, np.full(len(y_true), majority), seed)
    return signal_gate(ci, allow_no_signal)


def headline(scores: dict[str, float], key: str) -> dict[str, float | None]:
    """The headline scores (plus the decision key), NaN as None for JSON."""
    keys = [f"{role}_{m}" for role in ("diagnosis", "treatment") for m in HEADLINE]
    out = {k: scores[k] for k in [key, *keys] if k in scores}
    return {k: (float(v) if math.isfinite(v) else None) for k, v in out.items()}


def record_decision(
    config: RetrainConfig,
    run_id: str,
    champion: Champion,
    champion_scores: dict[str, float],
    challenger_scores: dict[str, float],
    decision: str,
    extra_tags: dict[str, str],
) -> None:
    """Both models' held-out scores (``champion_*`` / ``challenger_*``) and the decision, on
    the challenger's MLflow run."""
    client = _client(config.tracking_uri)
    for prefix, scores in (("champion", champion_scores), ("challenger", challenger_scores)):
        for key, value in scores.items():
            if math.isfinite(value):
                client.log_metric(run_id, f"{prefix}_{key}", float(value))
    key = decision_key(config.metric)
    tags: dict[str, str] = {
        "retrain.decision": decision,
        "retrain.metric": key,
        "retrain.margin": str(config.margin),
        "retrain.champion_run_id": champion.run_id,
        "retrain.champion_versions": f"{champion.diagnosis_version}/{champion.treatment_version}",
        "retrain.champion_score": str(champion_scores.get(key)),
        "retrain.challenger_score": str(challenger_scores.get(key)),
        **extra_tags,
    }
    for name, text in tags.items():
        client.set_tag(run_id, name, text)


def promote(
    config: RetrainConfig,
    pipelines: dict[str, Pipeline],
    meta: BundleMeta,
    bundle: register.RegisteredBundle,
) -> dict[str, str]:
    """Move the alias to the challenger's versions (both models) and save both to BentoML.

    Returns:
        role -> BentoML tag of the saved copies.
    """
    client = _client(config.tracking_uri)
    versions = {"diagnosis": bundle.diagnosis_version, "treatment": bundle.treatment_version}
    register.set_champion(client, config.names, versions, config.alias)
    logger.info("challenger promoted", extra={"run_id": bundle.run_id, "versions": versions})
    return register.save_to_bentoml(config.bentoml_home, config.names, pipelines, meta, bundle)


def mark_challenger(config: RetrainConfig, bundle: register.RegisteredBundle) -> None:
    """Point the shadow alias (``challenger``) at a pair that was not promoted: the API loads
    it beside the champion and scores live predictions with it (`app.serving.shadow`)."""
    versions = {"diagnosis": bundle.diagnosis_version, "treatment": bundle.treatment_version}
    register.set_champion(_client(config.tracking_uri), config.names, versions, config.shadow_alias)
    logger.info("challenger kept as shadow", extra={"run_id": bundle.run_id, "versions": versions})


def promote_shadow_challenger(config: RetrainConfig) -> register.RegisteredBundle:
    """Make the shadow challenger the champion (alias and BentoML copies) and remove its
    shadow alias (`retrain.shadow_gate --promote`, after its evidence was checked).

    Raises:
        NoChampionError: no pair carries the shadow alias.
    """
    from dataclasses import replace

    pair = load_champion(replace(config, alias=config.shadow_alias))
    client = _client(config.tracking_uri)
    bundle = register.RegisteredBundle(
        pair.run_id,
        client.get_run(pair.run_id).info.experiment_id,
        pair.diagnosis_version,
        pair.treatment_version,
    )
    pipes = {"diagnosis": pair.diagnosis_pipeline}
    if pair.treatment_pipeline is not None:
        pipes["treatment"] = pair.treatment_pipeline
    promote(config, pipes, pair.meta, bundle)
    for role, name in config.names.items():
        if role == "diagnosis" or pair.treatment_version is not None:
            client.delete_registered_model_alias(name, config.shadow_alias)
    return bundle
