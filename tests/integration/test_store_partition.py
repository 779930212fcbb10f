"""The real PostgreSQL behind a proxy the test freezes (a network partition: connections stay
open, nothing is forwarded): every request path that touches the store answers 503 in the error
shape with Retry-After within its stated bound (`HP_DATABASE_IO_TIMEOUT_S` for a connection
already open, plus `HP_DATABASE_CONNECT_TIMEOUT_S` for a new one), the service answers again
once the proxy thaws, and no accepted row is lost."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import errors as pg_errors
from sqlalchemy import select

from app.store import bounded_pg, db
from app.store.tables import PredictionRow
from tests.api.conftest import ADMIN, CLINICIAN, assert_error
from tests.api.test_feedback import add_predictions, audit_row, body
from tests.factories import make_patient
from tests.integration._tcp_proxy import TcpProxy
from tests.integration.test_store_faults import (
    CONNECT_TIMEOUT_S,
    app_behind_proxy,
    readiness_problems,
    stored_feedback,
    wait_until,
)

pytestmark = pytest.mark.integration

IO_TIMEOUT_S = 2.0
BOUND_S = IO_TIMEOUT_S + CONNECT_TIMEOUT_S  # a frozen pooled connection, then a new one
SLACK_S = 1.5  # the test client, the handler, a loaded machine


HANG_S = 20.0  # no answer by then: the bound is broken (the proxy thaws so the test can end)


def timed(
    client: TestClient, proxy: TcpProxy, method: str, path: str, payload: object = None
) -> tuple[float, Any]:
    """A request and how long it took; a test failure, not a hang, if it gets no answer."""
    with ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        future = pool.submit(client.request, method, path, json=payload, headers=ADMIN)
        try:
            response = future.result(timeout=HANG_S)
        except TimeoutError:
            proxy.thaw()
            pytest.fail(f"{method} {path}: no answer after {HANG_S} s")
        return time.monotonic() - started, response


def test_psycopg_still_offers_the_wait_timeout_the_bound_relies_on() -> None:
    assert issubclass(pg_errors._WaitTimeout, psycopg.OperationalError)
    assert issubclass(bounded_pg.BoundedConnection, psycopg.Connection)


def test_a_frozen_database_answers_503_within_the_bound_then_recovers(tmp_path: Path) -> None:
    with app_behind_proxy(
        tmp_path, database_statement_timeout_s=1.0, database_io_timeout_s=IO_TIMEOUT_S
    ) as (client, proxy, direct):
        first, second = add_predictions(client, audit_row(), audit_row())
        assert client.post("/feedback", json=body(first), headers=CLINICIAN).status_code == 201
        assert client.get("/feedback/stats", headers=CLINICIAN).status_code == 200  # pooled

        proxy.freeze()
        for method, path, payload in (
            ("POST", "/feedback", body(second)),
            ("GET", "/feedback/stats", None),
            ("GET", f"/retrain/{uuid.uuid4()}", None),
            ("GET", "/feedback/export", None),
        ):
            elapsed, response = timed(client, proxy, method, path, payload)
            assert_error(response, 503, "store_unavailable")
            assert response.headers["Retry-After"] == "5"
            assert elapsed < BOUND_S + SLACK_S, f"{method} {path} took {elapsed:.1f} s"
        elapsed, _ = timed(client, proxy, "GET", "/health/ready")
        assert elapsed < BOUND_S + SLACK_S, f"/health/ready took {elapsed:.1f} s"

        proxy.thaw()
        wait_until(lambda: "database" not in readiness_problems(client), 30, "ready again")
        retried = client.post("/feedback", json=body(second), headers=CLINICIAN)
        assert retried.status_code == 201, retried.text
        assert client.get("/feedback/stats", headers=CLINICIAN).json()["total"] == 2
        assert stored_feedback(direct) == 2  # every 201 is a row


def test_concurrent_requests_on_a_frozen_database_all_end_within_the_bound(
    tmp_path: Path,
) -> None:
    """More requests than the pool has connections: none waits on another's frozen one for
    longer than the bound, and the pool is whole again after the thaw."""
    with app_behind_proxy(
        tmp_path, database_statement_timeout_s=1.0, database_io_timeout_s=IO_TIMEOUT_S
    ) as (client, proxy, _):
        pids = add_predictions(client, *(audit_row() for _ in range(12)))
        proxy.freeze()
        with ThreadPoolExecutor(12) as pool:
            results = list(
                pool.map(lambda pid: timed(client, proxy, "POST", "/feedback", body(pid)), pids)
            )
        for elapsed, response in results:
            assert_error(response, 503, "store_unavailable")
            # queued behind the pool's checkout wait at most once more
            assert elapsed < BOUND_S + CONNECT_TIMEOUT_S + SLACK_S, f"took {elapsed:.1f} s"
        proxy.thaw()
        wait_until(lambda: "database" not in readiness_problems(client), 30, "ready again")
        with ThreadPoolExecutor(12) as pool:
            statuses = list(
                pool.map(
                    lambda pid: (
                        client.post("/feedback", json=body(pid), headers=CLINICIAN).status_code
                    ),
                    pids,
                )
            )
        assert statuses == [201] * 12


def test_predictions_on_a_frozen_database_answer_503_once_the_audit_queue_is_full(
    tmp_path: Path, trained_store: Any
) -> None:
    """The write-behind audit queue absorbs predictions while the store is silent; once it is
    full a prediction waits for room at most the store's bound, then answers 503 (never an
    answer without its audit row); every answered prediction is stored after the thaw."""
    with app_behind_proxy(
        tmp_path,
        database_statement_timeout_s=1.0,
        database_io_timeout_s=IO_TIMEOUT_S,
        mlflow_tracking_uri=trained_store.tracking_uri,
        bentoml_home=Path(trained_store.bentoml_home),
        mlflow_timeout_s=30.0,
        audit_queue_size=3,
    ) as (client, proxy, direct):
        proxy.freeze()
        answered: list[str] = []
        for age in range(30, 60):
            elapsed, response = timed(client, proxy, "POST", "/predict", make_patient(age=age))
            if response.status_code == 200:
                answered.append(response.json()["prediction_id"])
                continue
            assert_error(response, 503, "store_unavailable")
            assert response.headers["Retry-After"] == "5"
            assert elapsed < BOUND_S + SLACK_S, f"/predict took {elapsed:.1f} s"
            break
        else:
            pytest.fail("30 predictions answered on a frozen store with a 3-row audit queue")
        assert answered  # the queue absorbed the first ones
        proxy.thaw()
        client.portal.call(client.app.state.audit.flush)  # type: ignore[attr-defined]
        assert stored_predictions(direct, answered) == len(answered)


def stored_predictions(direct_url: str, ids: list[str]) -> int:
    engine = db.make_engine(direct_url)
    try:
        with db.make_sessionmaker(engine)() as session:
            found = session.scalars(select(PredictionRow.id).where(PredictionRow.id.in_(ids)))
            return len(list(found))
    finally:
        engine.dispose()
