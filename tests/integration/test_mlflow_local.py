"""The MLflow-free reader of a local SQLite registry (`app.serving.mlflow_local`) against the
MLflow client on the same trained store: same answer, or it steps aside and MLflow answers."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.serving import sources
from app.serving.loader import build_bundle
from app.serving.mlflow_local import (
    LocalRegistry,
    NotApplicable,
    RegistryLookupError,
    load_sklearn_flavor,
    mlflow_schema_head,
)
from app.serving.predictor import probe_records
from app.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

DIAG, TREAT = "healthpredict-diagnosis", "healthpredict-treatment"


def _db_path(trained_store: Any) -> Path:
    return Path(trained_store.tracking_uri.removeprefix("sqlite:///"))


def _copy(trained_store: Any, tmp_path: Path, *sql: str) -> str:
    """A copy of the registry database (artifact URIs are absolute) with ``sql`` applied."""
    dst = tmp_path / "registry-copy.db"
    shutil.copy(_db_path(trained_store), dst)
    with sqlite3.connect(dst) as db:
        for statement in sql:
            db.execute(statement)
    return f"sqlite:///{dst}"


def test_reads_the_same_pair_as_the_mlflow_client(trained_store: Any) -> None:
    uri = trained_store.tracking_uri
    with LocalRegistry(uri) as registry:
        local = sources._load_pair(registry, DIAG, TREAT, "champion")
    with tempfile.TemporaryDirectory() as tmp:
        client = sources._MlflowClientRegistry(uri, tmp)
        reference = sources._load_pair(client, DIAG, TREAT, "champion")
    assert local.meta == reference.meta
    identity = ("source", "diagnosis_version", "treatment_version", "diagnosis_run_id")
    assert [getattr(local, k) for k in identity] == [getattr(reference, k) for k in identity]
    assert local.diagnosis_version == str(trained_store.diagnosis_version)
    assert local.diagnosis_run_id == local.treatment_run_id == trained_store.run_id
    _, local_predictor = build_bundle(lambda: local, 3)
    _, reference_predictor = build_bundle(lambda: reference, 3)
    records = probe_records()
    assert local_predictor.predict_many(records) == reference_predictor.predict_many(records)


def test_load_mlflow_on_a_local_registry_never_imports_mlflow(trained_store: Any) -> None:
    code = (
        "import sys\n"
        "from app.serving.sources import load_mlflow\n"
        f"pair = load_mlflow({trained_store.tracking_uri!r}, {DIAG!r}, {TREAT!r}, 'champion')\n"
        "print(pair.source, pair.diagnosis_run_id, 'mlflow' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["mlflow", trained_store.run_id, "False"], out.stderr[-2000:]


def test_lookup_errors_use_mlflows_wording(trained_store: Any, tmp_path: Path) -> None:
    uri = _copy(
        trained_store, tmp_path, f"DELETE FROM registered_model_aliases WHERE name = '{DIAG}'"
    )
    with LocalRegistry(uri) as registry:
        with pytest.raises(RegistryLookupError, match="Registered model alias champion not found"):
            registry.version_by_alias(DIAG, "champion")
        with pytest.raises(RegistryLookupError, match="Registered Model with name=nope not found"):
            registry.version_by_alias("nope", "champion")
        assert registry.version_by_alias(TREAT, "champion").run_id == trained_store.run_id


def test_a_deleted_version_is_not_found(trained_store: Any, tmp_path: Path) -> None:
    uri = _copy(
        trained_store,
        tmp_path,
        f"UPDATE model_versions SET current_stage = 'Deleted_Internal' WHERE name = '{TREAT}'",
    )
    with LocalRegistry(uri) as registry, pytest.raises(RegistryLookupError, match="not found"):
        registry.version_by_alias(TREAT, "champion")


@pytest.mark.parametrize(
    ("uri_kind", "env"),
    [
        ("http", {}),
        ("missing", {}),
        ("memory", {}),
        ("store", {"MLFLOW_WORKSPACE": "team-a"}),
        ("store", {"MLFLOW_ENABLE_WORKSPACES": "true"}),
        ("store", {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}),
    ],
)
def test_steps_aside_when_it_cannot_read_as_mlflow_does(
    trained_store: Any, tmp_path: Path, uri_kind: str, env: dict[str, str]
) -> None:
    missing = tmp_path / "not-yet.db"
    uri = {
        "http": "http://127.0.0.1:1",
        "missing": f"sqlite:///{missing}",
        "memory": "sqlite:///:memory:",
        "store": trained_store.tracking_uri,
    }[uri_kind]
    with pytest.raises(NotApplicable):
        LocalRegistry(uri, env=env)
    assert not missing.exists(), "the reader must not create a registry database"


def test_latest_alias_is_left_to_mlflow(trained_store: Any) -> None:
    with LocalRegistry(trained_store.tracking_uri) as registry, pytest.raises(NotApplicable):
        registry.version_by_alias(DIAG, "latest")


def test_out_of_date_schema_goes_to_mlflow_which_refuses_it(
    trained_store: Any, tmp_path: Path
) -> None:
    older = "0584bdc529eb"  # a real, older MLflow revision
    assert older != mlflow_schema_head()
    uri = _copy(trained_store, tmp_path, f"UPDATE alembic_version SET version_num = '{older}'")
    with pytest.raises(NotApplicable, match="not MLflow's head"):
        LocalRegistry(uri)
    with pytest.raises(Exception, match="out-of-date database schema"):
        sources.load_mlflow(uri, DIAG, TREAT, "champion")


def _model_dir_copy(trained_store: Any, tmp_path: Path, **flavor: Any) -> Path:
    with LocalRegistry(trained_store.tracking_uri) as registry:
        version = registry.version_by_alias(DIAG, "champion").version
        src = registry.model_dir(DIAG, version)
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    conf = yaml.safe_load((dst / "MLmodel").read_text())
    conf["flavors"]["sklearn"].update(flavor)
    (dst / "MLmodel").write_text(yaml.safe_dump(conf))
    return dst


@pytest.mark.parametrize("flavor", [{"serialization_format": "skops"}, {"code": "code"}])
def test_flavours_it_does_not_load_exactly_are_left_to_mlflow(
    trained_store: Any, tmp_path: Path, flavor: dict[str, Any]
) -> None:
    model_dir = _model_dir_copy(trained_store, tmp_path, **flavor)
    with pytest.raises(NotApplicable):
        load_sklearn_flavor(model_dir)


def test_pickle_and_cloudpickle_flavours_load(trained_store: Any, tmp_path: Path) -> None:
    model_dir = _model_dir_copy(trained_store, tmp_path)
    cloud = load_sklearn_flavor(model_dir)
    conf = yaml.safe_load((model_dir / "MLmodel").read_text())
    assert conf["flavors"]["sklearn"]["serialization_format"] == "cloudpickle"
    conf["flavors"]["sklearn"]["serialization_format"] = "pickle"  # cloudpickle output is pickle
    (model_dir / "MLmodel").write_text(yaml.safe_dump(conf))
    plain = load_sklearn_flavor(model_dir)
    assert type(plain) is type(cloud)
    assert [name for name, _ in plain.steps] == [name for name, _ in cloud.steps]
