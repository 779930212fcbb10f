"""Where a pair of pipelines can come from: the MLflow registry (alias) or the BentoML store.

Both loaders are blocking and import their library lazily (startup speed: the import runs in
the loading thread, not before the server starts); `loader.py` runs them in a worker thread
under one deadline for the whole attempt. Each returns an unchecked `LoadedPair`; the caller runs
`bundle.check_compatible` before serving anything.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.serving.bundle import IncompatibleModelError
from train_pipeline.bundle_meta import BundleMeta
from train_pipeline.contract import ED_COHORT

logger = logging.getLogger(__name__)

BUNDLE_META_ARTIFACT = "bundle_meta.json"
FINGERPRINT_TAG = "contract_fingerprint"


@dataclass(frozen=True)
class LoadedPair:
    """Both pipelines of one run as a source returned them, before compatibility checks."""

    diagnosis_pipeline: Any
    treatment_pipeline: Any
    meta: BundleMeta
    source: str
    diagnosis_version: str
    treatment_version: str
    diagnosis_run_id: str
    treatment_run_id: str


_MLFLOW_HTTP_ENV = (
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
)
_SET_BY_OPERATOR = frozenset(k for k in _MLFLOW_HTTP_ENV if k in os.environ)


def limit_mlflow_http(timeout_s: float) -> None:
    """Keep MLflow's own HTTP client from outliving our deadline (values set by ops win).

    MLflow retries 7 times with backoff and waits 120 s per request by default: a black-hole
    server would keep the abandoned worker thread busy for minutes after we gave up on it.
    """
    ours = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, math.ceil(timeout_s))),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # tqdm bars in the service's log
    }
    for key, value in ours.items():
        if key not in _SET_BY_OPERATOR:
            os.environ[key] = value


def _refuse_foreign_fingerprint(where: str, fingerprint: str | None) -> None:
    expected = ED_COHORT.fingerprint()
    if fingerprint and fingerprint != expected:
        raise IncompatibleModelError(
            f"{where}: feature contract {fingerprint!r} != API contract {expected!r}"
        )


def alias_versions(
    tracking_uri: str, diagnosis_name: str, treatment_name: str, alias: str
) -> tuple[str, str]:
    """The diagnosis and treatment versions ``alias`` points at: two small registry queries,
    no artifact (what each replica polls)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    dv = client.get_model_version_by_alias(diagnosis_name, alias)
    tv = client.get_model_version_by_alias(treatment_name, alias)
    return str(dv.version), str(tv.version)


def load_mlflow(
    tracking_uri: str, diagnosis_name: str, treatment_name: str, alias: str
) -> LoadedPair:
    """Both ``models:/<name>@<alias>`` versions, which must come from one run, through MLflow's
    own client (any tracking URI: a SQLite store, a tracking server).

    The versions are resolved once and then loaded by number, so an alias moved mid-load
    cannot mix two runs. Fingerprints (version tags, then ``bundle_meta.json``) are checked
    before any model is unpickled. Every call names ``tracking_uri``; nothing reads the
    process-wide one (`mlflow.set_tracking_uri`, ``MLFLOW_TRACKING_URI``).
    """
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    dv = client.get_model_version_by_alias(diagnosis_name, alias)
    tv = client.get_model_version_by_alias(treatment_name, alias)
    if dv.run_id != tv.run_id:
        raise IncompatibleModelError(
            f"{alias} versions come from different runs ({dv.run_id} vs {tv.run_id})"
        )
    for name, version in ((diagnosis_name, dv), (treatment_name, tv)):
        _refuse_foreign_fingerprint(f"{name} v{version.version}", version.tags.get(FINGERPRINT_TAG))
    uris = {"tracking_uri": tracking_uri, "registry_uri": tracking_uri}
    with tempfile.TemporaryDirectory(prefix="hp-mlflow-") as tmp:
        meta_path = mlflow.artifacts.download_artifacts(
            run_id=dv.run_id, artifact_path=BUNDLE_META_ARTIFACT, dst_path=tmp, **uris
        )
        meta = BundleMeta.from_json(Path(meta_path).read_text())
        _refuse_foreign_fingerprint(BUNDLE_META_ARTIFACT, meta.contract_fingerprint)
        pipelines = []
        for name, version in ((diagnosis_name, dv), (treatment_name, tv)):
            # The version's own artifact location: a `models:/` URI is resolved against the
            # process-wide registry URI whatever `registry_uri` says (MLflow 3.17).
            location = client.get_model_version_download_uri(name, version.version)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=f"{tmp}/{name}", **uris
            )
            pipelines.append(mlflow.sklearn.load_model(local))
    return LoadedPair(
        pipelines[0],
        pipelines[1],
        meta,
        "mlflow",
        str(dv.version),
        str(tv.version),
        str(dv.run_id),
        str(tv.run_id),
    )


