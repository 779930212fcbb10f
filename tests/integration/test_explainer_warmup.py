"""The SHAP explainer is built in the background after a load (off the path to ready)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from app.serving import explain
from app.serving.loader import ModelManager
from tests.integration.test_loader_sources import settings_for

pytestmark = pytest.mark.integration


async def test_explainer_is_built_in_the_background_after_the_load(
    trained_store: Any, tmp_path: Path
) -> None:
    manager = ModelManager(settings_for(trained_store.tracking_uri, tmp_path / "none"))
    await manager.start()
    try:
        assert manager.bundle is not None and manager.bundle.diagnosis.kind == "catboost"
        key = id(manager.bundle.diagnosis.model)
        deadline = time.monotonic() + 60
        while key not in explain._fast and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert explain._fast.get(key) is not None, "no explainer was built after the load"
    finally:
        await manager.stop()
