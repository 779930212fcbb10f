"""The tamper-evident audit end to end: real requests through the app (the tiny trained bundle,
the audit writer's child process), on SQLite and on the real PostgreSQL; then
`python -m app audit verify` passes on the intact store and names the first row edited,
deleted or reordered by hand in the database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from app.main import create_app
from app.settings import DEFAULT_AUDIT_HMAC_KEY
from app.store import db
from app.store.audit_verify import Report, verify
from tests.api.conftest import ADMIN, CLINICIAN, make_settings
from tests.factories import make_patient
from tests.pg_schema import empty_pg_schema

KEY = DEFAULT_AUDIT_HMAC_KEY.encode()
ROOT = Path(__file__).resolve().parents[2]
AUDIT_TABLES = ("predictions", "feedback", "audit_events")


def drive(client: TestClient) -> list[str]:
    """Predictions one by one and in a batch, feedback, a model reload: the ids predicted."""
    ids = []
    # A CRP of -0.0 is valid (0 <= -0.0) and must verify on PostgreSQL too (JSONB stored 0).
    for age in (30, 50, 70):
        patient = make_patient(age=age, crp=-0.0 if age == 70 else 12.0)
        response = client.post("/predict", json=patient, headers=CLINICIAN)
        assert response.status_code == 200, response.text
        ids.append(response.json()["prediction_id"])
    records = [make_patient(age=20 + i, crp=-0.0 if i == 3 else 12.0) for i in range(25)]
    response = client.post("/predict/batch", json={"records": records}, headers=CLINICIAN)
    assert response.status_code == 200, response.text
    ids += [item["prediction_id"] for item in response.json()["predictions"]]
    feedback = {
        "prediction_id": ids[0],
        "verdict": "wrong_treatment",
        "corrected_treatment": "discharge_home",
        "clinician_id": "clin-01",
    }
    response = client.post("/feedback", json=feedback, headers=CLINICIAN)
    assert response.status_code == 201, response.text
    assert client.post("/models/reload", headers=ADMIN).status_code == 200
    return ids


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, trained_store: Any
) -> Iterator[tuple[str, list[str]]]:
    """A store written by real requests, its URL, and the statements the app's engine ran."""
    with ExitStack() as stack:
        root = tmp_path_factory.mktemp("audit-chain")
        url = (
            f"sqlite:///{root / 'store.db'}"
            if request.param == "sqlite"
            else stack.enter_context(empty_pg_schema())
        )
        settings = make_settings(
            root,
            database_url=url,
            mlflow_tracking_uri=trained_store.tracking_uri,
            bentoml_home=Path(trained_store.bentoml_home),
            mlflow_timeout_s=30.0,
        )
        app = create_app(settings)
        statements: list[str] = []
        with TestClient(app, raise_server_exceptions=False) as client:
            event.listen(
                app.state.engine,
                "before_cursor_execute",
                lambda _c, _cur, sql, *_a: statements.append(sql),
            )
            drive(client)
        yield url, statements


@contextmanager
def session_of(url: str) -> Iterator[Session]:
    engine = db.make_engine(url)
    try:
        with db.make_sessionmaker(engine)() as session:
            yield session
    finally:
        engine.dispose()


def chain_rows(session: Session, table: str) -> list[Any]:
    """The rows of ``table``'s longest chain, in chain order (a batch's chain: many rows)."""
    rows = list(session.execute(text(f"SELECT id, chain_id, seq FROM {table} ORDER BY seq")))
    longest = max({r.chain_id for r in rows}, key=lambda c: sum(r.chain_id == c for r in rows))
    return [r for r in rows if r.chain_id == longest]


def tampered(url: str, sql: str, **params: Any) -> Report:
    """`verify` of the store after ``sql``, inside a transaction rolled back afterwards."""
    with session_of(url) as session:
        session.execute(text(sql), params)
        report = verify(session, KEY)
        session.rollback()
    return report


