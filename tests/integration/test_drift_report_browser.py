"""Live drift end to end: predictions -> audit store -> background Evidently report ->
`GET /monitoring/drift` (JSON, gauges) and the HTML report rendered by headless Chromium.

Set ``HP_UPDATE_DOCS_SCREENSHOT=1`` to refresh ``docs/drift_report.png`` from this run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.settings import PROJECT_ROOT
from tests.factories import cohort_payloads
from tests.integration._monitoring import (
    CLINICIAN,
    INSTALL_HINT,
    ModelStore,
    app_env,
    model_store,  # noqa: F401 (fixture)
    running_app,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WINDOW = 100
SHIFTED = ("age", "temperature", "spo2")
SCREENSHOT = PROJECT_ROOT / "docs" / "drift_report.png"


def shifted(payload: dict[str, Any]) -> dict[str, Any]:
    """Older, feverish, hypoxic (within the API's ranges)."""
    out = dict(payload)
    out["age"] = min(out["age"] + 25, 110)
    if "temperature" in out:
        out["temperature"] = round(min(out["temperature"] + 1.8, 44), 1)
    if "spo2" in out:
        out["spo2"] = max(out["spo2"] - 8, 40)
    return out


def post_all(base: str, payloads: list[dict[str, Any]]) -> None:
    for payload in payloads:
        response = httpx.post(f"{base}/predict", json=payload, headers=CLINICIAN)
        assert response.status_code == 200, response.text


def drift(base: str) -> dict[str, Any]:
    response = httpx.get(f"{base}/monitoring/drift", headers=CLINICIAN, timeout=120)
    assert response.status_code == 200, response.text
    return dict(response.json())


def drifted(summary: dict[str, Any]) -> set[str]:
    return {f["feature"] for f in summary["features"] if f["drifted"]}


def settled(base: str, quiet_s: float = 30.0) -> dict[str, Any]:
    """The report once no refresh replaced it for ``quiet_s`` (the window has stopped moving:
    a report computed while the last inputs were still being written is superseded)."""
    previous = drift(base)
    for _ in range(10):
        time.sleep(quiet_s)
        current = drift(base)
        if current["computed_at"] == previous["computed_at"]:
            return current
        previous = current
    raise AssertionError("the drift report kept changing")


def gauge(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not exported"
    return float(match.group(1))


class VisibleText(HTMLParser):
    """Text a reader sees (script and style contents left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.hidden += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self.hidden -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self.hidden and data.strip():
            self.parts.append(data.strip())


def chromium(page: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail(f"chromium not found: {INSTALL_HINT}")
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp / 'chromium-profile'}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=20000",
    ]  # fmt: skip
    return subprocess.run(
        [binary, *flags, *args, page.as_uri()], capture_output=True, text=True, timeout=180
    )


def script_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line and "Uncaught" in line]


def test_script_error_detection_works(tmp_path: Path) -> None:
    """Control: a page that throws is caught by the same check the report goes through."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>throw new Error('boom')</script></body></html>")
    result = chromium(page, tmp_path, "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    assert script_errors(result.stderr)


def test_live_drift_end_to_end(model_store: ModelStore, tmp_path: Path) -> None:  # noqa: F811
    env = app_env(model_store, tmp_path, HP_DRIFT_WINDOW_SIZE=str(WINDOW), HP_DRIFT_REFRESH_S="2")
    with running_app(env, tmp_path / "app.log") as app:
        base = app.base
        empty = httpx.get(f"{base}/monitoring/drift", headers=CLINICIAN)
        assert empty.status_code == 503
        assert empty.json()["error"]["code"] == "drift_unavailable"
        assert httpx.get(f"{base}/monitoring/drift").status_code == 401

        # 1. A window drawn like the training data: no dataset drift.
        like = cohort_payloads(model_store.data_path, WINDOW, seed=31)
        assert len(like) == WINDOW
        post_all(base, like)
        same = wait_for(
            lambda: (s := drift(base))["window_size"] == WINDOW and s,
            240,
            "a drift report over the whole first window",
            every_s=2,
        )
        assert not same["dataset_drift"], drifted(same)
        assert same["drift_share"] < 0.25, drifted(same)
        assert same["reference_size"] > 0

        # 2. The same patients, older, feverish and hypoxic: the background refresh notices.
        post_all(base, [shifted(p) for p in like])
        wait_for(
            lambda: set(SHIFTED) <= drifted(drift(base)),
            240,
            "the background refresh to report the shifted window",
            every_s=2,
        )
        moved = settled(base)
        assert set(SHIFTED) <= drifted(moved), moved
        assert moved["drift_share"] > same["drift_share"]
        assert moved["window_size"] == WINDOW
        assert gauge(base, "healthpredict_drift_share") == pytest.approx(moved["drift_share"])
        assert gauge(base, "healthpredict_drifted_features") == moved["n_drifted"]

        page = httpx.get(
            f"{base}/monitoring/drift", params={"format": "html"}, headers=CLINICIAN, timeout=120
        )
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
    report = tmp_path / "drift_report.html"
    report.write_text(page.text)
    check_report_in_browser(report, tmp_path, moved)


def check_report_in_browser(report: Path, tmp: Path, summary: dict[str, Any]) -> None:
    dom = chromium(report, tmp, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert not script_errors(dom.stderr), script_errors(dom.stderr)
    parser = VisibleText()
    parser.feed(dom.stdout)
    text = " ".join(parser.parts)
    assert "Dataset Drift" in text, "Evidently's widgets did not render"
    assert f"{summary['n_features']} Columns" in text or "Columns" in text
    banner = text[: text.index("Dataset Drift")]
    for name in SHIFTED:
        assert name in banner, f"{name} not shown as drifted"

    shot = tmp / "drift_report.png"
    result = chromium(
        report, tmp, f"--screenshot={shot}", "--window-size=1400,1800", "--hide-scrollbars"
    )
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    from matplotlib.image import imread

    pixels = np.asarray(imread(shot))
    assert pixels.shape[0] == 1800 and pixels.shape[1] == 1400
    assert pixels[..., :3].std() > 0.05, "screenshot is blank"
    if os.environ.get("HP_UPDATE_DOCS_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copy(shot, SCREENSHOT)
