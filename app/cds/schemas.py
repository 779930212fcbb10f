"""CDS Hooks 2.0 request bodies (service call, feedback), as the spec's tables define them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.cds.definition import HOOK
from app.store.tables import CLINICIAN_ID_MAX_CHARS, REASON_MAX_CHARS

FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}$"


class HookContext(BaseModel):
    """`patient-view` context; other fields (``encounterId``, …) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    userId: str = Field(
        min_length=1,
        max_length=CLINICIAN_ID_MAX_CHARS,
        description="The user, e.g. `Practitioner/123`: the clinician of any feedback.",
    )
    patientId: str = Field(pattern=FHIR_ID, description="FHIR id of the patient viewed.")


class FhirAuthorization(BaseModel):
    model_config = ConfigDict(extra="allow")

    access_token: str = Field(min_length=1)
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int | None = None
    scope: str | None = None
    subject: str | None = None


class HookRequest(BaseModel):
    """A call of the service (CDS Hooks §Calling a CDS Service)."""

    model_config = ConfigDict(extra="allow")

    hook: Literal["patient-view"] = Field(description=f"Always `{HOOK}` for this service.")
    hookInstance: str = Field(min_length=1, max_length=128)
    context: HookContext
    fhirServer: str | None = Field(None, pattern=r"^https?://")
    fhirAuthorization: FhirAuthorization | None = None
    prefetch: dict[str, Any] = Field(default_factory=dict)


class Coding(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    system: str | None = None
    display: str | None = None


class OverrideReason(BaseModel):
    model_config = ConfigDict(extra="allow")

    reason: Coding | None = None
    userComment: str | None = Field(None, max_length=REASON_MAX_CHARS)


class CardFeedback(BaseModel):
    model_config = ConfigDict(extra="allow")

    card: str = Field(min_length=1, max_length=64, description="`card.uuid` of a card we sent.")
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[dict[str, Any]] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: str


class CardFeedbackRequest(BaseModel):
    """CDS Hooks §Feedback: the outcome of one or more cards."""

    feedback: list[CardFeedback] = Field(min_length=1, max_length=100)
