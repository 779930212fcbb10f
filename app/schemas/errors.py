"""The one error body (DESIGN §4) and the translation of pydantic errors into its details."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from pydantic import BaseModel, Field

MAX_VALUE_CHARS = 80


class DuplicateField:
    """Placeholder for a field given under two names (``heart_rate`` and ``heartRate``).

    It never validates (not a number, string, bool or list), so the error lands on the
    canonical field, and the error detail names both spellings.
    """

    __slots__ = ("names",)

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def __repr__(self) -> str:
        return f"DuplicateField{self.names!r}"


class ErrorDetail(BaseModel):
    """What was wrong with one field."""

    field: str = Field(description="Canonical field name (`records[3].heart_rate` in a batch).")
    value: Any = Field(None, description="The value received (truncated), or null if absent.")
    reason: str = Field(description="Why it was refused, for a human.")


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="Human-readable summary.")
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body. The request id is in the `X-Request-ID` response header."""

    error: ErrorBody

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "error": {
                        "code": "validation_error",
                        "message": "Invalid request: heart_rate",
                        "details": [
                            {"field": "heart_rate", "value": 400, "reason": "must be at most 250"}
                        ],
                    }
                }
            ]
        }
    }


def field_path(loc: Sequence[int | str]) -> str:
    """``("body", "records", 3, "age")`` -> ``records[3].age``; the body itself is ``body``."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            if not out:  # a JSON decode position, not an index
                break
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def short_value(value: Any) -> Any:
    """The received value, JSON-safe and truncated so an error never echoes a whole body."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):  # JSON (stdlib) parses any size; 64-bit ones are echoed as is
        return value if -(2**63) <= value < 2**64 else short_value(str(value))
    if isinstance(value, bytes | bytearray):
        value = bytes(value[: MAX_VALUE_CHARS * 4]).decode("utf-8", "replace")
    if not isinstance(value, str):
        try:
            value = orjson.dumps(value, default=str).decode()
        except TypeError:  # e.g. an integer beyond 64 bits inside a list or an object
            value = json.dumps(value, default=str)
    return value if len(value) <= MAX_VALUE_CHARS else value[: MAX_VALUE_CHARS - 1] + "…"


def _reason(err: Mapping[str, Any]) -> str:
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    bounds = {
        "less_than_equal": ("le", "must be at most"),
        "less_than": ("lt", "must be below"),
        "greater_than_equal": ("ge", "must be at least"),
        "greater_than": ("gt", "must be above"),
    }
    if kind in bounds:
        key, text = bounds[kind]
        return f"{text} {ctx.get(key, 0):g}"
    simple = {
        "missing": "is required",
        "float_type": "must be a number (a JSON number, not a string)",
        "float_parsing": "must be a number (a JSON number, not a string)",
        "int_type": "must be an integer (a JSON number, not a string)",
        "int_parsing": "must be an integer (a JSON number, not a string)",
        "int_from_float": "must be a whole number",
        "bool_type": "must be true or false",
        "bool_parsing": "must be true or false",
        "string_type": "must be a string",
        "list_type": "must be a list",
        "finite_number": "must be a finite number",
        "extra_forbidden": "unknown field; see GET /models/signature for accepted names",
        "model_attributes_type": "must be a JSON object",
        "dict_type": "must be a JSON object",
        "model_type": "must be a JSON object",
    }
    if kind in simple:
        return simple[kind]
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        if len(expected) > 60:
            return "must be one of the codes listed by GET /models/signature"
        return f"must be one of {expected}"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length')} items"
    if kind == "json_invalid":
        return f"body is not valid JSON ({ctx.get('error', 'decode error')})"
    return str(err.get("msg", "is invalid"))


def validation_details(
    errors: Iterable[Mapping[str, Any]], content_type: str | None = None
) -> list[dict[str, Any]]:
    """Pydantic/FastAPI error dicts -> ``[{"field", "value", "reason"}]`` (deduplicated)."""
    details: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for err in errors:
        loc = tuple(err.get("loc", ()))
        field = field_path(loc)
        value = err.get("input")
        if isinstance(value, DuplicateField):
            reason = "given more than once (as " + " and ".join(map(repr, value.names)) + ")"
            value = None
        elif field == "body" and isinstance(value, bytes | bytearray):
            reason = "body must be JSON sent with Content-Type: application/json"
            if content_type:
                reason += f" (got {content_type})"
        else:
            reason = _reason(err)
        if err.get("type") == "missing":
            value = None
        key = (field, reason)
        if key in seen:
            continue
        seen.add(key)
        details.append({"field": field, "value": short_value(value), "reason": reason})
    return details
