"""All routers, included with their auth: protected by default (clinician), health open.

H5/H6 add their routers here, one include line each, choosing the dependency list.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

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

api_router = APIRouter(responses=VALIDATION_ERROR)
api_router.include_router(health.router)
api_router.include_router(predict.router, dependencies=CLINICIAN, responses=AUTH_ERRORS)
api_router.include_router(models.router, dependencies=CLINICIAN, responses=AUTH_ERRORS)
api_router.include_router(
    shadow.router, dependencies=CLINICIAN, responses={**AUTH_ERRORS, **STORE_ERRORS}
)
api_router.include_router(
    feedback.router, dependencies=CLINICIAN, responses={**AUTH_ERRORS, **STORE_ERRORS}
)
api_router.include_router(
    retrain.router, dependencies=ADMIN, responses={**AUTH_ERRORS, **STORE_ERRORS}
)
api_router.include_router(monitoring_api.router, dependencies=CLINICIAN, responses=AUTH_ERRORS)
api_router.include_router(cds_router, dependencies=[Depends(require_cds_client)])  # own auth
