"""`sources.load_mlflow` through MLflow's own client on the trained SQLite registry: the champion
pair by version, MLflow's own answers when something is missing, and our tracking URI whatever
the process-wide one says. (Tracking server, black hole, deadline: test_loader_sources.py,
test_startup_sources.py; two runs: test_loader_pairing.py.)"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.exceptions import MlflowException

from app.serving.loader import build_bundle
from app.serving.predictor import probe_records
from app.serving.sources import load_bentoml, load_mlflow

pytestmark = pytest.mark.integration

DIAG, TREAT, ALIAS = "healthpredict-diagnosis", "healthpredict-treatment", "champion"


def _copy(trained_store: Any, tmp_path: Path, *sql: str) -> str:
    """A copy of the registry database (artifact URIs are absolute) with ``sql`` applied."""
    dst = tmp_path / "registry-copy.db"
    shutil.copy(Path(trained_store.tracking_uri.removeprefix("sqlite:///")), dst)
    with sqlite3.connect(dst) as db:
        for statement in sql:
            db.execute(statement)
    return f"sqlite:///{dst}"


def test_loads_the_champion_pair_the_bentoml_store_also_holds(trained_store: Any) -> None:
    pair = load_mlflow(trained_store.tracking_uri, DIAG, TREAT, ALIAS)
    assert pair.source == "mlflow"
    assert (pair.diagnosis_version, pair.treatment_version) == (
        str(trained_store.diagnosis_version),
        str(trained_store.treatment_version),
    )
    assert pair.diagnosis_run_id == pair.treatment_run_id == pair.meta.run_id
    assert pair.meta.run_id == trained_store.run_id
    bento = load_bentoml(trained_store.bentoml_home, DIAG, TREAT)
    assert pair.meta == bento.meta
    _, from_mlflow = build_bundle(lambda: pair, 3)
    _, from_bentoml = build_bundle(lambda: bento, 3)
    records = probe_records()
    answers = [
        [(p.diagnosis, p.treatment) for p in predictor.predict_many(records)]
        for predictor in (from_mlflow, from_bentoml)
    ]
    assert answers[0] == answers[1]  # the model block differs: it names the source


@pytest.fixture
def process_wide_uri_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """MLflow's process-wide tracking and registry URIs pointed at another, empty store."""
    import mlflow

    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    saved = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", elsewhere)
    mlflow.set_tracking_uri(elsewhere)  # what `train(...)` of the session fixture left set
    mlflow.set_registry_uri(elsewhere)
    try:
        yield elsewhere
    finally:
        mlflow.set_tracking_uri(saved[0])
        mlflow.set_registry_uri(saved[1])


def test_the_given_tracking_uri_wins_over_the_process_wide_one(
    trained_store: Any, process_wide_uri_elsewhere: str
) -> None:
    pair = load_mlflow(trained_store.tracking_uri, DIAG, TREAT, ALIAS)
    assert pair.diagnosis_run_id == trained_store.run_id
    assert pair.diagnosis_pipeline.classes_ is not None


def test_lookup_errors_are_mlflows(trained_store: Any, tmp_path: Path) -> None:
    uri = _copy(
        trained_store, tmp_path, f"DELETE FROM registered_model_aliases WHERE name = '{DIAG}'"
    )
    with pytest.raises(MlflowException, match="Registered model alias champion not found"):
        load_mlflow(uri, DIAG, TREAT, ALIAS)
    with pytest.raises(MlflowException, match="Registered Model with name=nope not found"):
        load_mlflow(uri, "nope", TREAT, ALIAS)


def test_a_deleted_version_is_not_found(trained_store: Any, tmp_path: Path) -> None:
    uri = _copy(
        trained_store,
        tmp_path,
        f"UPDATE model_versions SET current_stage = 'Deleted_Internal' WHERE name = '{TREAT}'",
    )
    with pytest.raises(MlflowException, match="not found"):
        load_mlflow(uri, DIAG, TREAT, ALIAS)


def test_an_out_of_date_schema_is_refused(trained_store: Any, tmp_path: Path) -> None:
    older = "0584bdc529eb"  # a real, older MLflow revision
    uri = _copy(trained_store, tmp_path, f"UPDATE alembic_version SET version_num = '{older}'")
    with pytest.raises(MlflowException, match="out-of-date database schema"):
        load_mlflow(uri, DIAG, TREAT, ALIAS)
