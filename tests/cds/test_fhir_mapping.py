"""FHIR -> patient record: the conversion table, the latest value per field, what is ignored."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from app.cds import fhir
from app.cds.hook import validated
from tests.cds import fhir_data as fd
from train_pipeline import fhir_codes

# (LOINC, value, UCUM code, field, expected canonical value): literal, checked by hand.
CONVERSIONS = [
    ("8867-4", 88, "/min", "heart_rate", 88.0),
    ("8867-4", 88, "{beats}/min", "heart_rate", 88.0),
    ("9279-1", 18, "/min", "respiratory_rate", 18.0),
    ("8310-5", 38.5, "Cel", "temperature", 38.5),
    ("8310-5", 101.3, "[degF]", "temperature", 38.5),
    ("8310-5", 98.6, "[degF]", "temperature", 37.0),
    ("59408-5", 94, "%", "spo2", 94.0),
    ("2708-6", 91, "%", "spo2", 91.0),
    ("8480-6", 132, "mm[Hg]", "systolic_bp", 132.0),
    ("8462-4", 84, "mm[Hg]", "diastolic_bp", 84.0),
    ("9269-2", 14, "{score}", "glasgow", 14),
    ("72514-3", 7, "{score}", "pain_scale", 7),
    ("2339-0", 7.5, "mmol/L", "glucose", 7.5),
    ("2339-0", 180.16, "mg/dL", "glucose", 10.0),
    ("2345-7", 90.08, "mg/dL", "glucose", 5.0),
    ("6690-2", 12.3, "10*3/uL", "wbc", 12.3),
    ("6690-2", 12.3, "10*9/L", "wbc", 12.3),
    ("1988-5", 4.2, "mg/dL", "crp", 42.0),
    ("1988-5", 42, "mg/L", "crp", 42.0),
    ("89579-7", 56, "ng/L", "troponin", 56.0),
    ("67151-1", 0.056, "ug/L", "troponin", 56.0),
    ("2160-0", 1.0, "mg/dL", "creatinine", 88.42),
    ("2160-0", 97, "umol/L", "creatinine", 97.0),
    ("718-7", 135, "g/L", "hemoglobin", 13.5),
    ("718-7", 13.5, "g/dL", "hemoglobin", 13.5),
    ("2524-7", 36.03, "mg/dL", "lactate", 4.0),
    ("1963-8", 14, "mmol/L", "bicarbonate", 14.0),
    ("1963-8", 14, "meq/L", "bicarbonate", 14.0),
    ("39156-5", 27.4, "kg/m2", "bmi", 27.4),
]


@pytest.mark.parametrize(
    ("loinc", "value", "ucum", "field", "expected"),
    CONVERSIONS,
    ids=[f"{c[0]}-{c[2]}" for c in CONVERSIONS],
)
def test_conversion_table(loinc: str, value: float, ucum: str, field: str, expected: Any) -> None:
    values, unusable, _ = fhir.observations([fd.observation(loinc, value, ucum)])
    assert unusable == []
    assert values == {field: pytest.approx(expected, abs=1e-3)}
    assert type(values[field]) is type(expected)


@pytest.mark.parametrize(
    ("quantity", "reason"),
    [
        (fd.quantity(38.5, "K"), "unit 'K' cannot be converted"),
        (fd.quantity(38.5, "cel"), "unit 'cel' cannot be converted"),  # UCUM is case-sensitive
        # The display unit says °C but the UCUM code is what counts.
        ({"value": 38.5, "unit": "Cel", "system": "http://example.org/units", "code": "C"}, None),
        ({"value": 38.5, "unit": "Cel"}, "unit 'Cel' cannot be converted"),  # display only
        ({"unit": "Cel", "system": fd.UCUM, "code": "Cel"}, "no numeric value"),
    ],
    ids=["kelvin", "lower-case-cel", "other-system", "no-code", "no-value"],
)
def test_a_unit_not_in_the_contract_is_not_used_and_named(
    quantity: dict[str, Any], reason: str | None
) -> None:
    obs = fd.observation("8310-5", 38.5, "Cel", display="Body temperature")
    obs["valueQuantity"] = quantity
    values, unusable, _ = fhir.observations([obs])
    assert values == {}
    assert len(unusable) == 1
    assert unusable[0].label == "Body temperature (LOINC 8310-5)"
    assert unusable[0].reason == (reason or "unit 'C' cannot be converted")


def test_entered_in_error_is_ignored_and_the_latest_value_wins() -> None:
    items = [
        fd.observation("8867-4", 80, "/min", when="2026-11-30T08:00:00Z"),
        fd.observation("8867-4", 95, "/min", when="2026-11-30T09:00:00Z"),
        fd.observation(
            "8867-4", 150, "/min", when="2026-11-30T10:00:00Z", status="entered-in-error"
        ),
        fd.observation("2708-6", 97, "%", when="2026-11-30T07:00:00Z"),
        fd.observation("59408-5", 90, "%", when="2026-11-30T09:30:00+01:00"),  # 08:30 UTC
    ]
    values, unusable, on = fhir.observations(items)
    assert values == {"heart_rate": 95.0, "spo2": 90.0}
    assert unusable == []
    assert on == date(2026, 11, 30)


def test_bp_panel_components_and_separate_observations() -> None:
    panel = fd.bp_panel(142, 91, when="2026-11-30T09:00:00Z")
    older = fd.observation("8480-6", 120, "mm[Hg]", when="2026-11-29T09:00:00Z")
    values, _, _ = fhir.observations([older, panel])
    assert values == {"systolic_bp": 142.0, "diastolic_bp": 91.0}
    newer = fd.observation("8462-4", 70, "mm[Hg]", when="2026-12-01T09:00:00Z")
    values, _, on = fhir.observations([panel, newer])
    assert values == {"systolic_bp": 142.0, "diastolic_bp": 70.0}
    assert on == date(2026, 12, 1)


def test_a_glasgow_score_that_is_not_whole_is_not_used() -> None:
    values, unusable, _ = fhir.observations([fd.observation("9269-2", 13.5, "{score}")])
    assert values == {}
    assert unusable[0].reason == "not a whole number"


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        ("1959-05-20", date(2026, 5, 19), 66),
        ("1959-05-20", date(2026, 5, 20), 67),
        ("1959-05", date(2026, 6, 1), 67),
        ("1959", date(2026, 1, 1), 66),
        ("not a date", date(2026, 1, 1), None),
    ],
)
def test_age_in_completed_years(birth: str, on: date, age: int | None) -> None:
    assert fhir.age_at(birth, on) == age


def test_age_at_the_latest_observation_and_sex_from_gender() -> None:
    patient = fd.patient(gender="male", birth_date="1990-12-01")
    mapped = fhir.to_record(patient, fd.bundle([fd.observation("8867-4", 70, "/min")]))
    assert mapped.record == {"age": 35, "sex": "M", "heart_rate": 70.0}  # on 2026-11-30
    later = fd.observation("8867-4", 70, "/min", when="2026-12-02T00:00:00Z")
    assert fhir.to_record(patient, fd.bundle([later])).record["age"] == 36
    assert "sex" not in fhir.to_record(fd.patient(gender="unknown"), None).record


def test_conditions_give_symptoms_and_history_inactive_ones_do_not() -> None:
    found = [
        fd.condition("49727002", "Cough"),
        fd.condition("386661006", "Fever"),
        fd.condition("49727002", "Cough"),
        fd.condition("73211009", "Diabetes mellitus"),
        fd.condition("29857009", "Chest pain", clinical_status="resolved"),
        fd.condition("999999999", "Not in the contract"),
    ]
    assert fhir.conditions(found) == {"symptoms": ["cough", "fever"], "diabetes": True}


def test_the_whole_pneumonia_patient_maps_to_its_predict_json() -> None:
    prefetch = fd.pneumonia_prefetch()
    mapped = fhir.to_record(prefetch["patient"], prefetch["observations"], prefetch["conditions"])
    assert mapped.unusable == []
    assert mapped.record == fd.PNEUMONIA_RECORD


def test_out_of_range_values_are_dropped_and_a_missing_sex_is_a_problem() -> None:
    record, dropped, problems = validated({"age": 50, "sex": "F", "heart_rate": 400.0})
    assert record is not None and record.to_record()["heart_rate"] is None
    assert [d.label for d in dropped] == ["Heart rate"]
    assert dropped[0].reason == "400.0 must be at most 250"
    record, _, problems = validated({"age": 50, "heart_rate": 80.0})
    assert record is None
    assert problems == ["Patient.gender (male or female): missing or not valid"]
    record, _, problems = validated({"age": 12, "sex": "M"})
    assert record is None and problems == ["Patient.birthDate: missing or not valid"]


def test_the_mapping_names_only_contract_fields_and_symptoms() -> None:
    fhir_codes.check()
    assert len(fhir_codes.LOINC_BY_CODE) == len(fhir_codes.LOINC_CODES)
    for code in ("8867-4", "9279-1", "8310-5", "59408-5", "2708-6", "8480-6", "8462-4"):
        assert code in fhir_codes.LOINC_BY_CODE
    for code in ("9269-2", "2339-0", "2345-7", "6690-2", "1988-5", "89579-7", "67151-1"):
        assert code in fhir_codes.LOINC_BY_CODE
    for code in ("2160-0", "718-7", "2524-7", "1963-8", "39156-5"):
        assert code in fhir_codes.LOINC_BY_CODE
