"""Apps built with `create_app(settings)` over real parts, driven in-process through TestClient.

- ``degraded_client``: no model anywhere (closed MLflow port, empty BentoML home): the app is
  live, not ready; validation, auth and error shapes need no model.
- ``client``: the tiny bundle of H2's ``trained_store`` fixture, loaded from its MLflow store.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import DEFAULT_ADMIN_KEY, DEFAULT_CLINICIAN_KEY, Settings

FROM_ENV: Any = object()  # make_settings(name=FROM_ENV): leave the setting to the environment
CLINICIAN = {"X-API-Key": DEFAULT_CLINICIAN_KEY}
ADMIN = {"X-API-Key": DEFAULT_ADMIN_KEY}


def closed_port() -> int:
    """A local port nobody listens on (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_settings(root: Path, **overrides: Any) -> Settings:
    """Test settings under ``root``: own SQLite store, no model source unless overridden."""
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": f"sqlite:///{root / 'healthpredict.db'}",
        "mlflow_tracking_uri": f"http://127.0.0.1:{closed_port()}",
        "mlflow_timeout_s": 2.0,
        "bentoml_home": root / "bentoml_empty",
        "model_retry_interval_s": 3600.0,
        "data_dir": root,
    }
    values.update(overrides)
    return Settings(**{k: v for k, v in values.items() if v is not FROM_ENV})


def client_for(settings: Settings) -> Iterator[TestClient]:
    app: FastAPI = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def degraded_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from client_for(make_settings(tmp_path_factory.mktemp("degraded")))


@pytest.fixture(scope="session")
def trained_settings(tmp_path_factory: pytest.TempPathFactory, trained_store: Any) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("served"),
        mlflow_tracking_uri=trained_store.tracking_uri,
        bentoml_home=Path(trained_store.bentoml_home),
        mlflow_timeout_s=30.0,
    )


@pytest.fixture(scope="session")
def client(trained_settings: Settings) -> Iterator[TestClient]:
    yield from client_for(trained_settings)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is the one error shape with ``status``/``code`` and a request id."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers.get("x-request-id")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    for detail in body["error"]["details"]:
        assert set(detail) == {"field", "value", "reason"}
    return body["error"]  # type: ignore[no-any-return]


def count_rows(url: str) -> int:
    """Audit rows in the store at ``url`` (its own engine: what another process sees)."""
    from sqlalchemy import func, select

    from app.store import db
    from app.store.tables import PredictionRow

    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(PredictionRow)).scalar_one())
    finally:
        engine.dispose()
