"""Where a pair of pipelines can come from: the MLflow registry (alias) or the BentoML store.

Both loaders are blocking and import their library lazily (startup speed; a local SQLite
registry is read without MLflow at all, see `mlflow_local`); `loader.py` runs them in a worker
thread under a deadline. Each returns an unchecked `LoadedPair`; the caller runs
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
from app.serving.mlflow_local import LocalRegistry, NotApplicable, RegisteredVersion
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


class _MlflowClientRegistry:
    """The registry through MLflow's own client (any tracking URI; what `LocalRegistry` is
    checked against)."""

    def __init__(self, tracking_uri: str, tmp: str) -> None:
        import mlflow
        from mlflow import MlflowClient

        self._mlflow = mlflow
        self._uri = tracking_uri
        self._tmp = tmp
        self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def version_by_alias(self, name: str, alias: str) -> RegisteredVersion:
        found = self._client.get_model_version_by_alias(name, alias)
        return RegisteredVersion(str(found.version), str(found.run_id), dict(found.tags))

    def run_artifact(self, run_id: str, artifact_path: str) -> Path:
        return Path(
            self._mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=artifact_path,
                dst_path=self._tmp,
                tracking_uri=self._uri,
            )
        )

    def load_sklearn(self, name: str, version: str) -> Any:
        # The version's own artifact location: `models:/` URIs would resolve against the
        # process-wide registry URI, not ours.
        location = self._client.get_model_version_download_uri(name, version)
        local = self._mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=f"{self._tmp}/{name}", tracking_uri=self._uri
        )
        return self._mlflow.sklearn.load_model(local)


def load_mlflow(
    tracking_uri: str, diagnosis_name: str, treatment_name: str, alias: str
) -> LoadedPair:
    """Both ``models:/<name>@<alias>`` versions, which must come from one run.

    A local SQLite registry is read without importing MLflow (`mlflow_local.LocalRegistry`,
    ~1.9 s less to ready); whatever that reader does not handle exactly as MLflow does goes
    through the MLflow client, from the start.
    """
    try:
        with LocalRegistry(tracking_uri) as local:
            return _load_pair(local, diagnosis_name, treatment_name, alias)
    except NotApplicable as exc:
        logger.info("reading the MLflow registry with the MLflow client: %s", exc)
    with tempfile.TemporaryDirectory(prefix="hp-mlflow-") as tmp:
        return _load_pair(
            _MlflowClientRegistry(tracking_uri, tmp), diagnosis_name, treatment_name, alias
        )


def _load_pair(
    registry: LocalRegistry | _MlflowClientRegistry,
    diagnosis_name: str,
    treatment_name: str,
    alias: str,
) -> LoadedPair:
    """The versions are resolved once and then loaded by number, so an alias moved mid-load
    cannot mix two runs. Fingerprints (version tags, then ``bundle_meta.json``) are checked
    before any model is unpickled."""
    dv = registry.version_by_alias(diagnosis_name, alias)
    tv = registry.version_by_alias(treatment_name, alias)
    if dv.run_id != tv.run_id:
        raise IncompatibleModelError(
            f"{alias} versions come from different runs ({dv.run_id} vs {tv.run_id})"
        )
    for name, version in ((diagnosis_name, dv), (treatment_name, tv)):
        _refuse_foreign_fingerprint(f"{name} v{version.version}", version.tags.get(FINGERPRINT_TAG))
    meta_path = registry.run_artifact(dv.run_id, BUNDLE_META_ARTIFACT)
    meta = BundleMeta.from_json(meta_path.read_text())
    _refuse_foreign_fingerprint(BUNDLE_META_ARTIFACT, meta.contract_fingerprint)
    pipelines = [
        registry.load_sklearn(name, version.version)
        for name, version in ((diagnosis_name, dv), (treatment_name, tv))
    ]
    return LoadedPair(
        pipelines[0],
        pipelines[1],
        meta,
        "mlflow",
        dv.version,
        tv.version,
        dv.run_id,
        tv.run_id,
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
