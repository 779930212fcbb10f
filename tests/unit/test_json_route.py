"""`app.api.json_route`: orjson reads every body as `json.loads` does, values and errors, and the
routes that take JSON bodies really parse with it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.api import feedback, predict
from app.api.json_route import JsonRoute, OrjsonRequest, loads

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63) + 1, max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types (NaN equal to NaN; 1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES, st.sampled_from(["utf-8", "utf-16", "utf-32"]), st.booleans())
def test_loads_reads_every_body_as_the_standard_library(
    value: Any, encoding: str, ascii_only: bool
) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode(encoding)
    assert same(loads(body), json.loads(body))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"a": 1,}',
        b"[1, 2",
        b"nul",
        b'{"a": "\xff\xfe"}',  # invalid UTF-8
        b'{"a": 1} trailing',
        b"\x00",
    ],
)
def test_loads_refuses_what_the_standard_library_refuses_with_its_error(body: bytes) -> None:
    with pytest.raises(ValueError) as stdlib:
        json.loads(body)
    with pytest.raises(ValueError) as ours:
        loads(body)
    assert type(ours.value) is type(stdlib.value)
    assert str(ours.value) == str(stdlib.value)


@pytest.mark.parametrize("n", [-(2**63) - 1, 2**64, 10**30])
def test_integers_beyond_64_bits_read_as_floats(n: int) -> None:
    """The one difference (module docstring): the nearest float, where json keeps an int."""
    assert json.loads(str(n)) == n
    assert loads(str(n).encode()) == float(n)


def test_duplicate_keys_keep_the_last_value_as_the_standard_library() -> None:
    body = b'{"heart_rate": 80, "heart_rate": 131.5}'
    assert loads(body) == json.loads(body) == {"heart_rate": 131.5}


@pytest.mark.parametrize("router", [predict.router, feedback.router])
def test_json_body_routes_parse_with_orjson(router: Any) -> None:
    """Every route of the routers taking JSON bodies is a `JsonRoute` (hands `OrjsonRequest`)."""
    assert router.routes
    assert all(isinstance(route, JsonRoute) for route in router.routes)


async def test_orjson_request_parses_once_and_caches() -> None:
    bodies = [b'{"records": [{"age": 70}]}']

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": bodies.pop(), "more_body": False}

    request = OrjsonRequest({"type": "http", "method": "POST", "headers": []}, receive)
    first = await request.json()
    assert first == {"records": [{"age": 70}]}
    assert await request.json() is first  # the body was read once
