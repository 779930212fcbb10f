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
    threshold = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, *threshold[1:])
    yield
    gc.unfreeze()  # leave the test session's collector as it was
    gc.set_threshold(*threshold)


async def test_load_freezes_and_reload_releases_old_bundle(
    trained_store: Any, tmp_path: Path, unfrozen: None
) -> None:
    settings = Settings(
        mlflow_tracking_uri=trained_store.tracking_uri,
        bentoml_home=tmp_path / "none",
        environment="test",
        mlflow_timeout_s=120.0,
        gc_gen0_threshold=12_345,
    )
    manager = ModelManager(settings)
    await manager.start()
    try:
        assert gc.get_freeze_count() > 0, "the loaded heap was not frozen"
        assert gc.get_threshold()[0] == 12_345, "the setting did not reach the collector"
        old = manager.bundle
        assert old is not None
        old_ref = weakref.ref(old.diagnosis)
        await manager.reload()
        del old
        gc.collect()
        assert old_ref() is None, "the replaced bundle is still alive after a reload"
        assert gc.get_freeze_count() > 0
        assert manager.current().predict_many([warmup_record()])[0].diagnosis is not None
    finally:
        await manager.stop()
