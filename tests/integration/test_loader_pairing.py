"""A diagnosis model and a treatment model from two different training runs are never served
together: not from the MLflow registry (SQLite store, or a real `mlflow server`), not from the
BentoML store, whatever the labels or the bundle metadata say."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.serving.bundle import IncompatibleModelError
from app.serving.loader import ModelManager
from app.serving.sources import load_bentoml, load_mlflow
from tests.api.conftest import assert_error, make_settings
from tests.integration.test_loader_sources import empty_sqlite, settings_for
from tests.integration.test_startup_sources import running_mlflow_server

pytestmark = pytest.mark.integration

DIAG, TREAT, ALIAS = "healthpredict-diagnosis", "healthpredict-treatment", "champion"


def _two_run_registry(trained_store: Any, root: Path) -> tuple[str, str]:
    """A copy of the trained registry where ``treatment@champion`` is a version registered
    from a second run (same model files, same tags: only the run differs).

    Returns:
        The copy's tracking URI and the second run's id.
    """
    import mlflow
    from mlflow import MlflowClient

    db = root / "two-runs.db"
    shutil.copy(Path(trained_store.tracking_uri.removeprefix("sqlite:///")), db)
    uri = f"sqlite:///{db}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias(TREAT, ALIAS)
    experiment = client.get_run(champion.run_id).info.experiment_id
    run_b = client.create_run(experiment, run_name="another-run").info.run_id
    client.set_terminated(run_b)
    # MLflow resolves a ``models:/m-...`` source through the process-wide tracking URI (its
    # TODO in create_model_version): point it at the copy while registering, then restore it.
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        version = client.create_model_version(
            TREAT, champion.source, run_id=run_b, tags=dict(champion.tags)
        )
    finally:
        mlflow.set_tracking_uri(previous)
    client.set_registered_model_alias(TREAT, ALIAS, version.version)
    assert client.get_model_version_by_alias(DIAG, ALIAS).run_id == trained_store.run_id
    assert client.get_model_version_by_alias(TREAT, ALIAS).run_id == run_b
    return uri, run_b


@pytest.fixture(scope="module")
def two_run_registry(
    trained_store: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    return _two_run_registry(trained_store, tmp_path_factory.mktemp("two-runs"))


def test_load_mlflow_refuses_a_champion_pair_from_two_runs(
    two_run_registry: tuple[str, str], trained_store: Any
) -> None:
    uri, run_b = two_run_registry
    with pytest.raises(IncompatibleModelError, match="different runs") as caught:
        load_mlflow(uri, DIAG, TREAT, ALIAS)
    assert trained_store.run_id in str(caught.value) and run_b in str(caught.value)


async def test_manager_refuses_the_mlflow_pair_and_falls_back_to_bentoml(
    two_run_registry: tuple[str, str], trained_store: Any, tmp_path: Path
) -> None:
    uri, run_b = two_run_registry
    for home, served in ((tmp_path / "no-bento", None), (trained_store.bentoml_home, "bentoml")):
        manager = ModelManager(settings_for(uri, home, model_retry_interval_s=60))
        await manager.start()
        try:
            status = manager.status()
            assert status["source"] == served, status
            assert "different runs" in status["source_errors"]["mlflow"]
            assert run_b in status["source_errors"]["mlflow"]
            if served is None:
                assert status["state"] == "degraded" and "different runs" in status["reason"]
            else:
                assert status["run_id"] == trained_store.run_id
        finally:
            await manager.stop()


@pytest.fixture
def two_run_mlflow_server(trained_store: Any, tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` over the two-run registry (the REST path of the client)."""
    uri, _ = _two_run_registry(trained_store, tmp_path)
    with running_mlflow_server(uri, tmp_path) as url:
        yield url