def run_verify(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m app audit verify [args]` on the store at ``url``."""
    env = {**os.environ, "HP_DATABASE_URL": url, "HP_ENVIRONMENT": "test"}
    return subprocess.run(
        [sys.executable, "-m", "app", "audit", "verify", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_intact_store_verifies_ok_with_counts(store: tuple[str, list[str]]) -> None:
    url, _ = store
    done = run_verify(url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit verify: OK: " in done.stdout
    # 28 predictions, 1 feedback, the reload and the key-use events of both keys
    assert "predictions 28, feedback 1, audit_events 3" in done.stdout, done.stdout


def test_every_audit_row_is_chained(store: tuple[str, list[str]]) -> None:
    url, _ = store
    with session_of(url) as session:
        report = verify(session, KEY)
        kinds = sorted(session.scalars(text("SELECT kind FROM audit_events")))
    assert report.ok and report.chains >= 2, report.summary()
    assert kinds == ["key_use", "key_use", "model_reload"]


def test_an_edited_row_is_named_and_the_command_exits_non_zero(
    store: tuple[str, list[str]],
) -> None:
    url, _ = store
    with session_of(url) as session:
        victim = chain_rows(session, "predictions")[5]
        before = session.scalar(
            text("SELECT quality FROM predictions WHERE id = :i"), {"i": victim.id}
        )
        session.execute(
            text("UPDATE predictions SET quality = 'high2' WHERE id = :i"), {"i": victim.id}
        )
        session.commit()
    try:
        done = run_verify(url)
        assert done.returncode == 1, done.stdout + done.stderr
        assert f"first: altered: predictions row {victim.id}" in done.stdout, done.stdout
    finally:
        with session_of(url) as session:
            session.execute(
                text("UPDATE predictions SET quality = :q WHERE id = :i"),
                {"q": before, "i": victim.id},
            )
            session.commit()
    assert run_verify(url).returncode == 0


@pytest.mark.parametrize("table", AUDIT_TABLES)
def test_an_edited_row_of_each_table_is_named(store: tuple[str, list[str]], table: str) -> None:
    url, _ = store
    with session_of(url) as session:
        victim = chain_rows(session, table)[0]
    column = {"predictions": "run_id", "feedback": "reason", "audit_events": "key_id"}[table]
    report = tampered(url, f"UPDATE {table} SET {column} = 'x' WHERE id = :i", i=victim.id)
    assert not report.ok
    assert report.problems[0].describe().startswith(f"altered: {table} row {victim.id} ")


def test_a_deleted_row_is_named_by_its_position_and_neighbours(
    store: tuple[str, list[str]],
) -> None:
    url, _ = store
    with session_of(url) as session:
        rows = chain_rows(session, "predictions")
    report = tampered(url, "DELETE FROM predictions WHERE id = :i", i=rows[3].id)
    first = report.problems[0].describe()
    assert first.startswith(f"deleted: chain {rows[3].chain_id} seq {rows[3].seq} "), first
    assert f"between predictions row {rows[2].id} and predictions row {rows[4].id}" in first


def test_reordered_rows_are_named(store: tuple[str, list[str]]) -> None:
    url, _ = store
    with session_of(url) as session:
        rows = chain_rows(session, "predictions")
    a, b = rows[7], rows[8]
    swap = (
        "UPDATE predictions SET seq = CASE WHEN id = :a THEN :sb ELSE :sa END WHERE id IN (:a, :b)"
    )
    report = tampered(url, swap, a=a.id, b=b.id, sa=a.seq, sb=b.seq)
    first = report.problems[0].describe()
    assert first == (
        f"reordered: predictions row {b.id} (chain {a.chain_id} seq {a.seq}) "
        f"sealed at seq {b.seq}: rows were reordered"
    )
    assert {p.kind for p in report.problems} == {"reordered"}


def test_a_row_inserted_by_hand_is_named(store: tuple[str, list[str]]) -> None:
    url, _ = store
    report = tampered(
        url,
        "INSERT INTO audit_events (id, created_at, kind, detail) "
        "VALUES ('forged', CURRENT_TIMESTAMP, 'model_reload', '{}')",
    )
    assert report.problems[0].describe().startswith("unchained: audit_events row forged")


def test_another_key_verifies_nothing(store: tuple[str, list[str]]) -> None:
    url, _ = store
    with session_of(url) as session:
        report = verify(session, b"not-the-key")
    assert not report.ok and all(p.kind == "altered" for p in report.problems)


def test_no_request_updated_or_deleted_an_audit_row(store: tuple[str, list[str]]) -> None:
    _, statements = store
    assert any(s.lstrip().upper().startswith("INSERT INTO FEEDBACK") for s in statements)
    for sql in statements:
        head = sql.lstrip().upper()
        if head.startswith(("UPDATE", "DELETE")):
            assert not any(t.upper() in head.split("WHERE")[0] for t in AUDIT_TABLES), sql
