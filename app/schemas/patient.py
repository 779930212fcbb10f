"""`PatientRecord`, generated from the feature contract (no feature is named by hand here).

Types per contract kind, ``ge``/``le`` from the contract's range, enums for categorical and
multilabel codes, aliases (camelCase, French, converted units), strict JSON types (numbers must be
JSON numbers, booleans JSON booleans), unknown fields refused, ``diastolic_bp < systolic_bp``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.schemas.errors import DuplicateField
from train_pipeline.contract import ED_COHORT, Feature, TaskContract, camel_case

TASK: TaskContract = ED_COHORT

# Every accepted input name -> canonical name; converted aliases -> factor into the canonical unit.
ALIAS_TO_NAME: dict[str, str] = {
    name: feat.name for feat in TASK.features for name in (feat.name, *feat.all_aliases)
}
CONVERSIONS: dict[str, float] = {
    alias: factor for feat in TASK.features for alias, _, factor in feat.converted_aliases
}
_VALUE_ALIASES: dict[str, dict[str, str]] = {
    feat.name: {
        **{code.lower(): code for code in feat.categories},
        **{alias.lower(): code for alias, code in feat.value_aliases},
    }
    for feat in TASK.features
    if feat.kind == "categorical"
}
_MULTILABEL = frozenset(TASK.names_of("multilabel"))
# Absent and null mean the same for fields with a default (booleans -> false, lists -> []).
_DEFAULTED = frozenset(f.name for f in TASK.features if f.default is not None)
LOWER_BP, UPPER_BP = "diastolic_bp", "systolic_bp"  # the one cross-field rule (DESIGN §4)


def _description(feat: Feature) -> str:
    text = f"{feat.description} ({feat.unit}); tier: {feat.tier}."
    plain = [a for a in feat.all_aliases if a not in CONVERSIONS]
    if plain:
        text += " Also accepted as " + ", ".join(f"`{a}`" for a in plain) + "."
    for alias, unit, factor in feat.converted_aliases:
        text += f" `{alias}` is accepted in {unit} and multiplied by {factor:g}."
    if feat.value_aliases:
        spellings = ", ".join(f"`{a}`" for a, _ in feat.value_aliases)
        text += f" Values also accepted (case-insensitive): {spellings}."
    return text


def _field(feat: Feature) -> tuple[Any, Any]:
    """(annotation, FieldInfo) of one contract feature."""
    common: dict[str, Any] = {
        "description": _description(feat),
        "validation_alias": AliasChoices(feat.name, *feat.all_aliases),
        "title": feat.name,
    }
    required = feat.tier == "required"
    ann: Any
    if feat.kind in ("numeric", "integer"):
        constraint: dict[str, Any] = {"strict": True, "ge": feat.minimum, "le": feat.maximum}
        if feat.kind == "numeric":
            constraint["allow_inf_nan"] = False
        base: type = float if feat.kind == "numeric" else int
        ann = Annotated[base, Field(**constraint)]
    elif feat.kind == "boolean":
        # `null` is accepted as "absent" (folded to the default before validation): say so.
        return bool | None, Field(bool(feat.default), strict=True, **common)
    elif feat.kind == "categorical":
        ann = Literal.__getitem__(feat.categories)  # an enum of the contract's codes
    elif feat.kind == "multilabel":
        item: Any = Literal.__getitem__(feat.categories)
        return list[item] | None, Field(default_factory=list, max_length=feat.max_items, **common)
    else:  # pragma: no cover - the contract's Kind is closed
        raise ValueError(f"unknown kind {feat.kind!r}")
    if required:
        return ann, Field(..., **common)
    return ann | None, Field(None, **common)


_CANONICAL = frozenset(f.name for f in TASK.features)
_CODES = {f.name: frozenset(f.categories) for f in TASK.features if f.categories}


def _already_canonical(data: dict[str, Any]) -> bool:
    """True when folding would change nothing: canonical names only, no null to default,
    canonical codes, multilabel lists without duplicates."""
    if not _CANONICAL.issuperset(data) or None in data.values():
        return False
    for name in _VALUE_ALIASES:
        value = data.get(name)
        if value.__class__ is str and value not in _CODES[name]:
            return False
    for name in _MULTILABEL:
        value = data.get(name)
        if value.__class__ is list:
            try:
                if len(set(value)) != len(value) or not _CODES[name].issuperset(value):
                    return False
            except TypeError:  # unhashable items: let the full pass and validation explain
                return False
    return True


class PatientRecordBase(BaseModel):
    """Shared behaviour of the generated record: alias folding and the cross-field rule."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, validate_by_alias=True)

    @model_validator(mode="before")
    @classmethod
    def _fold_aliases(cls, data: Any) -> Any:
        """Aliases -> canonical names, unit conversion, value spellings, duplicate detection."""
        if not isinstance(data, dict):
            return data
        if _already_canonical(data):
            return data  # the common case, ~1 µs instead of a full pass
        out: dict[str, Any] = {}
        received: dict[str, str] = {}
        for key, value in data.items():
            name = ALIAS_TO_NAME.get(key) if isinstance(key, str) else None
            if name is None:
                out[key] = value  # refused by extra="forbid", naming the key
                continue
            if name in received:
                # A value that can never validate; the error names both spellings.
                out[name] = DuplicateField((received[name], key))
                continue
            received[name] = key
            if value is None and name in _DEFAULTED:
                continue
            factor = CONVERSIONS.get(key)
            if factor is not None and type(value) in (int, float):
                value = value * factor
            elif isinstance(value, str) and name in _VALUE_ALIASES:
                value = _VALUE_ALIASES[name].get(value.strip().lower(), value)
            elif name in _MULTILABEL and isinstance(value, list):
                # Normalise and de-duplicate codes; anything else (numbers, lists, objects)
                # is kept as is for validation to reject with its reason (never a 500).
                codes = [v.strip().lower() for v in value if isinstance(v, str)]
                others = [v for v in value if not isinstance(v, str)]
                value = list(dict.fromkeys(codes)) + others
            out[name] = value
        return out

    @field_validator(LOWER_BP, mode="after", check_fields=False)
    @classmethod
    def _below_upper(cls, value: float | None, info: ValidationInfo) -> float | None:
        upper = info.data.get(UPPER_BP)
        if value is not None and upper is not None and value >= upper:
            raise PydanticCustomError(
                "cross_field",
                "must be below {other} ({upper})",
                {"other": UPPER_BP, "upper": f"{upper:g}"},
            )
        return value

    def to_record(self) -> dict[str, Any]:
        """Canonical-name dict the serving core takes (symptoms as a list of codes)."""
        return dict(self.__dict__)