def load_bentoml(home: Path, diagnosis_name: str, treatment_name: str) -> LoadedPair:
    """The newest diagnosis model of the store and the treatment model of the same MLflow run.

    `:latest` of each is the normal case; when the latest two disagree (a save interrupted
    between the two models) the newest diagnosis model that has a sibling is used.
    """
    import bentoml
    from bentoml._internal.models.model import ModelStore  # a store per home, not the global one

    store = ModelStore(Path(home) / "models")
    latest = bentoml.models.get(f"{diagnosis_name}:latest", _model_store=store)
    latest_t = bentoml.models.get(f"{treatment_name}:latest", _model_store=store)
    diag, treat = latest, latest_t
    run = diag.info.labels.get("mlflow_run_id", "")
    if run != latest_t.info.labels.get("mlflow_run_id", ""):
        diag, treat = _newest_pair(bentoml, store, diagnosis_name, treatment_name)
        logger.warning(
            "bentoml latest models come from different runs; using the newest matching pair",
            extra={"diagnosis_tag": str(diag.tag), "treatment_tag": str(treat.tag)},
        )
        run = diag.info.labels.get("mlflow_run_id", "")
    for model in (diag, treat):
        _refuse_foreign_fingerprint(str(model.tag), model.info.labels.get("contract"))
    raw_meta = diag.custom_objects.get("bundle_meta")
    if raw_meta is None:
        raise IncompatibleModelError(f"{diag.tag} has no bundle_meta custom object")
    meta = BundleMeta(**raw_meta) if isinstance(raw_meta, dict) else BundleMeta.from_json(raw_meta)
    _refuse_foreign_fingerprint(f"{diag.tag} bundle_meta", meta.contract_fingerprint)
    return LoadedPair(
        bentoml.sklearn.load_model(diag),
        bentoml.sklearn.load_model(treat),
        meta,
        "bentoml",
        diag.info.labels.get("mlflow_version") or str(diag.tag.version),
        treat.info.labels.get("mlflow_version") or str(treat.tag.version),
        run,
        treat.info.labels.get("mlflow_run_id", ""),
    )


def _newest_pair(
    bentoml: Any, store: Any, diagnosis_name: str, treatment_name: str
) -> tuple[Any, Any]:
    treat_by_run: dict[str, Any] = {}
    for model in sorted(
        bentoml.models.list(treatment_name, _model_store=store), key=lambda m: m.creation_time
    ):
        treat_by_run[model.info.labels.get("mlflow_run_id", "")] = model
    diags = sorted(
        bentoml.models.list(diagnosis_name, _model_store=store),
        key=lambda m: m.creation_time,
        reverse=True,
    )
    for diag in diags:
        treat = treat_by_run.get(diag.info.labels.get("mlflow_run_id", ""))
        if treat is not None:
            return diag, treat
    raise IncompatibleModelError("no diagnosis and treatment models of the same run in BentoML")
