"""The clinician's page at `/ui`: a form generated from the feature contract, answers, feedback,
a scored list and an ops view. All patient data goes through the JSON API from the browser."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app.ui.page import render_page
from app.ui.router import STATIC_PATH, router

STATIC_DIR = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add `GET /ui` and its static files (`/ui/static/…`) to ``app``; render the page in both
    languages now (templates compiled once, ~0.1 s), so no visitor waits for it."""
    for lang in ("en", "fr"):
        render_page(lang, STATIC_PATH, app.state.settings.batch_max_size)
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="ui-static")


__all__ = ["install"]
