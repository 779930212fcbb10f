"""The real PostgreSQL behind a TCP proxy the test cuts: the store's faults answer 503 in the
error shape, with Retry-After, within the connect timeout, and no accepted row is lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[TestClient, TcpProxy, str]]:
    """An app whose store is the real PostgreSQL reached through a `TcpProxy`; also the direct
    URL, to count rows behind the proxy's back."""
    with empty_pg_schema() as direct:
        url = make_url(direct)
        proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = make_settings(
            tmp_path, database_url=through, database_connect_timeout_s=CONNECT_TIMEOUT_S
        )
        try:
            with TestClient(create_app(settings), raise_server_exceptions=False) as client:
                yield client, proxy, direct
        finally:
            proxy.close()


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
