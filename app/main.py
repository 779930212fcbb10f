"""`create_app()`: the FastAPI application, its lifespan, routers, error handlers and middleware."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from app.api import include_routers
from app.api.health import APP_VERSION
from app.audit.events import AuditEvents, flush_key_use_forever
from app.audit.process import AuditProcess
from app.audit.writer import AuditWriter
from app.deps import require_role
from app.errors import BodySizeLimitMiddleware, FastJSONResponse, install_error_handlers
from app.log_config import RequestContextMiddleware, configure_logging
from app.monitoring import metrics, wiring
from app.security.key_ring import KeyRing
from app.security.rate_limit import TokenBucketLimiter
from app.serving.loader import ModelManager
from app.serving.registry_watch import RegistryWatcher
from app.serving.service import PredictionService
from app.serving.shadow import ShadowScorer, ThreadBackend, load_challenger
from app.serving.shadow_process import ProcessBackend
from app.settings import Settings, get_settings
from app.shutdown import drain_on_signal
from app.store import db, early_migration
from app.store.availability import StoreAvailability
from app.store.broker import BrokerAvailability
from app.ui import install as install_ui

logger = logging.getLogger(__name__)
MAX_RECORD_BYTES = 4096

DESCRIPTION = """Clinical prediction service: a diagnosis, a treatment coherent with it, how much
to trust them (prediction quality, NEWS2, warnings) and the models that answered.

Authentication: header `X-API-Key` (roles `clinician`, `admin`); `/health*` and `/docs` are
open. Every error has the body `{"error": {"code", "message", "details"}}` and an `X-Request-ID`
header."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the long-lived state, load the models, and tear everything down in order."""
    settings: Settings = app.state.settings
    state = app.state
    state.started_at = time.monotonic()
    restore_signals = drain_on_signal(state, settings.shutdown_drain_s)
    state.api_keys = KeyRing(
        settings.api_keys.get_secret_value(),
        settings.api_keys_file,
        allow_clear=settings.environment != "production",
    )
    hup = _on_sighup(state.api_keys.request_reload)
    state.rate_limiter = TokenBucketLimiter(settings.rate_limit_per_minute)
    await _start_store_and_models(state, settings)
    key_use = _start_audit(state, settings)
    _start_shadow(state, settings)
    state.service = PredictionService(
        state.models,
        state.audit,
        settings.microbatch_window_ms,
        settings.microbatch_max_size,
        shadow=state.shadow,
    )
    logger.info("service started", extra={"ready": state.models.ready})
    try:
        yield
    finally:
        await state.registry_watch.stop()
        await state.service.aclose()
        if getattr(state, "shadow_load", None) is not None:
            state.shadow_load.cancel()
        await anyio.to_thread.run_sync(state.shadow.stop)
        await state.audit.stop()  # nothing accepted is lost on a clean shutdown
        key_use.cancel()
        await anyio.to_thread.run_sync(state.audit_events.flush_key_use)
        hup()
        await state.models.stop()
        await state.store.stop()
        if state.broker is not None:
            state.broker.stop()
        state.engine.dispose()
        restore_signals()
        logger.info("service stopped")


async def _start_store_and_models(state: Any, settings: Settings) -> None:
    """The engine, then the migration and the model load together (MLflow -> BentoML ->
    degraded); a database down leaves the service not ready, retrying, never stopped."""
    state.engine = db.make_engine(settings.database_url, **store_bounds(settings))
    state.sessionmaker = db.make_sessionmaker(state.engine)
    state.models = ModelManager(settings)
    state.store = StoreAvailability(
        state.engine,
        migrate=store_migration(settings),
        retry_s=settings.database_retry_s,
        grace_s=settings.database_ready_grace_s,
    )
    state.broker = (
        BrokerAvailability(
            settings.celery_broker_url, settings.broker_timeout_s, settings.broker_ready_grace_s
        )
        if settings.celery_broker_url
        else None
    )
    await asyncio.gather(state.models.start(), state.store.start())
    state.registry_watch = RegistryWatcher(state.models, settings)
    state.registry_watch.start()


def store_bounds(settings: Settings) -> dict[str, float]:
    """The store's timeouts, for every engine the service opens (`db.make_engine`)."""
    return {
        "connect_timeout_s": settings.database_connect_timeout_s,
        "statement_timeout_s": settings.database_statement_timeout_s,
        "io_timeout_s": settings.database_io_timeout_s,
    }


