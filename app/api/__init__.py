"""All routers, included with their auth: protected by default (clinician), health open.

H5/H6 add their routers here, one include line each, choosing the dependency list.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI

from app.api import feedback, health, models, predict, retrain, shadow
from app.api import monitoring as monitoring_api
from app.cds.auth import require_cds_client
from app.cds.router import router as cds_router
from app.deps import require_role
from app.schemas.errors import ErrorResponse

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or unknown API key (`X-API-Key`)."},
    403: {"model": ErrorResponse, "description": "The key's role may not call this."},
    429: {"model": ErrorResponse, "description": "Rate limit of the key exceeded (Retry-After)."},
}
STORE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "Conflicts with data already stored."},
    503: {"model": ErrorResponse, "description": "Database unavailable (Retry-After)."},
}
VALIDATION_ERROR: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "Invalid request: field, value and reason."},
}
CLINICIAN = [Depends(require_role("clinician"))]
ADMIN = [Depends(require_role("admin"))]


def include_routers(app: FastAPI) -> None:
    """Every router, included in the app itself with its auth (one level of routing: FastAPI
    walks an included router's routes at every request, and a router of routers twice)."""
    protected = {**VALIDATION_ERROR, **AUTH_ERRORS}
    stored = {**protected, **STORE_ERRORS}
    app.include_router(health.router, responses=VALIDATION_ERROR)
    app.include_router(predict.router, dependencies=CLINICIAN, responses=protected)
    app.include_router(models.router, dependencies=CLINICIAN, responses=protected)
    app.include_router(shadow.router, dependencies=CLINICIAN, responses=stored)
    app.include_router(feedback.router, dependencies=CLINICIAN, responses=stored)
    app.include_router(retrain.router, dependencies=ADMIN, responses=stored)
    app.include_router(monitoring_api.router, dependencies=CLINICIAN, responses=protected)
    app.include_router(  # its own auth
        cds_router, dependencies=[Depends(require_cds_client)], responses=VALIDATION_ERROR
    )
