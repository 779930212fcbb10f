"""The loader freezes the heap after a load, and a reload lets the previous bundle be freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.serving.loader import ModelManager, warmup_record
from app.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # leave the test session's collector as it was


async def test_load_freezes_and_reload_releases_old_bundle(
    trained_store: Any, tmp_path: Path, unfrozen: None
) -> None:
    settings = Settings(
        mlflow_tracking_uri=trained_store.tracking_uri,
        bentoml_home=tmp_path / "none",
        environment="test",
        mlflow_timeout_s=120.0,
    )
    manager = ModelManager(settings)
    await manager.start()
    try:
        assert gc.get_freeze_count() > 0, "the loaded heap was not frozen"
        old = manager.bundle
        assert old is not None
        old_ref = weakref.ref(old.diagnosis)
        await manager.reload()
        del old
        gc.collect()
        assert old_ref() is None, "the replaced bundle is still alive after a reload"
        assert gc.get_freeze_count() > 0
        assert manager.predict_many([warmup_record()])[0].diagnosis is not None
    finally:
        await manager.stop()
