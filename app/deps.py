"""Dependencies handing out what the lifespan built (`app.state`), and the auth dependency.

Trivial dependencies are ``async def`` on purpose: a sync dependency costs a thread-pool hop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session

from app.audit.events import AuditEvents
from app.audit.writer import AuditWriter
from app.errors import AuthError, ForbiddenError, RateLimitedError
from app.security.api_keys import Principal, Role
from app.serving.bundle import ModelBundle
from app.serving.loader import ModelManager
from app.serving.service import PredictionService
from app.serving.shadow import ShadowScorer
from app.settings import Settings

API_KEY_HEADER = "X-API-Key"
ANONYMOUS = Principal(key_id="anonymous", role="admin")  # who calls when auth is disabled

api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="API key; role `clinician` (predict, feedback) or `admin` (also reload, retrain).",
)


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_models(request: Request) -> ModelManager:
    return request.app.state.models  # type: ignore[no-any-return]


async def get_bundle(request: Request) -> ModelBundle:
    """The bundle being served; 503 (with the loader's reason) while degraded."""
    models: ModelManager = request.app.state.models
    return models.current().bundle


async def get_service(request: Request) -> PredictionService:
    return request.app.state.service  # type: ignore[no-any-return]


async def get_shadow(request: Request) -> ShadowScorer:
    return request.app.state.shadow  # type: ignore[no-any-return]


async def get_audit(request: Request) -> AuditWriter:
    return request.app.state.audit  # type: ignore[no-any-return]


async def get_audit_events(request: Request) -> AuditEvents:
    return request.app.state.audit_events  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    """A SQLAlchemy session for the request, closed afterwards (commit is the caller's)."""
    with request.app.state.sessionmaker() as session:
        yield session


async def authenticate(
    request: Request, api_key: Annotated[str | None, Security(api_key_scheme)]
) -> Principal:
    """The caller, from ``X-API-Key``: 401 if absent/unknown, 429 past the key's rate limit."""
    return principal_of(request, api_key)


def principal_of(request: Request, api_key: str | None) -> Principal:
    """`authenticate`'s work, done once per request: the principal is kept in the request's
    state, so the rate limit takes one token even when several role checks apply."""
    state = request.scope.setdefault("state", {})
    known: Principal | None = state.get("principal")
    if known is not None:
        return known
    app_state = request.app.state
    if not app_state.settings.auth_enabled:
        return ANONYMOUS
    principal: Principal | None = app_state.api_keys.authenticate(api_key)
    if principal is None:
        message = None if api_key else "Missing API key (header X-API-Key)"
        raise AuthError(message, headers={"WWW-Authenticate": "ApiKey"})
    retry_after = app_state.rate_limiter.acquire(principal.key_id)
    if retry_after is not None:
        raise RateLimitedError(
            f"Rate limit of {app_state.settings.rate_limit_per_minute}/min exceeded; "
            f"retry in {retry_after:g} s",
            headers={"Retry-After": str(int(retry_after))},
        )
    state["key_id"], state["principal"] = principal.key_id, principal
    events: AuditEvents | None = getattr(app_state, "audit_events", None)  # None: no lifespan
    if events is not None:
        events.note_key_use(principal.key_id)  # the audit's key-use counts (no I/O)
    return principal


def check_role(principal: Principal, role: Role) -> Principal:
    """``principal`` if its role is at least ``role``; `ForbiddenError` (403) otherwise."""
    if not principal.may(role):
        raise ForbiddenError(f"This endpoint needs the '{role}' role")
    return principal


def require_role(role: Role) -> Callable[..., Awaitable[Principal]]:
    """Dependency: an authenticated caller whose role is at least ``role`` (403 otherwise)."""

    async def _require(
        request: Request, api_key: Annotated[str | None, Security(api_key_scheme)]
    ) -> Principal:  # one dependency, not two: FastAPI solves each at every request
        return check_role(principal_of(request, api_key), role)

    _require.__name__ = f"require_{role}"
    return _require


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ModelsDep = Annotated[ModelManager, Depends(get_models)]
BundleDep = Annotated[ModelBundle, Depends(get_bundle)]
ServiceDep = Annotated[PredictionService, Depends(get_service)]
AuditDep = Annotated[AuditWriter, Depends(get_audit)]
AuditEventsDep = Annotated[AuditEvents, Depends(get_audit_events)]
ShadowDep = Annotated[ShadowScorer, Depends(get_shadow)]
SessionDep = Annotated[Session, Depends(get_session)]
PrincipalDep = Annotated[Principal, Depends(authenticate)]
AdminDep = Annotated[Principal, Depends(require_role("admin"))]

__all__ = [
    "AdminDep",
    "AuditDep",
    "AuditEventsDep",
    "BundleDep",
    "ModelsDep",
    "PrincipalDep",
    "ServiceDep",
    "SessionDep",
    "SettingsDep",
    "ShadowDep",
    "authenticate",
    "check_role",
    "require_role",
]
