"""FHIR R4 Patient, Observations and Conditions -> a canonical patient record (plain dicts in).

The mapping is the contract's (`train_pipeline.fhir_codes`): LOINC code -> field, the UCUM code
(``valueQuantity.system``/``code``, never the display ``unit``) -> conversion. Per field the
latest usable Observation wins; ``entered-in-error`` ones are ignored; one in a unit the contract
does not list is not used and is reported. Age in completed years at the latest observation's
date (today without one), sex from ``gender``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import chain
from typing import Any

from train_pipeline.contract import ED_COHORT
from train_pipeline.fhir_codes import (
    BP_PANEL,
    LOINC_BY_CODE,
    LOINC_SYSTEM,
    SNOMED_BY_CODE,
    SNOMED_SYSTEM,
    UCUM_SYSTEM,
)

GENDER_TO_SEX = {"male": "M", "female": "F"}
IGNORED_STATUSES = frozenset({"entered-in-error", "cancelled"})
INACTIVE_CONDITIONS = frozenset({"inactive", "resolved", "remission"})
_INTEGER_FIELDS = frozenset(ED_COHORT.names_of("integer"))


@dataclass(frozen=True)
class Unusable:
    """A value that was not used, and why (shown in the card's detail)."""

    label: str
    reason: str


@dataclass
class Mapped:
    """The record built from FHIR, and what could not be used."""

    record: dict[str, Any]
    unusable: list[Unusable] = field(default_factory=list)


def resources(bundle_or_resource: Any, resource_type: str) -> Iterator[dict[str, Any]]:
    """Resources of ``resource_type`` in a Bundle's entries (or the resource itself)."""
    if not isinstance(bundle_or_resource, dict):
        return
    if bundle_or_resource.get("resourceType") == resource_type:
        yield bundle_or_resource
        return
    for entry in bundle_or_resource.get("entry") or ():
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and resource.get("resourceType") == resource_type:
            yield resource


def _when(resource: dict[str, Any]) -> datetime:
    """The clinically relevant time of an Observation (oldest possible when it has none)."""
    text = (
        resource.get("effectiveDateTime")
        or resource.get("effectiveInstant")
        or (resource.get("effectivePeriod") or {}).get("start")
        or resource.get("issued")
    )
    if not isinstance(text, str):
        return datetime.min.replace(tzinfo=UTC)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _codes(concept: Any, system: str) -> list[str]:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    if not isinstance(codings, list):
        return []
    return [
        str(c.get("code"))
        for c in codings
        if isinstance(c, dict) and c.get("system") == system and c.get("code")
    ]


def _quantities(obs: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(LOINC code, valueQuantity) pairs of an Observation: itself, or its BP panel components."""
    codes = _codes(obs.get("code"), LOINC_SYSTEM)
    if BP_PANEL in codes:
        for component in obs.get("component") or ():
            for code in _codes(component.get("code"), LOINC_SYSTEM):
                if code in LOINC_BY_CODE:
                    yield code, component.get("valueQuantity")
        return
    for code in codes:
        if code in LOINC_BY_CODE:
            yield code, obs.get("valueQuantity")
            return


def _value(code: str, quantity: Any) -> float | str:
    """The value in the field's canonical unit, or the reason it cannot be used."""
    loinc = LOINC_BY_CODE[code]
    if not isinstance(quantity, dict) or not isinstance(quantity.get("value"), int | float):
        return "no numeric value"
    ucum = quantity.get("code")
    unit = loinc.unit(ucum) if quantity.get("system") == UCUM_SYSTEM else None
    if unit is None:
        return f"unit {ucum or quantity.get('unit')!r} cannot be converted"
    value = unit.convert(float(quantity["value"]))
    if loinc.feature in _INTEGER_FIELDS:
        return int(value) if float(value).is_integer() else "not a whole number"
    return value


def observations(items: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], list[Unusable], date]:
    """Latest usable value per field, what was not usable, and the latest observation date."""
    latest: dict[str, tuple[datetime, Any]] = {}
    unusable: list[Unusable] = []
    newest: datetime | None = None
    for obs in items:
        if obs.get("status") in IGNORED_STATUSES:
            continue
        when = _when(obs)
        for code, quantity in _quantities(obs):
            value = _value(code, quantity)
            if isinstance(value, str):
                label = f"{LOINC_BY_CODE[code].display} (LOINC {code})"
                unusable.append(Unusable(label, value))
                continue
            feature = LOINC_BY_CODE[code].feature
            if feature not in latest or when >= latest[feature][0]:
                latest[feature] = (when, value)
            if when.year > 1 and (newest is None or when > newest):
                newest = when
    today = newest.date() if newest else datetime.now(UTC).date()
    return {name: value for name, (_, value) in latest.items()}, unusable, today


def conditions(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Symptoms and history flags from SNOMED CT coded Conditions (inactive ones ignored)."""
    out: dict[str, Any] = {}
    symptoms: list[str] = []
    for condition in items:
        status = _codes(condition.get("clinicalStatus"), _CLINICAL_STATUS)
        verification = _codes(condition.get("verificationStatus"), _VERIFICATION)
        if INACTIVE_CONDITIONS.intersection(status) or "entered-in-error" in verification:
            continue
        if "refuted" in verification:
            continue
        for code in _codes(condition.get("code"), SNOMED_SYSTEM):
            feature, symptom = SNOMED_BY_CODE.get(code, (None, None))
            if feature == "symptoms" and symptom:
                symptoms.append(symptom)
            elif feature:
                out[feature] = True
    if symptoms:
        out["symptoms"] = list(dict.fromkeys(symptoms))
    return out


_CLINICAL_STATUS = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def age_at(birth_date: Any, on: date) -> int | None:
    """Completed years from a FHIR ``birthDate`` (YYYY, YYYY-MM or YYYY-MM-DD) to ``on``."""
    if not isinstance(birth_date, str):
        return None
    parts = birth_date.split("-")
    try:
        born = date(int(parts[0]), int(parts[1]) if len(parts) > 1 else 7, 1)
        if len(parts) > 2:
            born = born.replace(day=int(parts[2]))
    except ValueError:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def to_record(
    patient: dict[str, Any], observation_source: Any, condition_source: Any = None
) -> Mapped:
    """The canonical record of a FHIR Patient, its Observations and Conditions."""
    values, unusable, on = observations(resources(observation_source, "Observation"))
    record: dict[str, Any] = {}
    age = age_at(patient.get("birthDate"), on)
    if age is not None:
        record["age"] = age
    sex = GENDER_TO_SEX.get(str(patient.get("gender")))
    if sex is not None:
        record["sex"] = sex
    record.update(values)
    found = chain(
        resources(observation_source, "Condition"), resources(condition_source, "Condition")
    )
    record.update(conditions(found))
    return Mapped(record, unusable)
