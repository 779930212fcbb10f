"""Pure ASGI middleware counting HTTP requests by method, route template and status.

Labels use the matched route's template (`/retrain/{job_id}`), never the raw path, so the number
of series stays bounded; requests that match no route are labelled ``<unmatched>``.
"""

from __future__ import annotations

from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.monitoring import metrics

KNOWN_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


def route_template(scope: Scope) -> str:
    """The full path template of the route the router matched, or ``<unmatched>``.

    FastAPI >= 0.16x resolves included routers lazily and keeps the prefixed template on its
    effective route context; ``scope["route"]`` (Starlette) is the fallback.
    """
    context = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(context, "path_format", None)
    if not path:
        route = scope.get("route")
        path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(path) if path else metrics.UNMATCHED_ROUTE


class PrometheusMiddleware:
    """Records `healthpredict_http_*` metrics around every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        m = metrics.current()
        status = 500  # what the client gets if the app raises before responding

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
        m.http_in_flight.inc()
        start = perf_counter()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            elapsed = perf_counter() - start
            m.http_in_flight.dec()
            route = route_template(scope)
            metrics.child(m.http_requests, method, route, str(status)).inc()
            metrics.child(m.http_duration, method, route).observe(elapsed)
