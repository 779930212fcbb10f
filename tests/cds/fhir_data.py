"""Realistic FHIR R4 resources written by hand (LOINC and UCUM codes literal, not read from the
mapping under test), each validated with `fhir.resources`' models (R4B: its Patient,
Observation, Condition and Bundle fit R4 data), and the same patient as `/predict` JSON."""

from __future__ import annotations

from itertools import count
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"
PATIENT_ID = "ed-4711"
WHEN = "2026-11-30T09:15:00+00:00"
VITAL = "vital-signs"
_IDS = count(1)
LAB = "laboratory"


def patient(gender: str = "female", birth_date: str = "1959-05-20") -> dict[str, Any]:
    resource = {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "active": True,
        "name": [{"use": "official", "family": "Martin", "given": ["Claire"]}],
        "gender": gender,
        "birthDate": birth_date,
    }
    Patient.model_validate(resource)
    return resource


def _category(category: str) -> list[dict[str, Any]]:
    system = "http://terminology.hl7.org/CodeSystem/observation-category"
    return [{"coding": [{"system": system, "code": category}]}]


def quantity(value: float, ucum: str, unit: str | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit or ucum, "system": UCUM, "code": ucum}


def observation(
    loinc: str,
    value: float,
    ucum: str,
    *,
    display: str = "",
    when: str = WHEN,
    status: str = "final",
    category: str = VITAL,
    unit: str | None = None,
    oid: str | None = None,
) -> dict[str, Any]:
    resource = {
        "resourceType": "Observation",
        "id": oid or f"obs-{loinc}-{next(_IDS)}",
        "status": status,
        "category": _category(category),
        "code": {"coding": [{"system": LOINC, "code": loinc, "display": display or loinc}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": when,
        "valueQuantity": quantity(value, ucum, unit),
    }
    Observation.model_validate(resource)
    return resource


def bp_panel(systolic: float, diastolic: float, when: str = WHEN) -> dict[str, Any]:
    def component(code: str, value: float) -> dict[str, Any]:
        return {
            "code": {"coding": [{"system": LOINC, "code": code}]},
            "valueQuantity": quantity(value, "mm[Hg]", "mmHg"),
        }

    resource = {
        "resourceType": "Observation",
        "id": "bp-panel",
        "status": "final",
        "category": _category(VITAL),
        "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure"}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "effectiveDateTime": when,
        "component": [component("8480-6", systolic), component("8462-4", diastolic)],
    }
    Observation.model_validate(resource)
    return resource


def condition(snomed: str, display: str, clinical_status: str = "active") -> dict[str, Any]:
    resource = {
        "resourceType": "Condition",
        "id": f"cond-{snomed}",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": clinical_status,
                }
            ]
        },
        "code": {"coding": [{"system": SNOMED, "code": snomed, "display": display}]},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
    }
    Condition.model_validate(resource)
    return resource


def bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    resource = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {"fullUrl": f"urn:uuid:{r['resourceType']}-{r['id']}", "resource": r} for r in resources
        ],
    }
    Bundle.model_validate(resource)
    return resource


def pneumonia_observations() -> list[dict[str, Any]]:
    """A febrile, hypoxic, tachypnoeic patient; vitals and labs in canonical units."""
    return [
        observation("8867-4", 112, "/min", display="Heart rate"),
        observation("9279-1", 26, "/min", display="Respiratory rate"),
        observation("8310-5", 38.9, "Cel", display="Body temperature"),
        observation("59408-5", 89, "%", display="SpO2"),
        bp_panel(98, 60),
        observation("72514-3", 3, "{score}", display="Pain score", category="survey"),
        observation("9269-2", 15, "{score}", display="GCS total", category="survey"),
        observation("2339-0", 7.2, "mmol/L", category=LAB),
        observation("6690-2", 16.5, "10*9/L", category=LAB),
        observation("1988-5", 180, "mg/L", category=LAB),
        observation("2524-7", 2.4, "mmol/L", category=LAB),
    ]


PNEUMONIA_CONDITIONS = (
    ("386661006", "Fever"),
    ("49727002", "Cough"),
    ("45710003", "Productive cough"),
    ("267036007", "Dyspnea"),
    ("48409008", "Crackles"),
    ("77176002", "Smoker"),
)

# The same patient as `/predict` JSON (age at WHEN: born 1959-05-20 -> 67).
PNEUMONIA_RECORD: dict[str, Any] = {
    "age": 67, "sex": "F", "heart_rate": 112.0, "systolic_bp": 98.0, "diastolic_bp": 60.0,
    "respiratory_rate": 26.0, "temperature": 38.9, "spo2": 89.0, "pain_scale": 3, "glasgow": 15,
    "glucose": 7.2, "wbc": 16.5, "crp": 180.0, "lactate": 2.4, "smoker": True,
    "symptoms": ["fever", "cough", "sputum", "dyspnea", "crackles"],
}  # fmt: skip


def pneumonia_prefetch() -> dict[str, Any]:
    conditions = [condition(code, display) for code, display in PNEUMONIA_CONDITIONS]
    return {
        "patient": patient(),
        "observations": bundle(pneumonia_observations()),
        "conditions": bundle(conditions),
    }


def hook_request(prefetch: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {
            "userId": "Practitioner/example",
            "patientId": PATIENT_ID,
            "encounterId": "89284",
        },
        "prefetch": pneumonia_prefetch() if prefetch is None else prefetch,
    }
    body.update(fields)
    return body
