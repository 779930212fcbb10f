"""Domain errors carrying their HTTP status, and the handlers rendering every error in one shape.

Shape (DESIGN §4): ``{"error": {"code", "message", "details": [{"field", "value", "reason"}]}}``,
always with an ``X-Request-ID`` header. Code outside ``app/api`` raises these, never HTTPException.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from app.log_config import REQUEST_ID_HEADER, current_request_id
from app.schemas.errors import validation_details

logger = logging.getLogger(__name__)

JSON_MEDIA_TYPE = "application/json"


class FastJSONResponse(JSONResponse):
    """The service's JSON response: orjson, NumPy scalars allowed (FastAPI's ORJSONResponse is
    deprecated in favour of response-model serialisation, which validates and is slower for the
    prediction bodies we already build as plain dicts)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY, default=str)


class AppError(Exception):
    """Base of every expected failure; subclasses set ``status_code`` and ``code``."""

    status_code: int = 500
    code: str = "internal_error"
    message: str = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Sequence[Mapping[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message or type(self).message
        self.details: list[dict[str, Any]] = [dict(d) for d in details or ()]
        self.headers: dict[str, str] = dict(headers or {})
        super().__init__(self.message)


class InvalidInputError(AppError):
    """Input that passed the schema but is still unusable (422)."""

    status_code = 422
    code = "validation_error"
    message = "The request is not valid"


class ModelNotReadyError(AppError):
    """No model bundle is loaded yet (degraded mode)."""

    status_code = 503
    code = "model_not_ready"
    message = "No model is loaded yet; the service is retrying in the background"


class ModelLoadError(AppError):
    """A model could not be loaded (or was refused) from a source."""

    status_code = 503
    code = "model_load_failed"
    message = "The model could not be loaded"


class NotFoundError(AppError):
    status_code = 404
    code = "not_found"
    message = "Not found"


class PredictionNotFoundError(NotFoundError):
    code = "prediction_not_found"
    message = "No prediction with this id"


class ShadowNotLoadedError(NotFoundError):
    code = "challenger_not_loaded"
    message = "No shadow challenger is loaded (no version carries the challenger alias)"


class BatchTooLargeError(AppError):
    status_code = 413
    code = "batch_too_large"
    message = "Too many records in one batch"


class ConflictError(AppError):
    status_code = 409
    code = "conflict"
    message = "Conflicts with the current state"


class StoreUnavailableError(AppError):
    """The database did not answer (down, connection reset, timed out): retry later (503)."""

    status_code = 503
    code = "store_unavailable"
    message = "The database is unavailable; retry shortly"


class ShuttingDownError(AppError):
    """The process received SIGTERM: finishing what it has, taking nothing new (503)."""

    status_code = 503
    code = "shutting_down"
    message = "The service is shutting down"


class BrokerUnavailableError(AppError):
    """The Celery broker did not answer or accept the job: retry later (503)."""

    status_code = 503
    code = "broker_unavailable"
    message = "The Celery broker did not accept the retraining job"


STORE_RETRY_AFTER_S = 5
"""`Retry-After` of a 503 caused by the database (seconds)."""


class AuthError(AppError):
    status_code = 401
    code = "unauthorized"
    message = "A valid API key is required (header X-API-Key)"


class ForbiddenError(AppError):
    status_code = 403
    code = "forbidden"
    message = "This API key's role may not call this endpoint"


class RateLimitedError(AppError):
    status_code = 429
    code = "rate_limited"
    message = "Too many requests for this API key"


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


def error_body(code: str, message: str, details: Sequence[Mapping[str, Any]] = ()) -> bytes:
    """The one error shape, serialised."""
    return orjson.dumps(
        {"error": {"code": code, "message": message, "details": list(details)}},
        default=str,
    )


def error_response(
    status_code: int,
    code: str,
    message: str,
    details: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
    request: Request | None = None,
) -> Response:
    """Render an error; the request id header is added here too (500s bypass the middleware)."""
    all_headers = dict(headers or {})
    request_id = _request_id(request)
    if request_id:
        all_headers.setdefault(REQUEST_ID_HEADER, request_id)
    return Response(
        error_body(code, message, details),
        status_code=status_code,
        media_type=JSON_MEDIA_TYPE,
        headers=all_headers,
    )


def _request_id(request: Request | None) -> str | None:
    if request is not None:
        rid = request.scope.get("state", {}).get("request_id")
        if rid:
            return str(rid)
    return current_request_id()


async def app_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    if exc.status_code >= 500:
        logger.warning("request failed: %s", exc.code, extra={"error_code": exc.code})
    return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers, request)


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError | ValidationError)
    content_type = request.headers.get("content-type")
    errors = list(exc.errors())
    raw = getattr(exc, "body", None)
    if isinstance(raw, str | bytes):  # a JSON decode error: show the (truncated) text sent
        errors = [{**e, "input": raw} if e.get("type") == "json_invalid" else e for e in errors]
    details = validation_details(errors, content_type=content_type)
    fields = ", ".join(dict.fromkeys(str(d["field"]) for d in details))
    message = f"Invalid request: {fields}" if fields else "Invalid request"
    return error_response(422, "validation_error", message, details, request=request)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):  # FastAPI's 400 for a body that is not UTF-8
        bad = cause.object[cause.start : cause.start + 1].hex()
        reason = f"JSON must be UTF-8: byte 0x{bad} at position {cause.start} is not"
        details = [{"field": "body", "value": None, "reason": reason}]
        return error_response(
            422, "validation_error", "Invalid request: body", details, None, request
        )
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 404:
        message = f"No route {request.url.path}"
    elif exc.status_code == 405:
        message = f"Method {request.method} not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(exc.status_code, code, message, (), exc.headers, request)


