"""Logging set-up: JSON lines on stderr, a request-id context variable and a redaction filter.

Patient data never belongs in a log; the redaction filter is a safety net, not the plan.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
import uuid
from typing import Any

import orjson

from train_pipeline.contract import ED_COHORT

REQUEST_ID_HEADER = "X-Request-ID"
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed through ``extra=``.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}
_SENSITIVE_NAMES = frozenset(
    name.lower() for feat in ED_COHORT.features for name in (feat.name, *feat.all_aliases)
) | {"x-api-key", "api_key", "inputs", "record", "records", "body", "password"}
# A clinician is a person too; feedback's `reason` is free text but the name is too common.
_SENSITIVE_NAMES |= {"clinician_id", "clinicianid"}
_SENSITIVE_PATTERN = re.compile(
    r"(?i)\b("
    + "|".join(sorted(map(re.escape, _SENSITIVE_NAMES), key=len, reverse=True))
    + r")\b(['\"]?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|\[[^\]]*\]|[^,;}\s]+)"
)
REDACTED = "[redacted]"


def current_request_id() -> str | None:
    """The id of the request being served by this task, if any."""
    return _request_id.get()


def set_request_id(request_id: str | None) -> contextvars.Token[str | None]:
    return _request_id.set(request_id)


def reset_request_id(token: contextvars.Token[str | None]) -> None:
    _request_id.reset(token)


# SQLAlchemy appends a statement's bound values to its errors ("[parameters: (131.5, ...)]"),
# positional for SQLite: no field name to match, so the whole list goes.
_SQL_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
_SQL_PARAMETERS_REDACTED = f"[parameters: {REDACTED}]"
_EXC_FORMATTER = logging.Formatter()


def redact_text(text: str) -> str:
    """``text`` with patient-looking ``name=value`` pairs and SQL bound parameters masked."""
    text = _SENSITIVE_PATTERN.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    return _SQL_PARAMETERS.sub(_SQL_PARAMETERS_REDACTED, text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in _SENSITIVE_NAMES else _redact_value(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


class RedactionFilter(logging.Filter):
    """Masks patient-looking values before a record reaches its handler: ``extra`` keys named
    like a contract field (nested too), ``name=value`` / ``"name": value`` pairs and SQL bound
    parameters in the message, the exception traceback (``exc_text``) and the stack.

    The traceback is formatted here, redacted, and left in ``exc_text``, which formatters
    (ours and the stdlib's) print instead of formatting ``exc_info`` again.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for key in list(record.__dict__):
            if key not in _STANDARD_ATTRS:
                value = record.__dict__[key]
                record.__dict__[key] = (
                    REDACTED if key.lower() in _SENSITIVE_NAMES else _redact_value(value)
                )
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _EXC_FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id:
            out["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in out:
                out[key] = value
        # The redaction filter leaves the (redacted) traceback in exc_text: print that one.
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=str).decode()


def configure_logging(level: str | int = "INFO") -> None:
    """Route the root logger (and uvicorn's) to JSON lines on stderr, once per process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactionFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_healthpredict", False):
            root.removeHandler(old)
    handler._healthpredict = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    # Our middleware writes the access log (with request id and latency); silence uvicorn's.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs each request's URL at INFO: a CDS call's FHIR reads name the patient in theirs.
    logging.getLogger("httpx").setLevel(logging.WARNING)


_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_access_logger = logging.getLogger("app.access")


class RequestContextMiddleware:
    """Pure ASGI middleware: request id (incoming ``X-Request-ID`` if sane, else a new one) on
    the context, ``request.state`` and every response; one JSON access-log line per request.
    """

    def __init__(self, app: Any, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _SAFE_REQUEST_ID.match(candidate):
                    request_id = candidate
                break
        if request_id is None:
            request_id = uuid.uuid4().hex
        start = time.perf_counter()
        state = scope.setdefault("state", {})
        state["request_id"], state["started"] = request_id, start
        token = _request_id.set(request_id)
        header = (b"x-request-id", request_id.encode())
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                if not any(k.lower() == b"x-request-id" for k, _ in headers):
                    headers.append(header)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log:
                self._log(scope, status, time.perf_counter() - start)
            _request_id.reset(token)

    @staticmethod
    def _log(scope: Any, status: int, seconds: float) -> None:
        route = scope.get("route")
        state = scope.get("state", {})
        extra = {
            "request_id": state.get("request_id"),
            "method": scope["method"],
            "route": getattr(route, "path", None) or "<unmatched>",
            "status": status,
            "latency_ms": round(seconds * 1000, 3),
        }
        for key in ("model_version", "key_id"):
            if key in state:
                extra[key] = state[key]
        _access_logger.info("request", extra=extra)
