"""The `fhirServer` path: what prefetch lacks is read from a real local FHIR stub server."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.api.conftest import assert_error, closed_port
from tests.cds import fhir_data as fd

TOKEN = "some-opaque-fhir-access-token"
Call = Callable[[dict[str, Any]], Any]


class FhirStub:
    """A tiny FHIR server: Patient read, Observation and Condition searches (two pages)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None]] = []
        self.fail: set[str] = set()  # resource types answered 500
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_port}/fhir"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.requests.append((self.path, self.headers.get("Authorization")))
                status, body = stub.answer(self.path, self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        url = urlsplit(path)
        kind = url.path.removeprefix("/fhir/").split("/")[0]
        outcome = {"resourceType": "OperationOutcome", "issue": []}
        if authorization != f"Bearer {TOKEN}":
            return 401, outcome
        if kind in self.fail:
            return 500, outcome
        if url.path == f"/fhir/Patient/{fd.PATIENT_ID}":
            return 200, fd.patient()
        query = parse_qs(url.query)
        if query.get("patient") != [fd.PATIENT_ID]:
            return 400, outcome
        if kind == "Observation":
            return 200, self._observation_page(query.get("page", ["1"])[0])
        if kind == "Condition":
            conditions = [fd.condition(c, d) for c, d in fd.PNEUMONIA_CONDITIONS]
            return 200, fd.bundle(conditions)
        return 404, outcome

    def _observation_page(self, page: str) -> dict[str, Any]:
        observations = fd.pneumonia_observations()
        if page == "1":
            bundle = fd.bundle(observations[:5])
            next_url = f"{self.base}/Observation?patient={fd.PATIENT_ID}&page=2"
            bundle["link"] = [{"relation": "next", "url": next_url}]
            return bundle
        bundle = fd.bundle(observations[5:])
        # A next link off the FHIR server's base is never followed (this stub would record it).
        foreign = self.base.replace("/fhir", "/elsewhere") + "/Observation?page=3"
        bundle["link"] = [{"relation": "next", "url": foreign}]
        return bundle


@pytest.fixture
def stub() -> Iterator[FhirStub]:
    server = FhirStub()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()
        thread.join(5)


def _with_server(prefetch: dict[str, Any], base: str) -> dict[str, Any]:
    auth = {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Patient.read patient/Observation.read patient/Condition.read",
        "subject": "cds-service4",
    }
    return fd.hook_request(prefetch, fhirServer=base, fhirAuthorization=auth)


def test_without_prefetch_everything_is_read_from_the_fhir_server(
    call: Call, stub: FhirStub
) -> None:
    from_prefetch = call(fd.hook_request()).json()["cards"][0]
    response = call(_with_server({}, stub.base))
    assert response.status_code == 200, response.text
    card = response.json()["cards"][0]
    assert card["summary"] == from_prefetch["summary"]
    assert card["detail"] == from_prefetch["detail"]
    paths = [path for path, _ in stub.requests]
    assert paths[0] == f"/fhir/Patient/{fd.PATIENT_ID}"
    assert paths[1].startswith(f"/fhir/Observation?patient={fd.PATIENT_ID}&code=")
    assert "http://loinc.org|8867-4" in paths[1].replace("%7C", "|")
    assert paths[2] == f"/fhir/Observation?patient={fd.PATIENT_ID}&page=2"
    assert paths[3].startswith(f"/fhir/Condition?patient={fd.PATIENT_ID}")
    assert len(paths) == 4  # the foreign next link was not followed
    assert {auth for _, auth in stub.requests} == {f"Bearer {TOKEN}"}


def test_only_what_prefetch_lacks_is_read(call: Call, stub: FhirStub) -> None:
    prefetch = fd.pneumonia_prefetch()
    del prefetch["observations"]
    response = call(_with_server(prefetch, stub.base))
    assert response.status_code == 200, response.text
    assert [p.split("?")[0] for p, _ in stub.requests] == ["/fhir/Observation"] * 2


def test_complete_prefetch_and_a_fhir_server_reads_nothing(call: Call, stub: FhirStub) -> None:
    response = call(_with_server(fd.pneumonia_prefetch(), stub.base))
    assert response.status_code == 200, response.text
    assert stub.requests == []


@pytest.mark.parametrize("failing", ["Patient", "Observation"])
def test_a_needed_read_that_fails_is_412(call: Call, stub: FhirStub, failing: str) -> None:
    stub.fail.add(failing)
    response = call(_with_server({}, stub.base))
    assert_error(response, 412, "precondition_failed")


def test_a_failing_conditions_read_only_loses_the_symptoms(call: Call, stub: FhirStub) -> None:
    stub.fail.add("Condition")
    response = call(_with_server({}, stub.base))
    assert response.status_code == 200, response.text


def test_a_token_the_fhir_server_refuses_is_412(call: Call, stub: FhirStub) -> None:
    body = _with_server({}, stub.base)
    body["fhirAuthorization"]["access_token"] = "expired-token"
    assert_error(call(body), 412, "precondition_failed")


def test_an_unreachable_fhir_server_is_412(call: Call) -> None:
    body = _with_server({}, f"http://127.0.0.1:{closed_port()}/fhir")
    assert_error(call(body), 412, "precondition_failed")


def test_no_token_or_patient_value_in_any_log_line(
    call: Call, stub: FhirStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stub.fail.add("Condition")  # a failed read is logged too
    body = _with_server({}, stub.base)
    response = call(body)
    assert response.status_code == 200, response.text
    server_side = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert server_side, "nothing was logged"
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in server_side)
    # The FHIR reads themselves (httpx's URLs name the patient) log nothing at INFO.
    reads = [r for r in caplog.records if r.name == "httpx" and "127.0.0.1" in r.getMessage()]
    assert all(stub.base not in r.getMessage() for r in reads if r.levelno >= logging.INFO)
    for secret in (TOKEN, fd.PATIENT_ID, "Practitioner/example", "1959-05-20", "Claire"):
        assert secret not in text, secret
    assert "eyJ" not in text  # no JWT
