"""MLflow (run, artifacts, registry, alias) and BentoML (model store) for a trained bundle.

With `train.py` (and `retrain/promote.py`), the only place that talks to MLflow or BentoML.
Helpers are split so a retraining job can log a challenger without promoting it, then call
`set_champion` and `save_to_bentoml` only if it wins.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from train_pipeline.bundle_meta import BundleMeta

logger = logging.getLogger(__name__)

DEFAULT_TASK = "ed_cohort"
ROLES = ("diagnosis", "treatment")
HEADLINE = ("f1_macro", "balanced_accuracy", "accuracy", "roc_auc_ovr", "log_loss")


@dataclass(frozen=True)
class RegisteredBundle:
    """Where one training run's pipelines live in MLflow (treatment_version None: no target)."""

    run_id: str
    experiment_id: str
    diagnosis_version: str
    treatment_version: str | None


def experiment_name(task: str) -> str:
    """``healthpredict`` for the default task, ``healthpredict-<task>`` otherwise."""
    return "healthpredict" if task == DEFAULT_TASK else f"healthpredict-{task}"


def model_names(task: str, diagnosis_name: str, treatment_name: str) -> dict[str, str]:
    """Registered names: the settings' names for the default task, prefixed by task otherwise."""
    if task == DEFAULT_TASK:
        return {"diagnosis": diagnosis_name, "treatment": treatment_name}
    return {
        "diagnosis": f"healthpredict-{task}-diagnosis",
        "treatment": f"healthpredict-{task}-treatment",
    }


def artifact_root_for(tracking_uri: str) -> str | None:
    """`<db dir>/mlruns` for a SQLite store (MLflow would otherwise use ./mlruns of the CWD)."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.parent / "mlruns").resolve().as_uri()
    return None  # a tracking server decides (its --default-artifact-root)


def ensure_experiment(client: Any, name: str, tracking_uri: str) -> str:
    """The experiment id, creating it with an explicit artifact location when needed."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    root = artifact_root_for(tracking_uri)
    location = f"{root}/{name}" if root else None
    return str(client.create_experiment(name, artifact_location=location))


def pip_requirements() -> list[str]:
    """Pinned runtime libraries of the pipelines, given explicitly: MLflow's own inference
    re-imports the model in a subprocess (~20 s per model on this machine).

    The pickles also need this project's `train_pipeline` package importable (it is installed
    wherever the API runs).
    """
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in (
        "mlflow",
        "scikit-learn",
        "numpy",
        "pandas",
        "scipy",
        "catboost",
        "xgboost",
        "cloudpickle",
    ):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out


def _example(df: pd.DataFrame) -> pd.DataFrame:
    """Input example with every numeric column as float (NaN-tolerant schema)."""
    out = df.copy()
    for col in out.columns:
        if pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype(float)
        else:
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out


def log_bundle(
    tracking_uri: str,
    experiment: str,
    pipelines: dict[str, tuple[Pipeline, pd.DataFrame]],
    meta: BundleMeta,
    names: dict[str, str],
    params: dict[str, Any],
    metrics: dict[str, float],
    files_dir: Path,
    run_name: str | None = None,
    trials: list[dict[str, Any]] | None = None,
) -> tuple[RegisteredBundle, BundleMeta]:
    """One MLflow run: params, metrics, files, both models logged and registered (no alias).

    Args:
        pipelines: role -> (fitted pipeline, raw input example rows of that pipeline).
        meta: bundle metadata; its `run_id` is filled in here.
        names: role -> registered model name.
        files_dir: directory of run files, logged as artifacts (``bundle_meta.json`` added).
        trials: model-search trials, each logged as a nested run (``name``, ``params``,
            ``metrics``, ``tags``).

    Returns:
        the registered versions and the metadata with its run id.
    """
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    exp_id = ensure_experiment(client, experiment, tracking_uri)
    versions: dict[str, str] = {}
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as run:
        run_id = run.info.run_id
        meta = replace(meta, run_id=run_id)
        _log_run_record(meta, params, metrics, files_dir)
        for trial in trials or ():
            with mlflow.start_run(experiment_id=exp_id, run_name=trial["name"], nested=True):
                mlflow.log_params({k: str(v)[:500] for k, v in trial["params"].items()})
                mlflow.log_metrics(trial["metrics"])
                mlflow.set_tags(trial["tags"])
        for role, (pipe, example) in pipelines.items():
            versions[role] = _log_model(client, role, pipe, example, names[role], meta)
    bundle = RegisteredBundle(run_id, exp_id, versions["diagnosis"], versions.get("treatment"))
    logger.info("logged run %s: versions %s", run_id, versions)
    return bundle, meta


