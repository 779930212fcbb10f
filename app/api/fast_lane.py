"""`POST /predict` dispatched straight to its route, inside the app's own middleware.

A request normally crosses Starlette's and FastAPI's whole stack: error middleware, FastAPI's
telemetry and body-limit layers (no-ops here: no OpenTelemetry provider, no ``max_body_size``),
our middlewares, the exception middleware, FastAPI's exit-stack layer, the router's scan of every
included router, and the route's request/response wrapper. For the hot route the lane keeps only
what acts on it, built from the app's own parts so behaviour cannot drift:

    ServerErrorMiddleware(the app's 500 handler)
      -> the app's user middlewares, in order (request id + access log, body limit, metrics)
        -> ExceptionMiddleware(the app's other handlers)
          -> the route's handler (`app.api.direct.DirectRoute`: auth, parse, validate, predict)

``scope["route"]`` is the matched route, as the router sets it (metrics label, access log).
Anything else (other paths and methods, a ``root_path``, a route that is not a `DirectRoute`)
takes the normal path. tests/api/test_fast_lane.py compares both lanes answer for answer.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.direct import DirectRoute

PATH, METHOD = "/predict", "POST"


def find_route(app: FastAPI, path: str = PATH, method: str = METHOD) -> APIRoute | None:
    """The `DirectRoute` the app's router sends ``method path`` to, or None (FastAPI keeps
    included routers as branches: their effective routes are walked)."""
    for entry in app.router.routes:
        contexts = getattr(entry, "effective_route_contexts", None)
        routes = [c.original_route for c in contexts()] if contexts else [entry]
        for route in routes:
            if (
                isinstance(route, APIRoute)
                and route.path == path
                and method in (route.methods or ())
            ):
                return route if isinstance(route, DirectRoute) else None
    return None


def build_lane(app: FastAPI, route: APIRoute) -> ASGIApp:
    """The route's handler wrapped in the app's error handling and user middlewares.

    The middlewares are instantiated a second time for the lane, so they must keep no state of
    their own between requests (ours keep settings only; metrics are module-level).
    """
    handler = route.get_route_handler()

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        response = await handler(Request(scope, receive, send))
        await response(scope, receive, send)

    error_handler = None
    handlers: dict[Any, Any] = {}
    for key, value in app.exception_handlers.items():
        if key in (500, Exception):
            error_handler = value
        else:
            handlers[key] = value
    lane: ASGIApp = ExceptionMiddleware(endpoint, handlers=handlers, debug=app.debug)
    for middleware in reversed(app.user_middleware):
        cls, args, kwargs = middleware
        lane = cls(lane, *args, **kwargs)
    return ServerErrorMiddleware(lane, handler=error_handler, debug=app.debug)


class FastLaneApp(FastAPI):
    """FastAPI whose ``POST /predict`` takes the lane (built at the first request, once the
    middlewares and handlers are final). ``fast_lane = False`` sends it the normal way."""

    fast_lane = True
    _lane: ASGIApp | None = None
    _lane_route: APIRoute | None = None
    _lane_built = False

    @property
    def lane_route(self) -> APIRoute | None:
        """The route the lane serves, once built (None: every request takes the normal path)."""
        return self._lane_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.fast_lane
            and scope["type"] == "http"
            and scope["path"] == PATH
            and scope["method"] == METHOD
            and not scope.get("root_path")
        ):
            if not self._lane_built:
                self._build_lane()
            if self._lane is not None:
                scope["app"], scope["router"] = self, self.router
                scope["route"] = self._lane_route
                await self._lane(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _build_lane(self) -> None:
        self._lane_built = True
        route = find_route(self)
        if route is None or self.max_body_size is not None or self.root_path:
            return  # a body limit or root path of FastAPI's own: keep the normal path
        self._lane_route = route
        self._lane = build_lane(self, route)
