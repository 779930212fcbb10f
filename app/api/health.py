"""Liveness, readiness and a summary of the service's state (open: no API key needed)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request

from app.deps import ModelsDep
from app.errors import (
    BrokerUnavailableError,
    FastJSONResponse,
    ModelNotReadyError,
    ShuttingDownError,
    StoreUnavailableError,
)
from app.schemas.errors import ErrorResponse
from app.schemas.models import HealthResponse, ReadyResponse

router = APIRouter(prefix="/health", tags=["health"])
APP_VERSION = "0.1.0"


@router.get("/live", summary="Liveness: the process answers")
async def read_liveness() -> dict[str, str]:
    """Always 200 while the process serves HTTP, even degraded (no model)."""
    return {"status": "alive"}


@router.get(
    "/ready",
    response_model=ReadyResponse,
    summary="Readiness: models loaded and the store usable",
    responses={503: {"model": ErrorResponse, "description": "Not ready: each reason listed."}},
)
async def read_readiness(request: Request, models: ModelsDep) -> FastJSONResponse:
    """200 once both pipelines are loaded, the store is migrated and reachable and the Celery
    broker (when one is configured) answers; 503 naming each dependency that is not
    (`details`: `models`, `database`, `broker`) until then; 503 `shutting_down` from the
    moment the process receives SIGTERM."""
    if getattr(request.app.state, "shutting_down", False):
        raise ShuttingDownError(
            "Not ready: shutting down",
            details=[{"field": "process", "value": None, "reason": "shutting down"}],
        )
    problems: dict[str, str] = {}
    bundle = models.bundle
    if bundle is None:
        problems["models"] = models.status().get("reason") or "loading"
    state = request.app.state
    dependencies = {"database": state.store, "broker": getattr(state, "broker", None)}
    checked = {name: dep for name, dep in dependencies.items() if dep is not None}
    reasons = await asyncio.gather(*(dep.check() for dep in checked.values()))
    problems |= {name: why for name, why in zip(checked, reasons, strict=True) if why}
    if problems or bundle is None:
        error = (
            ModelNotReadyError
            if "models" in problems
            else StoreUnavailableError
            if "database" in problems
            else BrokerUnavailableError
        )
        raise error(
            "Not ready: " + "; ".join(f"{name}: {why}" for name, why in problems.items()),
            details=[{"field": n, "value": None, "reason": why} for n, why in problems.items()],
        )
    checks = {"models": "ok"} | dict.fromkeys(checked, "ok")
    return FastJSONResponse({"status": "ready", **bundle.info(), "checks": checks})


@router.get("", response_model=HealthResponse, summary="Service summary")
async def read_health(request: Request, models: ModelsDep) -> FastJSONResponse:
    """Status (`ok` or `degraded`), model source and versions, uptime, loader state, the last
    registry check (`registry`: where the alias pointed and when it was asked), which fast paths
    serve the loaded bundle (`false`: verified unusable for it, its plain path serves), and the
    shadow challenger (`shadow.loaded` false and its `reason` when absent)."""
    bundle = models.bundle
    info: dict[str, Any] = (
        bundle.info()
        if bundle
        else dict.fromkeys(("source", "diagnosis_version", "treatment_version", "run_id"))
    )
    return FastJSONResponse(
        {
            "status": "ok" if bundle else "degraded",
            "ready": bundle is not None,
            **info,
            "uptime_s": round(time.monotonic() - request.app.state.started_at, 3),
            "version": APP_VERSION,
            "loader": models.status(),
            "registry": request.app.state.registry_watch.status(),
            "fast_paths": models.predictor.fast_paths if models.predictor else {},
            "shadow": request.app.state.shadow.status(),
        }
    )
