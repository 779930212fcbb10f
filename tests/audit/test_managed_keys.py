"""Managed API keys: `python -m app keys new` prints a key once and the hashed entry that makes
it work; expired keys are 401; the key file is reloaded without a restart (on change, and on
SIGHUP for a real `python -m app`); keys in clear are refused in production."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from app.main import create_app
from app.security.api_keys import ApiKeyStore, new_key
from app.security.key_ring import CHECK_INTERVAL_S, KeyRing
from app.settings import Settings
from tests.api.conftest import closed_port, make_settings

ROOT = Path(__file__).resolve().parents[2]
STATS = "/feedback/stats"  # a clinician route that needs no model
PROD = {"environment": "production", "audit_hmac_key": SecretStr("a-real-audit-key")}


def keys_new(*args: str) -> tuple[str, str, str]:
    """Run `python -m app keys new ARGS`: (key, entry, whole output)."""
    done = subprocess.run(
        [sys.executable, "-m", "app", "keys", "new", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = re.search(r"^key \(shown once.*\): (\S+)$", done.stdout, re.M)
    entry = done.stdout.strip().splitlines()[-1]
    assert key is not None, done.stdout
    return key.group(1), entry, done.stdout


@pytest.fixture
def client_with(tmp_path: Path) -> Iterator[Any]:
    clients: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        client = TestClient(create_app(make_settings(tmp_path, **overrides)))
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


def test_keys_new_prints_a_key_that_works_with_the_printed_line(client_with: Any) -> None:
    key, entry, out = keys_new("--role", "clinician", "--expires", "90d")
    assert entry.startswith("id=") and entry.endswith(":clinician")
    assert key not in entry and key.split("_", 2)[2] not in out.replace(key, "")
    expires = datetime.fromisoformat(re.search(r"expires=(\S+Z):", entry).group(1))  # type: ignore[union-attr]
    assert abs(expires - (datetime.now(UTC) + timedelta(days=90))) < timedelta(minutes=5)
    client = client_with(api_keys=SecretStr(entry), **PROD)
    assert client.get(STATS, headers={"X-API-Key": key}).status_code == 200
    assert client.get(STATS, headers={"X-API-Key": key + "x"}).status_code == 401
    assert client.get("/retrain/x", headers={"X-API-Key": key}).status_code == 403


def test_an_expired_key_is_401(client_with: Any) -> None:
    key, managed = new_key("admin", timedelta(days=1))
    past = managed.entry().replace(
        managed.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),  # type: ignore[union-attr]
        "2020-01-01T00:00:00Z",
    )
    client = client_with(api_keys=SecretStr(past))
    response = client.get(STATS, headers={"X-API-Key": key})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    store = ApiKeyStore.from_spec(managed.entry())
    assert store.authenticate(key) is not None
    assert store.authenticate(key, now=managed.expires) is None


def test_the_key_file_is_reloaded_when_it_changes(client_with: Any, tmp_path: Path) -> None:
    old_key, old = new_key("clinician")
    new_key_, new = new_key("clinician")
    path = tmp_path / "keys.txt"
    path.write_text(f"# rotated monthly\n{old.entry()}\n")
    client = client_with(api_keys=SecretStr(""), api_keys_file=path)
    assert client.get(STATS, headers={"X-API-Key": old_key}).status_code == 200
    assert client.get(STATS, headers={"X-API-Key": new_key_}).status_code == 401
    path.write_text(f"{new.entry()}\n")  # rotation: the old key revoked, the new one added
    time.sleep(CHECK_INTERVAL_S + 0.1)
    assert client.get(STATS, headers={"X-API-Key": new_key_}).status_code == 200
    assert client.get(STATS, headers={"X-API-Key": old_key}).status_code == 401
    path.write_text("not an entry\n")  # a broken file keeps the keys in force
    time.sleep(CHECK_INTERVAL_S + 0.1)
    assert client.get(STATS, headers={"X-API-Key": new_key_}).status_code == 200


def test_keys_in_clear_are_refused_in_production(tmp_path: Path) -> None:
    _, managed = new_key("admin")
    with pytest.raises(ValidationError, match="key in clear"):
        Settings(api_keys=SecretStr("a-long-random-key:admin"), **PROD)
    Settings(api_keys=SecretStr(managed.entry()), **PROD)  # hashed: accepted
    Settings(api_keys=SecretStr("a-long-random-key:admin"), environment="development")
    with pytest.raises(ValidationError, match="HP_AUDIT_HMAC_KEY"):
        Settings(api_keys=SecretStr(managed.entry()), environment="production")
    path = tmp_path / "keys.txt"
    path.write_text("a-long-random-key:admin\n")
    with pytest.raises(ValueError, match="in clear"):
        KeyRing(managed.entry(), path, allow_clear=False)


def test_sighup_reloads_the_key_file_of_a_running_server(tmp_path: Path) -> None:
    """A real `python -m app`: the file is rewritten with the same size and mtime (so the
    change check sees nothing), then SIGHUP makes the new key work at once."""
    old_key, old = new_key("clinician")
    new_key_, new = new_key("clinician")
    path = tmp_path / "keys.txt"
    path.write_text(old.entry() + "\n")
    port = closed_port()
    env = {
        **os.environ,
        "HP_ENVIRONMENT": "test",
        "HP_PORT": str(port),
        "HP_API_KEYS": "",
        "HP_API_KEYS_FILE": str(path),
        "HP_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}",
        "HP_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{closed_port()}",
        "HP_MLFLOW_TIMEOUT_S": "2",
        "HP_BENTOML_HOME": str(tmp_path / "bento"),
        "HP_DATA_DIR": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_live(url, proc)
        assert httpx.get(url + STATS, headers={"X-API-Key": old_key}).status_code == 200
        stat = path.stat()
        assert len(new.entry()) == len(old.entry())
        path.write_text(new.entry() + "\n")
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        time.sleep(CHECK_INTERVAL_S + 0.2)  # past the next change check: nothing changed
        assert httpx.get(url + STATS, headers={"X-API-Key": new_key_}).status_code == 401
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert proc.poll() is None, "SIGHUP ended the server"
        assert httpx.get(url + STATS, headers={"X-API-Key": new_key_}).status_code == 200
        assert httpx.get(url + STATS, headers={"X-API-Key": old_key}).status_code == 401
    finally:
        proc.terminate()
        proc.wait(30)


def _wait_live(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            if httpx.get(url + "/health/live", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail("the server was not live within 90 s")
