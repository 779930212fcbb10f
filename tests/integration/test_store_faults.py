"""The real PostgreSQL behind a TCP proxy the test cuts: the store's faults answer 503 in the
error shape, with Retry-After, within the connect timeout, and no accepted row is lost; a
database down at start-up leaves the service live and not ready until it answers; readiness
turns 503 once the database has been unreachable for the grace period."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, make_url, select

from app.main import create_app
from app.store import db
from app.store.tables import FeedbackRow
from tests.api.conftest import CLINICIAN, assert_error, make_settings
from tests.api.test_feedback import add_predictions, audit_row, body
from tests.integration._tcp_proxy import TcpProxy
from tests.pg_schema import empty_pg_schema

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT_S = 2.0


@contextmanager
def app_behind_proxy(
    tmp_path: Path, *, cut_first: bool = False, **settings: Any
) -> Iterator[tuple[TestClient, TcpProxy, str]]:
    """An app whose store is the real PostgreSQL reached through a `TcpProxy` (cut before the
    app starts with ``cut_first``); also the direct URL, to count rows behind the proxy's back."""
    with empty_pg_schema() as direct:
        url = make_url(direct)
        proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        if cut_first:
            proxy.cut()
        app = create_app(
            make_settings(
                tmp_path,
                database_url=through,
                database_connect_timeout_s=CONNECT_TIMEOUT_S,
                **settings,
            )
        )
        try:
            with TestClient(app, raise_server_exceptions=False) as client:
                yield client, proxy, direct
        finally:
            proxy.close()


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[TestClient, TcpProxy, str]]:
    with app_behind_proxy(tmp_path) as parts:
        yield parts


def readiness_problems(client: TestClient) -> dict[str, str]:
    """Each dependency `/health/ready` names as not ready ({} when it answers 200)."""
    response = client.get("/health/ready")
    if response.status_code == 200:
        return {}
    assert response.status_code == 503, response.text
    return {d["field"]: d["reason"] for d in response.json()["error"]["details"]}


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not {what} after {timeout_s} s"
        time.sleep(0.2)


def stored_feedback(direct_url: str) -> int:
    engine = db.make_engine(direct_url)
    try:
        with db.make_sessionmaker(engine)() as session:
            return int(session.scalar(select(func.count()).select_from(FeedbackRow)) or 0)
    finally:
        engine.dispose()


def test_a_cut_database_answers_503_then_recovers_without_losing_a_row(
    proxied: tuple[TestClient, TcpProxy, str],
) -> None:
    client, proxy, direct = proxied
    first, second = add_predictions(client, audit_row(), audit_row())
    assert client.post("/feedback", json=body(first), headers=CLINICIAN).status_code == 201

    proxy.cut()
    for method, path, payload in (
        ("POST", "/feedback", body(second)),
        ("GET", "/feedback/stats", None),
    ):
        started = time.monotonic()
        response = client.request(method, path, json=payload, headers=CLINICIAN)
        elapsed = time.monotonic() - started
        assert_error(response, 503, "store_unavailable")
        assert response.headers["Retry-After"] == "5"
        assert elapsed < CONNECT_TIMEOUT_S + 3, f"{path} took {elapsed:.1f} s"

    proxy.restore()
    retried = client.post("/feedback", json=body(second), headers=CLINICIAN)
    assert retried.status_code == 201, retried.text
    assert client.get("/feedback/stats", headers=CLINICIAN).json()["total"] == 2
    assert stored_feedback(direct) == 2  # every 201 is a row; the 503 wrote nothing


def test_a_database_down_at_start_up_starts_live_not_ready_then_recovers(tmp_path: Path) -> None:
    with app_behind_proxy(tmp_path, cut_first=True, database_retry_s=0.5) as parts:
        client, proxy, direct = parts
        assert client.get("/health/live").status_code == 200
        problems = readiness_problems(client)
        assert "database" in problems and "retrying" in problems["database"], problems
        assert_error(client.get("/feedback/stats", headers=CLINICIAN), 503, "store_unavailable")

        proxy.restore()
        wait_until(lambda: "database" not in readiness_problems(client), 30, "migrated")
        [pid] = add_predictions(client, audit_row())  # the tables exist: migrated on retry
        assert client.post("/feedback", json=body(pid), headers=CLINICIAN).status_code == 201
        assert stored_feedback(direct) == 1


def test_readiness_turns_503_only_after_the_grace_period(tmp_path: Path) -> None:
    grace_s = 3.0
    with app_behind_proxy(tmp_path, database_ready_grace_s=grace_s) as (client, proxy, _):
        assert "database" not in readiness_problems(client)
        proxy.cut()
        cut_at = time.monotonic()
        assert "database" not in readiness_problems(client)  # one failed check: within grace
        wait_until(lambda: "database" in readiness_problems(client), 30, "unready")
        assert time.monotonic() - cut_at >= grace_s
        assert "unreachable" in readiness_problems(client)["database"]
        proxy.restore()
        wait_until(lambda: "database" not in readiness_problems(client), 30, "ready again")
