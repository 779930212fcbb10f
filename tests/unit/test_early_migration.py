"""The store migration `python -m app` starts before importing the app, and the lifespan's wait."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app, migrate_if_needed
from app.store import db, early_migration
from tests.api.conftest import make_settings


def test_lifespan_takes_the_started_migration_and_the_store_is_at_head(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    early_migration.start(settings.database_url)
    with TestClient(create_app(settings)) as client:
        assert early_migration.take(settings.database_url) is None, "the lifespan took it"
        assert client.get("/health/live").status_code == 200
    assert migrate_if_needed(settings.database_url) is False  # already at head


def test_take_hands_a_started_migration_out_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert early_migration.take(url) is None
    early_migration.start(url)
    started = early_migration.take(url)
    assert started is not None and early_migration.take(url) is None
    started.wait()
    assert migrate_if_needed(url) is False


def test_a_failed_migration_raises_with_the_childs_stderr(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    child = db.start_upgrade(f"sqlite:///{blocker / 'store.db'}")
    with pytest.raises(RuntimeError, match=r"(?s)alembic upgrade head failed: .*FileExistsError"):
        child.wait()
