"""The real Redis and RabbitMQ behind a proxy the test cuts or freezes: `/health/ready` reports
`broker` when a Celery broker is configured, answers within its bound while the broker is
silent, turns not-ready only past the grace period and ready again once the broker answers;
`POST /retrain` answers 503 `broker_unavailable` with Retry-After within its bound."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.store import broker
from tests.api.conftest import assert_error, make_settings
from tests.integration._tcp_proxy import TcpProxy
from tests.integration.test_celery_retrain import redis_url  # noqa: F401 (fixture)
from tests.integration.test_store_faults import readiness_problems, wait_until
from tests.integration.test_store_partition import timed

pytestmark = pytest.mark.integration

TIMEOUT_S = 1.0
GRACE_S = 2.0
SLACK_S = 1.5
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"  # only pinged: no message is sent to it


@contextmanager
def app_with_broker(tmp_path: Path, url: str) -> Iterator[tuple[TestClient, TcpProxy]]:
    """An app whose Celery broker at ``url`` is reached through a `TcpProxy`."""
    parts = urlsplit(url)
    proxy = TcpProxy((parts.hostname or "127.0.0.1", parts.port or 0))
    through = url.replace(f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}")
    settings = make_settings(
        tmp_path,
        celery_broker_url=through,
        broker_timeout_s=TIMEOUT_S,
        broker_ready_grace_s=GRACE_S,
    )
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            yield client, proxy
    finally:
        proxy.close()


def timed_problems(client: TestClient) -> tuple[float, dict[str, str]]:
    started = time.monotonic()
    problems = readiness_problems(client)
    return time.monotonic() - started, problems


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    broker.ping(RABBITMQ_URL, 5.0)  # unreachable: the test fails here, saying so
    return RABBITMQ_URL


def test_readiness_reports_a_cut_or_frozen_broker_past_the_grace(
    tmp_path: Path, broker_url: str
) -> None:
    with app_with_broker(tmp_path, broker_url) as (client, proxy):
        assert "broker" not in readiness_problems(client)
        for fault, heal in ((proxy.freeze, proxy.thaw), (proxy.cut, proxy.restore)):
            fault()
            started = time.monotonic()
            while time.monotonic() - started < GRACE_S + 10:
                elapsed, problems = timed_problems(client)
                assert elapsed < 2 * TIMEOUT_S + 1 + SLACK_S, f"readiness took {elapsed:.1f} s"
                if "broker" in problems:
                    break
            assert "unreachable" in problems["broker"], problems
            assert time.monotonic() - started >= GRACE_S
            heal()
            wait_until(lambda: "broker" not in readiness_problems(client), 30, "ready again")


def test_retrain_on_a_frozen_broker_is_503_within_the_bound(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
) -> None:
    with app_with_broker(tmp_path, redis_url) as (client, proxy):
        assert "broker" not in readiness_problems(client)  # a pooled connection exists
        proxy.freeze()
        elapsed, response = timed(client, proxy, "POST", "/retrain")
        assert_error(response, 503, "broker_unavailable")
        assert response.headers["Retry-After"] == "5"
        assert elapsed < 3 * TIMEOUT_S + SLACK_S, f"POST /retrain took {elapsed:.1f} s"
        proxy.thaw()
        wait_until(lambda: "broker" not in readiness_problems(client), 30, "ready again")
