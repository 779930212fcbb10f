"""Our discovery, request, card and feedback shapes against the CDS Hooks 2.0 spec's own JSON
examples (https://cds-hooks.hl7.org/2.0/, sections Discovery, Calling a CDS Service, CDS Service
Response and Feedback; the examples are quoted below as published)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.cds.schemas import CardFeedbackRequest, HookRequest
from tests.cds import fhir_data as fd
from tests.cds.conftest import BASE, TokenFactory, bearer

SPEC_DISCOVERY = {
    "services": [
        {
            "hook": "patient-view",
            "title": "Static CDS Service Example",
            "description": "An example of a CDS Service that returns a static set of cards",
            "id": "static-patient-greeter",
            "prefetch": {"patientToGreet": "Patient/{{context.patientId}}"},
        }
    ]
}
SPEC_REQUEST = {
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "fhirServer": "http://hooks.smarthealthit.org:9080",
    "hook": "patient-view",
    "fhirAuthorization": {
        "access_token": "some-opaque-fhir-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Patient.read patient/Observation.read",
        "subject": "cds-service4",
    },
    "context": {"userId": "Practitioner/example", "patientId": "1288992", "encounterId": "89284"},
    "prefetch": {
        "patientToGreet": {
            "resourceType": "Patient",
            "gender": "male",
            "birthDate": "1925-12-23",
            "id": "1288992",
            "active": True,
        }
    },
}
SPEC_CARD = {
    "uuid": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
    "summary": "Example Card",
    "indicator": "info",
    "detail": "This is an example card.",
    "source": {
        "label": "Static CDS Service Example",
        "url": "https://example.com",
        "icon": "https://example.com/img/icon-100px.png",
    },
    "links": [{"label": "Google", "url": "https://google.com", "type": "absolute"}],
}
SPEC_OVERRIDE_REASONS = [
    {
        "code": "reason-code-provided-by-service",
        "system": "http://example.org/cds-services/fhir/CodeSystem/override-reasons",
        "display": "Patient refused",
    },
]
SPEC_SUGGESTION_KEYS = {"label", "uuid", "isRecommended", "actions"}
SPEC_FEEDBACK = [
    {
        "feedback": [
            {
                "card": "4e0a3a1e-3283-4575-ab82-028d55fe2719",
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
                "outcomeTimestamp": "2020-12-11T00:00:00Z",
            }
        ]
    },
    {
        "feedback": [
            {
                "card": "f6b95768-b1c8-40dc-8385-bf3504b82ffb",
                "outcome": "overridden",
                "outcomeTimestamp": "2020-12-11T00:00:00Z",
            }
        ]
    },
    {
        "feedback": [
            {
                "card": "9368d37b-283f-44a0-93ea-547cebab93ed",
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {
                        "code": "d7ecf885",
                        "system": "https://example.com/cds-hooks/override-reason-system",
                    },
                    "userComment": "A comment entered by the clinician.",
                },
                "outcomeTimestamp": "2020-12-11T00:00:00Z",
            }
        ]
    },
]
CARD_FIELDS = {
    "uuid": str,
    "summary": str,
    "detail": str,
    "indicator": str,
    "source": dict,
    "suggestions": list,
    "selectionBehavior": str,
    "overrideReasons": list,
    "links": list,
}


def _same_types(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    for key in ours.keys() & theirs.keys():
        assert type(ours[key]) is type(theirs[key]), key


def _no_empty_values(value: Any) -> None:
    """CDS Hooks §Null and empty JSON elements: no null, "", [] or {} anywhere."""
    assert value not in (None, "", [], {})
    if isinstance(value, dict):
        for item in value.values():
            _no_empty_values(item)
    elif isinstance(value, list):
        for item in value:
            _no_empty_values(item)


def test_discovery_has_the_spec_shape(cds_client: TestClient, make_token: TokenFactory) -> None:
    response = cds_client.get("/cds-services", headers=bearer(make_token(f"{BASE}/cds-services")))
    assert response.status_code == 200
    body = response.json()
    assert body.keys() == SPEC_DISCOVERY.keys()
    (ours,) = body["services"]
    spec = SPEC_DISCOVERY["services"][0]
    assert ours.keys() == spec.keys()
    _same_types(ours, spec)
    _no_empty_values(body)
    assert (ours["id"], ours["hook"]) == ("healthpredict-ed-triage", "patient-view")
    assert ours["prefetch"]["patient"] == spec["prefetch"]["patientToGreet"]
    observations = ours["prefetch"]["observations"]
    assert observations.startswith("Observation?patient={{context.patientId}}&code=")
    for code in ("8867-4", "9279-1", "8310-5", "59408-5", "85354-9", "2524-7"):
        assert f"http://loinc.org|{code}" in observations


def test_the_spec_request_example_is_a_valid_request() -> None:
    request = HookRequest.model_validate(SPEC_REQUEST)
    assert request.context.userId == "Practitioner/example"
    assert request.context.model_extra == {"encounterId": "89284"}


@pytest.mark.parametrize("example", SPEC_FEEDBACK, ids=["accepted", "overridden", "with-reason"])
def test_the_spec_feedback_examples_are_valid_feedback(example: dict[str, Any]) -> None:
    CardFeedbackRequest.model_validate(example)


def test_our_card_has_the_spec_card_shape(call: Callable[[dict[str, Any]], Any]) -> None:
    response = call(fd.hook_request())
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"cards"}
    card = body["cards"][0]
    _no_empty_values(body)
    assert set(card) <= set(CARD_FIELDS)
    assert {"summary", "indicator", "source"} <= set(card)
    for key, kind in CARD_FIELDS.items():
        assert key not in card or isinstance(card[key], kind), key
    _same_types(card, SPEC_CARD)
    assert set(card["source"]) <= set(SPEC_CARD["source"]) | {"topic"}
    assert card["indicator"] in ("info", "warning", "critical")
    for reason in card["overrideReasons"]:
        assert reason.keys() == SPEC_OVERRIDE_REASONS[0].keys()
    for suggestion in card["suggestions"]:
        assert set(suggestion) <= SPEC_SUGGESTION_KEYS
    assert card["selectionBehavior"] in ("at-most-one", "any")
