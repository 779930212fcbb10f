"""`GET /ui`: the page itself, open (it holds no patient data), rendered once per language.

The page's scripts call the JSON API with the `X-API-Key` kept in `sessionStorage`; nothing
here reads a patient value, so nothing here can log one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.ui.page import Lang, render_page, stylesheet

STATIC_PATH = "/ui/static"
# External scripts only (no 'unsafe-inline', no eval); the JSON data block is not executed.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        f"style-src {stylesheet()[1]}",  # the inlined stylesheet, by its hash
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(prefix="/ui", tags=["ui"], include_in_schema=False)


@router.get("", response_class=HTMLResponse)
async def read_page(
    request: Request, lang: Annotated[Lang, Query(description="Page language.")] = "en"
) -> HTMLResponse:
    """The clinician's page (English, or French with `?lang=fr`)."""
    batch_max = request.app.state.settings.batch_max_size
    return HTMLResponse(render_page(lang, STATIC_PATH, batch_max), headers=SECURITY_HEADERS)