def _log_run_record(
    meta: BundleMeta, params: dict[str, Any], metrics: dict[str, float], files_dir: Path
) -> None:
    """Params, metrics, tags and files of the active run (``bundle_meta.json`` added)."""
    import mlflow

    mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
    mlflow.log_metrics(metrics)
    mlflow.set_tags(
        {
            "task": meta.task,
            "contract_fingerprint": meta.contract_fingerprint,
            "model_type": meta.model_type,
        }
    )
    (files_dir / "bundle_meta.json").write_text(json.dumps(asdict(meta), indent=1))
    mlflow.log_artifacts(str(files_dir))


def _log_model(
    client: Any, role: str, pipe: Pipeline, example: pd.DataFrame, name: str, meta: BundleMeta
) -> str:
    """Log one pipeline in the active run, register it as `name`, tag the version; its number."""
    import mlflow
    from mlflow.models import infer_signature

    example = _example(example)
    info = mlflow.sklearn.log_model(
        pipe,
        name=f"{role}_model",
        serialization_format="cloudpickle",
        signature=infer_signature(example, pipe.predict_proba(example)),
        input_example=example,
        registered_model_name=name,
        pyfunc_predict_fn="predict_proba",
        pip_requirements=pip_requirements(),
    )
    version = str(info.registered_model_version)
    tags = {"run_id": meta.run_id, "role": role, "contract_fingerprint": meta.contract_fingerprint}
    if role == "diagnosis" and meta.decision_threshold is not None:
        # a binary task's operating point travels with the version: its pyfunc returns
        # probabilities, the positive class is predicted at or above this threshold
        tags["decision_threshold"] = repr(float(meta.decision_threshold))
        tags["positive_class"] = meta.diagnosis_classes[1]
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return version


def set_champion(
    client: Any, names: dict[str, str], versions: dict[str, str | None], alias: str = "champion"
) -> None:
    """Point `alias` at the given version of each registered model (MLflow aliases, no stages)."""
    for role, version in versions.items():
        if version is not None:
            client.set_registered_model_alias(names[role], alias, version)


def tag_run(tracking_uri: str, run_id: str, tags: dict[str, str]) -> None:
    """Add tags to a finished run (e.g. the champion gate's verdict)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def champion_exists(tracking_uri: str, name: str, alias: str = "champion") -> bool:
    """Whether `name@alias` resolves in the registry at `tracking_uri`."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        MlflowClient(
            tracking_uri=tracking_uri, registry_uri=tracking_uri
        ).get_model_version_by_alias(name, alias)
    except MlflowException:
        return False
    return True


def configure_bentoml_home(home: Path) -> None:
    """Make the BentoML model store live in `home`, also if bentoml was imported already."""
    home = Path(home).resolve()
    for sub in ("models", "bentos", "envs", "tmp"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    os.environ["BENTOML_HOME"] = str(home)
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    BentoMLContainer.bentoml_home.set(str(home))
    BentoMLContainer.model_store.set(ModelStore(str(home / "models")))


def save_to_bentoml(
    bentoml_home: Path,
    names: dict[str, str],
    pipelines: dict[str, Pipeline],
    meta: BundleMeta,
    bundle: RegisteredBundle,
) -> dict[str, str]:
    """Save each pipeline to the BentoML store with labels linking it to the MLflow run.

    Returns:
        role -> BentoML tag (``name:version``).
    """
    configure_bentoml_home(bentoml_home)
    import bentoml

    meta_dict = asdict(meta)
    tags: dict[str, str] = {}
    for role, pipe in pipelines.items():
        version = bundle.diagnosis_version if role == "diagnosis" else bundle.treatment_version
        model = bentoml.sklearn.save_model(
            names[role],
            pipe,
            labels={
                "mlflow_run_id": bundle.run_id,
                "mlflow_version": str(version),
                "contract": meta.contract_fingerprint,
                "role": role,
                "task": meta.task,
            },
            custom_objects={"bundle_meta": meta_dict},
            metadata={
                k: float(meta.metrics[f"{role}_{k}"])
                for k in HEADLINE
                if math.isfinite(meta.metrics.get(f"{role}_{k}", float("nan")))
            },
        )
        tags[role] = str(model.tag)
    logger.info("saved to BentoML store %s: %s", bentoml_home, tags)
    return tags
