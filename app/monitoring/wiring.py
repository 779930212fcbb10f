"""FastAPI wiring of the monitoring: metrics middleware, `GET /metrics`, the drift refresher.

Kept apart from `metrics` so that module stays a leaf the serving code can import: this one
depends on FastAPI and on the middleware and monitor modules, which themselves import `metrics`.
The auth dependency comes from the caller (`app.main` passes `require_role("clinician")`), so
monitoring never imports `app.deps` (which imports serving, which imports `metrics`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, params
from fastapi.responses import Response

from app.monitoring import metrics
from app.monitoring.middleware import PrometheusMiddleware
from app.monitoring.monitor import install_drift
from app.settings import Settings


def read_metrics() -> Response:
    """Prometheus text exposition of the service's metrics."""
    body, content_type = metrics.render()
    return Response(content=body, media_type=content_type)


def install(app: FastAPI, settings: Settings, auth: Callable[..., Any] | None = None) -> None:
    """Add the metrics middleware, the `GET /metrics` route and the drift refresher to ``app``.

    Args:
        auth: the dependency `GET /metrics` requires when ``settings.metrics_protected`` (a
            FastAPI dependency callable, or a `Depends(...)`); the route is open otherwise.

    Raises:
        ValueError: ``settings.metrics_protected`` without an ``auth`` dependency.
    """
    app.add_middleware(PrometheusMiddleware)
    install_drift(app)
    dependencies: list[params.Depends] = []
    if settings.metrics_protected:
        if auth is None:
            raise ValueError("HP_METRICS_PROTECTED needs an auth dependency for GET /metrics")
        dependencies.append(auth if isinstance(auth, params.Depends) else Depends(auth))
    app.add_api_route(
        "/metrics",
        read_metrics,
        methods=["GET"],
        include_in_schema=False,
        dependencies=dependencies,
        name="read_metrics",
    )
    app.state.metrics = metrics.current()
