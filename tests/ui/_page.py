"""Driving the page: the key, the patient form, axe-core, keyboard focus."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from app.settings import DEFAULT_ADMIN_KEY, DEFAULT_CLINICIAN_KEY, PROJECT_ROOT
from tests.ui.conftest import AXE

DOCS = PROJECT_ROOT / "docs"
BLOCKING = ("serious", "critical")


def open_page(page: Any, key: str = DEFAULT_CLINICIAN_KEY, path: str = "/ui") -> None:
    """Load the page and enter ``key`` the way a user does (kept in sessionStorage)."""
    page.goto(path)
    page.fill("#api-key", key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-status")).not_to_have_text(re.compile("No key|Pas de clé"))


def open_as_admin(page: Any, path: str = "/ui#ops") -> None:
    open_page(page, DEFAULT_ADMIN_KEY, path)


def fill_patient(page: Any, patient: dict[str, Any]) -> None:
    """Type a canonical payload into the form, control by control."""
    for name, value in patient.items():
        if isinstance(value, bool):
            page.set_checked(f"#f-{name}", value)
        elif isinstance(value, list):
            for code in value:
                page.check(f"#f-{name}-{code}")
        elif isinstance(value, str):
            page.check(f"#f-{name}-{value}")
        else:
            page.fill(f"#f-{name}", str(value))


def predict(page: Any, patient: dict[str, Any]) -> None:
    fill_patient(page, patient)
    page.click("#predict")
    page.wait_for_selector("#answer:not([hidden])")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations of the page as it is now.

    axe is evaluated through the DevTools protocol, not added as a script: the page's CSP
    allows its own scripts only, and the service does not serve test tools.
    """
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in BLOCKING
    ]


def tab_to(page: Any, selector: str, limit: int = 120) -> None:
    """Press Tab until ``selector`` has the focus (it must be reachable by keyboard alone)."""
    for _ in range(limit):
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} not reached with Tab in {limit} presses")


def screenshot(locator: Any, tmp: Path, name: str) -> Path:
    """A PNG of ``locator``; copied to docs/ with ``HP_UPDATE_DOCS_SCREENSHOT=1``."""
    shot = tmp / name
    locator.screenshot(path=str(shot))
    assert shot.stat().st_size > 5_000, f"{name} looks blank"
    if os.environ.get("HP_UPDATE_DOCS_SCREENSHOT") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copy(shot, DOCS / name)
    return shot
