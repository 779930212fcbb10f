"""Bodies of `POST /feedback`, `GET /feedback/stats` (the CSV export has no schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, AliasGenerator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from app.schemas.text import Text
from app.store.tables import CLINICIAN_ID_MAX_CHARS, CODE_MAX_CHARS, REASON_MAX_CHARS
from train_pipeline.contract import ED_COHORT

Verdict = Literal["correct", "wrong_diagnosis", "wrong_treatment", "both_wrong"]

# Which correction each verdict takes: (corrected_diagnosis, corrected_treatment).
VERDICT_RULES: dict[str, tuple[str, str]] = {
    "correct": ("forbidden", "forbidden"),
    "wrong_diagnosis": ("required", "optional"),
    "wrong_treatment": ("forbidden", "required"),
    "both_wrong": ("required", "required"),
}
CORRECTION_FIELDS = ("corrected_diagnosis", "corrected_treatment")


def _document_rules(schema: dict[str, Any]) -> None:
    """Put the verdict rules and the task's class codes in the OpenAPI schema (if/then per
    verdict), so clients and schema-driven tests see what the handler enforces."""
    props = schema["properties"]
    targets = (ED_COHORT.diagnosis, ED_COHORT.treatment)
    for field, target in zip(CORRECTION_FIELDS, targets, strict=True):
        if target is not None:
            props[field]["anyOf"] = [
                {"type": "string", "enum": list(target.codes)},
                {"type": "null"},
            ]
    rules = []
    for verdict, wanted in VERDICT_RULES.items():
        then: dict[str, Any] = {"properties": {}, "required": []}
        for field, rule in zip(CORRECTION_FIELDS, wanted, strict=True):
            if rule == "forbidden":
                then["properties"][field] = {"type": "null"}
            elif rule == "required":
                then["properties"][field] = {"type": "string"}
                then["required"].append(field)
        if not then["required"]:
            del then["required"]
        rules.append({"if": {"properties": {"verdict": {"const": verdict}}}, "then": then})
    schema["allOf"] = rules
    schema["examples"] = [
        {
            "prediction_id": "3f2c8a9e-4d1b-4c55-9d0e-1b2a3c4d5e6f",
            "verdict": "wrong_diagnosis",
            "corrected_diagnosis": "sepsis",
            "reason": "Lactate 4.8, hypotension after fluids",
            "clinician_id": "clin-7f3a",
        }
    ]


class FeedbackRequest(BaseModel):
    """A clinician's verdict on one prediction.

    Which corrections each verdict takes: ``correct`` none; ``wrong_diagnosis`` a
    `corrected_diagnosis` (and optionally a `corrected_treatment`); ``wrong_treatment`` a
    `corrected_treatment` only; ``both_wrong`` both. Codes must be classes of the served model
    (`GET /models/signature`). camelCase names are accepted too.
    """

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        # snake_case first, so errors name the canonical field; camelCase accepted too.
        alias_generator=AliasGenerator(validation_alias=lambda n: AliasChoices(n, to_camel(n))),
        json_schema_extra=_document_rules,
    )

    prediction_id: Text = Field(
        min_length=1, max_length=64, description="`prediction_id` returned by `POST /predict`."
    )
    verdict: Verdict = Field(description="What was wrong with the prediction, if anything.")
    corrected_diagnosis: Text | None = Field(
        None, min_length=1, max_length=CODE_MAX_CHARS, description="The right diagnosis code."
    )
    corrected_treatment: Text | None = Field(
        None, min_length=1, max_length=CODE_MAX_CHARS, description="The right treatment code."
    )
    reason: Text | None = Field(
        None, max_length=REASON_MAX_CHARS, description="Free-text reason (no patient identifiers)."
    )
    clinician_id: Text = Field(
        min_length=1,
        max_length=CLINICIAN_ID_MAX_CHARS,
        pattern=r"^[A-Za-z0-9._:@-]+$",
        description="Pseudonymous clinician identifier (letters, digits, `._:@-`).",
    )


class FeedbackRead(BaseModel):
    """A stored feedback record. A repeat by the same clinician returns the first one (200)."""

    id: str
    prediction_id: str
    verdict: Verdict
    corrected_diagnosis: str | None
    corrected_treatment: str | None
    reason: str | None
    clinician_id: str
    created_at: datetime
    duplicate: bool = Field(
        False,
        description="True when this clinician had already sent feedback for this "
        "prediction: nothing was written and the first record is returned.",
    )


class ClassErrorRead(BaseModel):
    n: int = Field(description="Feedback on predictions of this class.")
    errors: int = Field(description="How many said this class was wrong.")
    error_rate: float


class FeedbackStatsResponse(BaseModel):
    """Feedback counts and error rates, and whether retraining is recommended."""

    total: int
    by_verdict: dict[str, int]
    error_rate: float | None = Field(
        description="Share of feedback whose verdict is not `correct` (null without feedback)."
    )
    diagnosis_error_rate: float | None
    treatment_error_rate: float | None
    per_diagnosis: dict[str, ClassErrorRead] = Field(
        description="By predicted diagnosis: diagnosis errors (wrong_diagnosis, both_wrong)."
    )
    per_treatment: dict[str, ClassErrorRead] = Field(
        description="By predicted treatment: treatment errors (wrong_treatment, both_wrong)."
    )
    last_training_at: datetime | None = Field(description="When the served model was trained.")
    since_last_training: int
    error_rate_since_last_training: float | None
    retraining_recommended: bool
    recommendation_reason: str
    min_feedback: int
    error_rate_threshold: float