async def database_error_handler(request: Request, exc: Exception) -> Response:
    """A database error: 409 for a constraint the request broke, 503 (retry) for anything else.

    Never the exception's text in the log or the answer: it quotes the SQL statement and, on an
    engine without ``hide_parameters``, the bound values (a feedback's reason, a clinician id).
    """
    assert isinstance(exc, SQLAlchemyError)
    driver = getattr(exc, "orig", None)
    logger.warning(
        "database error",
        extra={
            "error_type": type(exc).__name__,
            "driver_error": type(driver).__name__ if driver is not None else None,
        },
    )
    if isinstance(exc, IntegrityError):
        conflict = ConflictError("The request conflicts with data already stored")
        return await app_error_handler(request, conflict)
    unavailable = StoreUnavailableError(headers={"Retry-After": str(STORE_RETRY_AFTER_S)})
    return await app_error_handler(request, unavailable)


async def unhandled_error_handler(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log only; the client gets a generic message and the request id.
    logger.error("unhandled error", exc_info=exc, extra={"error_code": "internal_error"})
    return error_response(
        500,
        "internal_error",
        "Internal server error; quote the X-Request-ID header when reporting it",
        request=request,
    )


class BodySizeLimitMiddleware:
    """413 in our shape for request bodies above ``max_bytes``: at once when Content-Length
    says so, or as soon as a chunked body goes past it (Starlette's own limiter answers in
    plain text)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                response = self._too_large(scope)
                await response(scope, receive, send)
                return
        seen = 0

        async def counting_receive() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise StarletteHTTPException(413, f"Request body above {self.max_bytes} bytes")
            return message

        await self.app(scope, counting_receive, send)

    def _too_large(self, scope: Any) -> Response:
        request_id = scope.get("state", {}).get("request_id")
        return error_response(
            413,
            "payload_too_large",
            f"Request body above {self.max_bytes} bytes (see HP_BATCH_MAX_SIZE)",
            headers={REQUEST_ID_HEADER: request_id} if request_id else None,
        )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handler set on an app."""
    app.add_exception_handler(AppError, app_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(ValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(SQLAlchemyError, database_error_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