@pytest.mark.slow
def test_the_app_over_a_tracking_server_refuses_the_pair(
    two_run_mlflow_server: str, tmp_path: Path
) -> None:
    settings = make_settings(
        tmp_path,
        mlflow_tracking_uri=two_run_mlflow_server,
        mlflow_timeout_s=60.0,
        model_retry_interval_s=60.0,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert_error(client.get("/health/ready"), 503, "model_not_ready")
        loader = client.get("/health").json()["loader"]
        assert "different runs" in loader["source_errors"]["mlflow"], loader


def _save_pair(
    home: Path, trained_store: Any, runs: dict[str, str], meta_runs: dict[str, str] | None = None
) -> None:
    """Save the trained pipeline of each role in ``runs`` to ``home``, labelled with
    ``runs[role]``, with a bundle_meta whose run id is ``meta_runs[role]`` (default: the label),
    as `register.save_bentoml` writes them."""
    import bentoml

    from train_pipeline import register

    pair = load_bentoml(trained_store.bentoml_home, DIAG, TREAT)
    previous = os.environ.get("BENTOML_HOME")
    register.configure_bentoml_home(home)
    try:
        for name, pipe, role in (
            (DIAG, pair.diagnosis_pipeline, "diagnosis"),
            (TREAT, pair.treatment_pipeline, "treatment"),
        ):
            if role not in runs:
                continue
            meta_run = (meta_runs or runs)[role]
            meta = dataclasses.asdict(pair.meta) | {"run_id": meta_run}
            bentoml.sklearn.save_model(
                name,
                pipe,
                labels={
                    "mlflow_run_id": runs[role],
                    "mlflow_version": "1",
                    "contract": pair.meta.contract_fingerprint,
                    "role": role,
                },
                custom_objects={"bundle_meta": meta},
            )
    finally:
        if previous:
            register.configure_bentoml_home(Path(previous))


RUN_A, RUN_B = "a" * 32, "b" * 32
BENTO_CASES = {
    "labels name two runs": (
        {"diagnosis": RUN_A, "treatment": RUN_B},
        None,
        "no diagnosis and treatment models of the same run",
    ),
    "treatment label has no run": (
        {"diagnosis": RUN_A, "treatment": ""},
        {"diagnosis": RUN_A, "treatment": RUN_A},
        "no diagnosis and treatment models of the same run",
    ),
    "labels agree, bundle_meta names another run": (
        {"diagnosis": RUN_A, "treatment": RUN_A},
        {"diagnosis": RUN_B, "treatment": RUN_B},
        "different runs",
    ),
}


@pytest.mark.parametrize(
    ("runs", "meta_runs", "reason"), BENTO_CASES.values(), ids=list(BENTO_CASES)
)
async def test_bentoml_pair_from_two_runs_is_refused(
    trained_store: Any,
    tmp_path: Path,
    runs: dict[str, str],
    meta_runs: dict[str, str] | None,
    reason: str,
) -> None:
    home = tmp_path / "bento"
    _save_pair(home, trained_store, runs, meta_runs)
    manager = ModelManager(settings_for(empty_sqlite(tmp_path), home, model_retry_interval_s=60))
    await manager.start()
    try:
        status = manager.status()
        assert status["state"] == "degraded" and status["source"] is None, status
        assert reason in status["source_errors"]["bentoml"], status
    finally:
        await manager.stop()


async def test_bentoml_serves_the_newest_matching_pair_never_a_mixed_one(
    trained_store: Any, tmp_path: Path
) -> None:
    """A save interrupted between the two models leaves the newest two from different runs."""
    home = tmp_path / "bento"
    _save_pair(home, trained_store, {"diagnosis": RUN_A, "treatment": RUN_A})
    _save_pair(home, trained_store, {"diagnosis": RUN_B})  # run B's treatment never saved
    manager = ModelManager(settings_for(empty_sqlite(tmp_path), home, model_retry_interval_s=60))
    await manager.start()
    try:
        bundle = manager.bundle
        assert bundle is not None and bundle.source == "bentoml"
        assert bundle.run_id == bundle.meta.run_id == RUN_A
    finally:
        await manager.stop()