def build_patient_model(task: TaskContract = TASK) -> type[PatientRecordBase]:
    """Generate the record model of ``task`` (the API serves `ED_COHORT`)."""
    fields = {feat.name: _field(feat) for feat in task.features}
    return create_model(  # type: ignore[call-overload, no-any-return]
        "PatientRecord",
        __base__=PatientRecordBase,
        __doc__="One patient's clinical record; canonical names shown, aliases accepted.",
        **fields,
    )


if TYPE_CHECKING:  # type checkers see the base; the API uses the generated class
    PatientRecord = PatientRecordBase
else:
    PatientRecord = build_patient_model()


def _renamed(record: dict[str, Any], french: bool) -> dict[str, Any]:
    """``record`` with camelCase names, or with the contract's explicit (French) aliases."""
    out: dict[str, Any] = {}
    for name, value in record.items():
        feat = TASK.feature(name)
        if french:
            out[feat.aliases[0] if feat.aliases else name] = value
        else:
            out[camel_case(name)] = value
    return out


# Documentation example (validated by tests/unit/test_schemas.py): a febrile, hypoxic patient.
PATIENT_EXAMPLE: dict[str, Any] = {
    "age": 67, "sex": "F", "heart_rate": 112, "systolic_bp": 98, "diastolic_bp": 60,
    "respiratory_rate": 26, "temperature": 38.9, "spo2": 89, "pain_scale": 3, "glasgow": 15,
    "glucose": 7.2, "wbc": 16.5, "crp": 180, "lactate": 2.4, "smoker": True, "copd": False,
    "symptoms": ["fever", "cough", "sputum", "dyspnea", "crackles"],
}  # fmt: skip
PATIENT_EXAMPLES: dict[str, dict[str, Any]] = {
    "canonical": {"summary": "Canonical snake_case names", "value": PATIENT_EXAMPLE},
    "camelCase": {"summary": "camelCase names", "value": _renamed(PATIENT_EXAMPLE, french=False)},
    "french": {"summary": "French names", "value": _renamed(PATIENT_EXAMPLE, french=True)},
    "minimal": {
        "summary": "Only the required fields (quality: insufficient, no diagnosis)",
        "value": {k: PATIENT_EXAMPLE[k] for k in TASK.names_in_tier("required")},
    },
}
