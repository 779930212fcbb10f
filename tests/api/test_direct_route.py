"""`POST /predict` (a `DirectRoute`) answers exactly like FastAPI's own handler would.

The app gets a twin route, ``POST /twin``: the same endpoint function, served by FastAPI's
standard dependency solving. Every request of the table goes to both; status, body and headers
(request id aside) must be identical. The app is degraded (no model), so a valid record gets the
same 503 from both: validation and auth come first.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from app.api.direct import DirectRoute
from app.api.predict import create_prediction
from app.deps import require_role
from app.main import create_app
from app.settings import DEFAULT_ADMIN_KEY, DEFAULT_CLINICIAN_KEY
from tests.api.conftest import make_settings
from tests.factories import make_patient

CLINICIAN = {"X-API-Key": DEFAULT_CLINICIAN_KEY}
JSON = {"Content-Type": "application/json"}


# The twin: a plain FastAPI route whose JSON is parsed by orjson, as `read_json_body` parses it.
class OrjsonRequest(Request):
    """Request whose JSON body is parsed by orjson; `orjson.JSONDecodeError` subclasses
    `json.JSONDecodeError`, so FastAPI still answers malformed JSON with its 422."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(await self.body())
        return self._json


class OrjsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def orjson_handler(request: Request) -> Response:
            return await handler(OrjsonRequest(request.scope, request.receive))

        return orjson_handler


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    app = create_app(make_settings(Path(tmp_path_factory.mktemp("direct"))))
    twin = APIRouter(dependencies=[Depends(require_role("clinician"))], route_class=OrjsonRoute)
    twin.add_api_route("/twin", create_prediction, methods=["POST"])
    app.include_router(twin)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _valid() -> dict[str, Any]:
    return make_patient()


CASES: dict[str, dict[str, Any]] = {
    "valid record (503: no model)": {"json": _valid()},
    "valid, explain=true": {"json": _valid(), "params": {"explain": "true"}},
    "explain not a boolean": {"json": _valid(), "params": {"explain": "maybe"}},
    "explain and body both wrong": {
        "json": {**_valid(), "age": -4},
        "params": {"explain": "2"},
    },
    "out of range": {"json": {**_valid(), "age": 400}},
    "string for a number": {"json": {**_valid(), "heart_rate": "90"}},
    "unknown field": {"json": {**_valid(), "shoe_size": 44}},
    "missing required fields": {"json": {"age": 50}},
    "body is a list": {"json": [_valid()]},
    "body is a string": {"json": "patient"},
    "body is null": {"content": b"null", "headers": JSON},
    "malformed JSON": {"content": b'{"age": 5,', "headers": JSON},
    "empty body": {"content": b"", "headers": JSON},
    "no content type": {"content": orjson.dumps(_valid()), "headers": {}},
    "text/plain": {"content": orjson.dumps(_valid()), "headers": {"Content-Type": "text/plain"}},
    "application/vnd.x+json": {
        "content": orjson.dumps(_valid()),
        "headers": {"Content-Type": "application/vnd.x+json; charset=utf-8"},
    },
    "french and canonical names twice": {"json": {**_valid(), "frequence_cardiaque": 80}},
}


def _call(client: TestClient, path: str, case: dict[str, Any], key: dict[str, str]) -> Any:
    headers = {**key, **case.get("headers", {})}
    if "json" in case:
        return client.post(path, json=case["json"], params=case.get("params"), headers=headers)
    return client.post(path, content=case["content"], params=case.get("params"), headers=headers)


def _same(a: httpx.Response, b: httpx.Response) -> None:
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.json() == b.json()
    drop = {"x-request-id", "content-length"}
    assert {k: v for k, v in a.headers.items() if k not in drop} == {
        k: v for k, v in b.headers.items() if k not in drop
    }


@pytest.mark.parametrize("name", list(CASES))
def test_same_answer_as_fastapi(client: TestClient, name: str) -> None:
    case = CASES[name]
    direct = _call(client, "/predict", case, CLINICIAN)
    _same(direct, _call(client, "/twin", case, CLINICIAN))
    assert direct.status_code in (422, 503)


@pytest.mark.parametrize(
    "key", [{}, {"X-API-Key": "nope"}, {"X-API-Key": DEFAULT_ADMIN_KEY}], ids=str
)
def test_same_auth_answers(client: TestClient, key: dict[str, str]) -> None:
    for case in (CASES["valid record (503: no model)"], CASES["out of range"]):
        _same(_call(client, "/predict", case, key), _call(client, "/twin", case, key))


def test_the_caller_is_authenticated_before_the_body_is_parsed(client: TestClient) -> None:
    case = CASES["malformed JSON"]
    assert _call(client, "/predict", case, {}).status_code == 401
    assert _call(client, "/twin", case, {}).status_code == 422  # FastAPI parses first


def test_a_direct_route_refuses_other_dependencies() -> None:
    """Anything but one role check of its own would be skipped by the direct handler."""
    router = APIRouter(route_class=OrjsonRoute)
    route_class = DirectRoute.serving(lambda request, body, query: None, dict, {})  # type: ignore[arg-type, return-value]
    with pytest.raises(TypeError, match="require_role"):
        router.add_api_route(
            "/x", create_prediction, methods=["POST"], route_class_override=route_class
        )