def _start_audit(state: Any, settings: Settings) -> asyncio.Task[None]:
    """The audit events (chained), the write-behind audit queue, and the task flushing key
    use; returns that task."""
    chain_key = settings.audit_hmac_key.get_secret_value().encode()
    state.audit_events = AuditEvents(state.sessionmaker, chain_key)
    state.audit = AuditWriter(
        state.sessionmaker,
        max_queue=settings.audit_queue_size,
        retry_delay_s=settings.audit_flush_interval_s,
        on_depth=metrics.set_audit_queue_depth,
        process=(
            AuditProcess(state.engine, chain_key, store_bounds(settings))
            if settings.audit_process and not db.is_memory(state.engine)
            else None
        ),
        chain_key=chain_key,
        # a request waits for room no longer than a store call may take (503 past it)
        room_timeout_s=settings.database_io_timeout_s + settings.database_connect_timeout_s,
    )
    state.audit.start()
    return asyncio.get_running_loop().create_task(
        flush_key_use_forever(state.audit_events), name="audit-key-use"
    )


def _start_shadow(state: Any, settings: Settings) -> None:
    """The shadow challenger's scorer, loaded in the background (the champion never waits)."""
    state.shadow = ShadowScorer(
        settings.shadow_queue_size,
        ProcessBackend(settings)
        if settings.shadow_process and not db.is_memory(state.engine)
        else ThreadBackend(state.sessionmaker, partial(load_challenger, settings)),
    )
    if settings.shadow_enabled:
        state.shadow_load = asyncio.create_task(state.shadow.refresh(), name="hp-shadow-load")
    else:
        state.shadow.reason = "disabled (HP_SHADOW_ENABLED=false)"


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application; ``settings`` defaults to the environment's (`HP_*`)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title="HealthPredict",
        version=APP_VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
    )
    app.state.settings = settings
    install_error_handlers(app)
    include_routers(app)
    app.add_api_route("/", _to_docs, methods=["GET"], include_in_schema=False)
    install_ui(app)  # GET /ui, the clinician's page (open; its data goes through the API)
    wiring.install(app, settings, auth=require_role("clinician"))  # GET /metrics, middleware
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes(settings))
    app.add_middleware(RequestContextMiddleware, access_log=settings.access_log)  # outermost
    return app


def store_migration(settings: Settings) -> Callable[[], object]:
    """What brings the store up to date, attempt after attempt: the migration `python -m app`
    started before importing us (its first attempt), then `migrate_if_needed`; with
    ``auto_migrate`` off, a connection only (the deploy migrates)."""
    url = settings.database_url
    first = early_migration.take(url) if settings.auto_migrate else None

    def migrate() -> object:
        nonlocal first
        if first is not None:
            child, first = first, None
            child.wait()
            return True
        if settings.auto_migrate:
            return migrate_if_needed(url)
        engine = db.make_engine(url, connect_timeout_s=settings.database_connect_timeout_s)
        try:
            with engine.connect():
                return False
        finally:
            engine.dispose()

    return migrate


def migrate_if_needed(url: str) -> bool:
    """`db.upgrade` unless the store is already at the migrations' head.

    The check reads ``alembic_version`` in-process (milliseconds); the upgrade itself runs
    Alembic in a child process (seconds), which a restart of an up-to-date service skips.
    """
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect, text

    heads = set(ScriptDirectory.from_config(db.alembic_config(url)).get_heads())
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            if inspect(conn).has_table("alembic_version"):
                rows = conn.execute(text("SELECT version_num FROM alembic_version"))
                if {row[0] for row in rows} == heads:
                    return False
    finally:
        engine.dispose()
    db.upgrade(url)
    return True


def _on_sighup(reload: Callable[[], None]) -> Callable[[], None]:
    """Reload the API key file on SIGHUP (where this loop may handle signals); returns the
    function that removes the handler."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, reload)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        return lambda: None

    def remove() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return remove


def max_body_bytes(settings: Settings) -> int:
    """Request bodies above this are refused (413) before being read: a full batch of generous
    records plus headroom (a typical record is well under 1 KB of JSON)."""
    return settings.batch_max_size * MAX_RECORD_BYTES + 64 * 1024


async def _to_docs() -> RedirectResponse:
    return RedirectResponse("/docs")
