"""PatientRecord is generated from the contract: bounds, types, enums, aliases, cross-field rule.

Parametrised over `ED_COHORT.features`, so a field added to the contract is covered here without
touching this file. The HTTP shape of the same errors is checked in tests/api/test_validation.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.schemas.errors import validation_details
from app.schemas.patient import PATIENT_EXAMPLES, PatientRecord
from app.schemas.prediction import BatchPredictionRequest, PredictionResponse
from tests.factories import DROP, make_patient, renamed
from train_pipeline.contract import ED_COHORT, Feature

FEATURES = ED_COHORT.features
BOUNDED = [f for f in FEATURES if f.kind in ("numeric", "integer")]
REQUIRED = [f for f in FEATURES if f.tier == "required"]
OPTIONAL = [f for f in FEATURES if f.tier != "required"]


def details_of(payload: Any) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as info:
        PatientRecord.model_validate(payload)
    return validation_details(info.value.errors())


def test_model_fields_are_the_contract() -> None:
    assert tuple(PatientRecord.model_fields) == ED_COHORT.feature_names


@pytest.mark.parametrize("name", PATIENT_EXAMPLES)
def test_openapi_examples_are_valid(name: str) -> None:
    PatientRecord.model_validate(PATIENT_EXAMPLES[name]["value"])


def _bound_cases() -> list[Any]:
    cases = []
    for f in BOUNDED:
        step = 1 if f.kind == "integer" else 0.5
        lo, hi = f.minimum, f.maximum
        cast = int if f.kind == "integer" else float
        cases.append(
            pytest.param(f, cast(lo - step), f"must be at least {lo:g}", id=f"{f.name}-low")
        )
        cases.append(
            pytest.param(f, cast(hi + step), f"must be at most {hi:g}", id=f"{f.name}-high")
        )
    return cases


@pytest.mark.parametrize(("feat", "value", "reason"), _bound_cases())
def test_out_of_range_names_field_and_bound(feat: Feature, value: float, reason: str) -> None:
    payload = make_patient(**{feat.name: value})
    if feat.name == "diastolic_bp":
        payload["systolic_bp"] = 300
    details = details_of(payload)
    assert details[0] == {"field": feat.name, "value": value, "reason": reason}


@pytest.mark.parametrize("feat", BOUNDED, ids=lambda f: f.name)
def test_bounds_are_inclusive(feat: Feature) -> None:
    for value in (feat.minimum, feat.maximum):
        cast = int if feat.kind == "integer" else float
        payload = make_patient(**{feat.name: cast(value)})
        if feat.name == "diastolic_bp":
            payload["systolic_bp"], payload["diastolic_bp"] = 300, cast(value)
        if feat.name == "systolic_bp":
            payload.pop("diastolic_bp")
        assert getattr(PatientRecord.model_validate(payload), feat.name) == value


def _wrong_type_cases() -> list[Any]:
    cases = []
    for f in FEATURES:
        if f.kind in ("numeric", "integer"):
            bad: list[Any] = [str(f.minimum), True, [f.minimum]]
            if f.kind == "integer":
                bad.append(float(f.minimum) + 0.5)
        elif f.kind == "boolean":
            bad = ["true", 1, "yes"]
        elif f.kind == "categorical":
            bad = ["unknown-code", 1]
        else:
            # Unhashable items once crashed the alias folding (a 500 found by schemathesis).
            bad = ["fever", [f.categories[0], "not-a-symptom"], {"a": 1}, [["x"]], [{"a": 1}]]
        cases += [pytest.param(f, v, id=f"{f.name}-{v!r}") for v in bad]
    return cases


@pytest.mark.parametrize(("feat", "value"), _wrong_type_cases())
def test_wrong_type_or_code_names_field(feat: Feature, value: Any) -> None:
    details = details_of(make_patient(**{feat.name: value}))
    assert details[0]["field"].split("[")[0] == feat.name
    assert details[0]["reason"]


@pytest.mark.parametrize("feat", REQUIRED, ids=lambda f: f.name)
def test_missing_required_field(feat: Feature) -> None:
    assert details_of(make_patient(**{feat.name: DROP}))[0] == {
        "field": feat.name,
        "value": None,
        "reason": "is required",
    }


@pytest.mark.parametrize("feat", OPTIONAL, ids=lambda f: f.name)
def test_optional_field_may_be_absent_or_null(feat: Feature) -> None:
    absent = PatientRecord.model_validate(make_patient(**{feat.name: DROP}))
    null = PatientRecord.model_validate(make_patient(**{feat.name: None}))
    expected = list(feat.default) if isinstance(feat.default, tuple) else feat.default
    assert getattr(absent, feat.name) == getattr(null, feat.name) == expected


def test_unknown_field_is_named() -> None:
    details = details_of(make_patient(heart_rat=80))
    assert details[0]["field"] == "heart_rat"
    assert details[0]["reason"].startswith("unknown field")


@pytest.mark.parametrize("feat", [f for f in FEATURES if f.all_aliases], ids=lambda f: f.name)
def test_every_alias_maps_to_its_field_and_duplicates_are_refused(feat: Feature) -> None:
    value = make_patient().get(feat.name, feat.minimum if feat.minimum is not None else True)
    for alias in feat.all_aliases:
        payload = make_patient(**{feat.name: DROP})
        payload[alias] = value
        factor = next((k for a, _, k in feat.converted_aliases if a == alias), 1)
        expected = value * factor if factor != 1 else value
        assert getattr(PatientRecord.model_validate(payload), feat.name) == pytest.approx(expected)

        duplicated = make_patient(**{feat.name: value})
        duplicated[alias] = value
        detail = details_of(duplicated)[0]
        assert detail["field"] == feat.name
        assert "given more than once" in detail["reason"] and alias in detail["reason"]


def test_glycemie_in_g_per_l_is_converted_before_the_range_check() -> None:
    glucose = ED_COHORT.feature("glucose")
    assert PatientRecord.model_validate(
        make_patient(glucose=DROP, glycemie=1.0)
    ).glucose == pytest.approx(5.551)
    too_high = glucose.maximum / 5.551 + 0.5  # within range in g/L, not once converted
    detail = details_of(make_patient(glucose=DROP, glycemie=too_high))[0]
    assert (
        detail["field"] == "glucose" and detail["reason"] == f"must be at most {glucose.maximum:g}"
    )


@pytest.mark.parametrize(
    ("given", "code"),
    [("male", "M"), ("FEMALE", "F"), ("H", "M"), ("f", "F"), ("Homme", "M"), (" femme ", "F")],
)
def test_sex_spellings(given: str, code: str) -> None:
    assert PatientRecord.model_validate(make_patient(sex=given)).sex == code


def test_categorical_value_aliases_come_from_the_contract() -> None:
    for feat in (f for f in FEATURES if f.value_aliases):
        for alias, code in feat.value_aliases:
            assert getattr(PatientRecord.model_validate(make_patient(**{feat.name: alias})),
                           feat.name) == code  # fmt: skip


def test_diastolic_must_be_below_systolic() -> None:
    details = details_of(make_patient(systolic_bp=100, diastolic_bp=100))
    assert details == [
        {"field": "diastolic_bp", "value": 100, "reason": "must be below systolic_bp (100)"}
    ]
    assert PatientRecord.model_validate(make_patient(systolic_bp=101, diastolic_bp=100))


def test_multilabel_bounds_and_normalisation() -> None:
    feat = next(f for f in FEATURES if f.kind == "multilabel")
    assert feat.max_items is not None
    distinct = list(feat.categories)[: feat.max_items + 1]
    if len(distinct) > feat.max_items:  # enough codes to exceed the bound with distinct ones
        detail = details_of(make_patient(**{feat.name: distinct}))[0]
        assert detail["field"] == feat.name
        assert detail["reason"] == f"must have at most {feat.max_items} items"
    first, second = feat.categories[:2]
    record = PatientRecord.model_validate(
        make_patient(**{feat.name: [first.upper(), second, first]})
    )
    assert getattr(record, feat.name) == [first, second]  # case folded, duplicates dropped


@pytest.mark.parametrize("body", [[], "text", 3, None], ids=repr)
def test_body_must_be_an_object(body: Any) -> None:
    assert details_of(body)[0]["field"] == "body"


@pytest.mark.parametrize("style", ["camel", "french"])
def test_renamed_payloads_validate_to_the_same_record(style: str) -> None:
    canonical = PatientRecord.model_validate(make_patient()).to_record()
    other = PatientRecord.model_validate(renamed(make_patient(), style)).to_record()
    assert other.keys() == canonical.keys()
    for key, value in canonical.items():
        assert other[key] == (pytest.approx(value) if isinstance(value, float) else value)


def test_error_value_is_truncated() -> None:
    detail = details_of(make_patient(heart_rate="9" * 500))[0]
    assert len(detail["value"]) <= 80


def test_batch_request_and_response_schemas() -> None:
    assert BatchPredictionRequest.model_validate({"records": [make_patient()]})
    with pytest.raises(ValidationError):
        BatchPredictionRequest.model_validate({"records": []})
    example = PredictionResponse.model_json_schema()["examples"][0]
    assert PredictionResponse.model_validate(example).diagnosis is not None
