"""Monitoring routes: live drift report and the diagnosis model's global feature importance."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from app.deps import BundleDep
from app.errors import NotFoundError
from app.monitoring.monitor import get_monitor
from app.schemas.errors import ErrorResponse
from app.schemas.monitoring import DriftResponse, ImportanceResponse

router = APIRouter(tags=["monitoring"])


@router.get(
    "/monitoring/drift",
    response_model=DriftResponse,
    summary="Data drift of recent inputs",
    responses={
        200: {"content": {"text/html": {}}, "description": "JSON summary, or the HTML report."},
        503: {"model": ErrorResponse, "description": "No model or too few live inputs yet."},
    },
)
async def read_drift(
    request: Request,
    report_format: Annotated[Literal["json", "html"], Query(alias="format")] = "json",
) -> Any:
    """Evidently drift of the last `HP_DRIFT_WINDOW_SIZE` inputs against the training reference.

    Computed in the background every `HP_DRIFT_REFRESH_S`, never inside a request: this returns
    the last report (its `computed_at` says when), or 503 saying why there is none (fewer than
    `HP_DRIFT_MIN_WINDOW` live inputs: not enough data). `?format=html` returns the full Evidently
    report of that same computation.
    """
    result = get_monitor(request.app).latest()
    if report_format == "html":
        return HTMLResponse(result.html)
    return result.summary.to_dict()


@router.get(
    "/models/importance",
    response_model=ImportanceResponse,
    summary="Global feature importance",
    responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def read_importance(bundle: BundleDep) -> ImportanceResponse:
    """Mean |SHAP| of each input field for the served diagnosis model, computed at training."""
    importance = bundle.meta.feature_importance
    if not importance:
        raise NotFoundError("The served model carries no feature importance")
    ranked = sorted(importance.items(), key=lambda kv: -kv[1])
    return ImportanceResponse(
        run_id=bundle.run_id,
        model_type=bundle.meta.model_type,
        importance=[{"feature": f, "importance": v} for f, v in ranked],
    )
