"""ModelManager against real sources: MLflow sqlite registry, BentoML store, black-hole server.

HTTP-level versions (the app's /health/ready) live in tests/integration/test_startup_sources.py;
these check the serving core itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.errors import ModelLoadError, ModelNotReadyError
from app.serving.loader import ModelManager, warmup_record
from app.settings import Settings

pytestmark = pytest.mark.integration

DIAG, TREAT = "healthpredict-diagnosis", "healthpredict-treatment"


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A tracking 'server' that accepts TCP connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)  # keep it open, say nothing
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    srv.close()


def settings_for(tracking_uri: str, bentoml_home: Path, **extra: Any) -> Settings:
    # A generous default deadline: unless a test is about the deadline, it checks which source
    # wins, not how fast a loaded CI machine imports MLflow.
    extra.setdefault("mlflow_timeout_s", 120.0)
    return Settings(
        mlflow_tracking_uri=tracking_uri, bentoml_home=bentoml_home, environment="test", **extra
    )


def empty_sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'empty-mlflow.db'}"


async def test_loads_from_mlflow_registry(trained_store: Any, tmp_path: Path) -> None:
    manager = ModelManager(settings_for(trained_store.tracking_uri, tmp_path / "no-bento"))
    await manager.start()
    try:
        assert manager.ready
        bundle = manager.bundle
        assert bundle is not None and bundle.source == "mlflow"
        assert bundle.diagnosis_version == str(trained_store.diagnosis_version)
        assert bundle.treatment_version == str(trained_store.treatment_version)
        assert bundle.run_id == trained_store.run_id == bundle.meta.run_id
        assert manager.status()["state"] == "ready"
        assert manager.current().predict_many([warmup_record()])[0].diagnosis is not None
    finally:
        await manager.stop()


async def test_black_hole_mlflow_falls_back_to_bentoml_within_deadline(
    trained_store: Any, black_hole: str
) -> None:
    timeout = 2.0
    manager = ModelManager(
        settings_for(black_hole, trained_store.bentoml_home, mlflow_timeout_s=timeout)
    )
    start = time.monotonic()
    await manager.start()
    elapsed = time.monotonic() - start
    try:
        assert manager.ready, manager.status()
        assert manager.bundle is not None and manager.bundle.source == "bentoml"
        assert manager.bundle.run_id == trained_store.run_id
        assert elapsed <= timeout + 2.0, elapsed
        assert "timed out" in manager.status()["source_errors"]["mlflow"]
    finally:
        await manager.stop()


async def test_degraded_then_background_retry_recovers(
    trained_store: Any, tmp_path: Path, black_hole: str
) -> None:
    home = tmp_path / "bento"
    manager = ModelManager(
        settings_for(black_hole, home, mlflow_timeout_s=1.0, model_retry_interval_s=0.5)
    )
    await manager.start()
    try:
        assert not manager.ready and manager.bundle is None
        status = manager.status()
        assert status["state"] == "degraded"
        assert set(status["source_errors"]) == {"mlflow", "bentoml"}
        with pytest.raises(ModelNotReadyError):
            manager.current().predict_many([warmup_record()])
        # a model appears in the BentoML store: the background retry picks it up, no restart
        shutil.copytree(trained_store.bentoml_home / "models", home / "models")
        deadline = time.monotonic() + 20
        while not manager.ready and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert manager.ready, manager.status()
        assert manager.bundle is not None and manager.bundle.source == "bentoml"
        assert manager.status()["attempts"] >= 2
    finally:
        await manager.stop()


def _copy_registry_with_fingerprint(trained_store: Any, tmp_path: Path, fp: str) -> str:
    """A copy of the sqlite registry (artifacts are shared by absolute URI) whose model
    versions carry another contract fingerprint."""
    src = Path(trained_store.tracking_uri.removeprefix("sqlite:///"))
    dst = tmp_path / "foreign.db"
    shutil.copy(src, dst)
    with sqlite3.connect(dst) as db:
        db.execute(
            "UPDATE model_version_tags SET value = ? WHERE key = 'contract_fingerprint'", (fp,)
        )
    return f"sqlite:///{dst}"


async def test_mlflow_model_with_foreign_contract_is_refused_and_bentoml_used(
    trained_store: Any, tmp_path: Path
) -> None:
    uri = _copy_registry_with_fingerprint(trained_store, tmp_path, "0123456789abcdef")
    manager = ModelManager(settings_for(uri, trained_store.bentoml_home))
    await manager.start()
    try:
        assert manager.bundle is not None and manager.bundle.source == "bentoml"
        assert "0123456789abcdef" in manager.status()["source_errors"]["mlflow"]
    finally:
        await manager.stop()


@pytest.fixture
def foreign_bento_home(trained_store: Any, tmp_path: Path) -> Iterator[Path]:
    """A BentoML home holding the real pipelines saved with a mismatched contract fingerprint."""
    import bentoml

    from app.serving.sources import load_bentoml
    from train_pipeline import register

    pair = load_bentoml(trained_store.bentoml_home, DIAG, TREAT)
    meta = dataclasses.asdict(pair.meta) | {"contract_fingerprint": "feedfacefeedface"}
    home = tmp_path / "foreign-bento"
    previous = os.environ.get("BENTOML_HOME")
    register.configure_bentoml_home(home)
    try:
        for name, pipe, role in (
            (DIAG, pair.diagnosis_pipeline, "diagnosis"),
            (TREAT, pair.treatment_pipeline, "treatment"),
        ):
            bentoml.sklearn.save_model(
                name,
                pipe,
                labels={
                    "mlflow_run_id": pair.diagnosis_run_id,
                    "mlflow_version": "1",
                    "contract": "feedfacefeedface",
                    "role": role,
                },
                custom_objects={"bundle_meta": meta},
            )
    finally:
        if previous:
            register.configure_bentoml_home(Path(previous))
    yield home


async def test_bentoml_model_with_foreign_contract_is_refused(
    foreign_bento_home: Path, tmp_path: Path
) -> None:
    manager = ModelManager(
        settings_for(empty_sqlite(tmp_path), foreign_bento_home, model_retry_interval_s=60)
    )
    await manager.start()
    try:
        assert not manager.ready
        assert "feedfacefeedface" in manager.status()["source_errors"]["bentoml"]
    finally:
        await manager.stop()


async def test_reload_swaps_atomically_and_keeps_old_on_failure(
    trained_store: Any, tmp_path: Path
) -> None:
    manager = ModelManager(settings_for(trained_store.tracking_uri, tmp_path / "none"))
    await manager.start()
    try:
        old_predictor = manager.predictor
        assert old_predictor is not None
        failures: list[BaseException] = []
        done = threading.Event()

        def hammer() -> None:  # a client predicting all through the reload
            while not done.is_set():
                try:
                    manager.current().predict_many([warmup_record()])
                except BaseException as exc:
                    failures.append(exc)

        threads = [threading.Thread(target=hammer) for _ in range(2)]
        for t in threads:
            t.start()
        new_bundle = await manager.reload()
        done.set()
        for t in threads:
            t.join()
        assert failures == []
        assert new_bundle is manager.bundle and manager.predictor is not old_predictor
        assert old_predictor.predict_many([warmup_record()])[0].diagnosis is not None

        # a reload that cannot load anything raises and leaves the served bundle alone
        manager.settings = settings_for(empty_sqlite(tmp_path), tmp_path / "none")
        with pytest.raises(ModelLoadError):
            await manager.reload()
        assert manager.bundle is new_bundle and manager.ready
    finally:
        await manager.stop()
