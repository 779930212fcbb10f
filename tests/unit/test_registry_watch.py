"""`RegistryWatcher.check`: nothing but the alias query when it has not moved; one reload when
it moves; a refused pair is not reloaded again at every poll; an unreachable registry is noted.

The loader is a stand-in here (the real swap is `ModelManager.reload`, tested under load in
tests/integration/test_startup_sources.py; the real poll in tests/integration/test_replicas.py).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from app.errors import ModelLoadError
from app.serving import registry_watch
from app.serving.registry_watch import RegistryWatcher
from app.settings import Settings


class StubModels:
    def __init__(self, source: str, versions: tuple[str, str], fail: bool = False) -> None:
        self.bundle: Any = self._bundle(source, versions)
        self.reloads = 0
        self.fail = fail
        self.next_versions = versions

    @staticmethod
    def _bundle(source: str, versions: tuple[str, str]) -> Any:
        return SimpleNamespace(
            source=source, diagnosis_version=versions[0], treatment_version=versions[1]
        )

    async def reload(self) -> Any:
        self.reloads += 1
        if self.fail:
            raise ModelLoadError("refused")
        self.bundle = self._bundle("mlflow", self.next_versions)
        return self.bundle


def watcher(models: StubModels, monkeypatch: pytest.MonkeyPatch, answer: Any) -> RegistryWatcher:
    def alias_versions(*_: Any) -> tuple[str, str]:
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    monkeypatch.setattr(registry_watch, "alias_versions", alias_versions)
    return RegistryWatcher(models, Settings(environment="test"))  # type: ignore[arg-type]


async def test_unchanged_alias_reloads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    models = StubModels("mlflow", ("3", "3"))
    watch = watcher(models, monkeypatch, ("3", "3"))
    assert await watch.check() is False
    assert models.reloads == 0 and watch.checked_at is not None
    assert watch.status()["diagnosis_version"] == "3" and watch.status()["error"] is None


async def test_moved_alias_swaps_once(monkeypatch: pytest.MonkeyPatch) -> None:
    models = StubModels("mlflow", ("3", "3"))
    models.next_versions = ("4", "4")
    watch = watcher(models, monkeypatch, ("4", "4"))
    assert await watch.check() is True
    assert await watch.check() is False
    assert models.reloads == 1 and watch.swaps == 1


async def test_refused_pair_is_not_reloaded_at_every_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    models = StubModels("bentoml", ("3", "3"), fail=True)
    watch = watcher(models, monkeypatch, ("4", "4"))
    assert await watch.check() is False
    assert await watch.check() is False
    assert models.reloads == 1 and "refused" in (watch.last_error or "")


async def test_unreachable_registry_keeps_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    models = StubModels("mlflow", ("3", "3"))
    watch = watcher(models, monkeypatch, ConnectionError("no route"))
    assert await watch.check() is False
    assert models.reloads == 0 and "ConnectionError" in (watch.last_error or "")
