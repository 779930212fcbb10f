"""Fixtures of the page's browser tests: one `python -m app` serving the tiny trained bundle,
one headless Debian Chromium driven by Playwright, a fresh browser context per test.

A missing browser fails with how to install it; nothing here is skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration._monitoring import (
    INSTALL_HINT,
    AppProcess,
    ModelStore,
    app_env,
    model_store,  # noqa: F401 (fixture)
    running_app,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# Console errors that mean the page itself is broken (a refused 4xx fetch is logged too: expected).
BROKEN = re.compile(r"Content Security Policy|Refused to|uncaught|SyntaxError|TypeError", re.I)


@dataclass(frozen=True)
class UiApp:
    """The running app and what the tests read behind it."""

    base: str
    db_path: Path
    log_path: Path
    store: ModelStore


@pytest.fixture(scope="module")
def ui_app(
    model_store: ModelStore,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[UiApp]:
    tmp = tmp_path_factory.mktemp("ui_app")
    # INFO and the access log on: the log test reads what the page's requests wrote.
    env = app_env(model_store, tmp, HP_LOG_LEVEL="INFO", HP_ACCESS_LOG="true")
    app: AppProcess
    with running_app(env, tmp / "app.log") as app:
        yield UiApp(app.base, tmp / "hp.db", tmp / "app.log", model_store)


def launch_chromium(playwright: Any) -> Any:
    """Debian's chromium through Playwright (`playwright install` cannot download here)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium not found at {CHROMIUM}: {INSTALL_HINT}")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")  # closed after each module: its event loop must not outlive it
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright (Python) is not installed: run `make install`")
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@dataclass
class Console:
    """What the page said: console errors (a CSP refusal is one) and uncaught exceptions."""

    errors: list[str]


@pytest.fixture
def console() -> Console:
    return Console(errors=[])


@pytest.fixture
def page(browser: Any, ui_app: UiApp, console: Console) -> Iterator[Any]:
    """A fresh context (empty sessionStorage), the page's errors collected and checked after."""
    context = browser.new_context(
        base_url=ui_app.base, accept_downloads=True, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.on("console", lambda m: m.type == "error" and console.errors.append(m.text))
    tab.on("pageerror", lambda e: console.errors.append(f"uncaught: {e}"))
    yield tab
    context.close()
    broken = [e for e in console.errors if BROKEN.search(e)]
    assert not broken, f"the page broke: {broken}"
