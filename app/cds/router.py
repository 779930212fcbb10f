"""`/cds-services`: CDS Hooks 2.0 discovery, the `patient-view` service, and its feedback.

Thin routes over `app.cds.hook` and `app.cds.feedback`; every route needs a signed client JWT
(`app.cds.auth`), attached where the router is included. Errors keep the one error shape.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter

from app.cds import feedback, hook
from app.cds.definition import SERVICE_ID, discovery
from app.cds.errors import UnknownCardError
from app.cds.schemas import CardFeedbackRequest, HookRequest
from app.deps import AuditDep, AuditEventsDep, ServiceDep, SessionDep, SettingsDep
from app.schemas.errors import ErrorResponse

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No valid signed client JWT (Bearer)."},
    404: {"model": ErrorResponse, "description": "Unknown card uuid (feedback)."},
    412: {"model": ErrorResponse, "description": "The FHIR data could not be obtained."},
    422: {"model": ErrorResponse, "description": "Not a valid CDS Hooks request body."},
    503: {"model": ErrorResponse, "description": "No model loaded yet (degraded mode)."},
}

router = APIRouter(prefix="/cds-services", tags=["cds-hooks"], responses=ERRORS)


@router.get("", summary="CDS Hooks discovery")
async def read_services() -> dict[str, Any]:
    """The CDS services offered: one, `healthpredict-ed-triage` on `patient-view`."""
    return discovery()


@router.post(f"/{SERVICE_ID}", summary="ED triage: prediction card for the patient viewed")
async def call_triage(
    body: HookRequest, service: ServiceDep, settings: SettingsDep
) -> dict[str, Any]:
    """`{"cards": [...]}`: the first card is the prediction (its `uuid` the prediction id).

    FHIR data from `prefetch` (`patient`, `observations`, optional `conditions`), else read
    from `fhirServer` with `fhirAuthorization`; 412 when neither gives it.
    """
    return await hook.answer(body, service, settings.cds_fhir_timeout_s)


@router.post(f"/{SERVICE_ID}/feedback", summary="Outcomes of the cards")
async def create_card_feedback(
    body: CardFeedbackRequest, session: SessionDep, audit: AuditDep, events: AuditEventsDep
) -> dict[str, Any]:
    """Accepted cards are stored as verdict `correct`, overrides by their coded reason, in the
    feedback table of `POST /feedback`; 404 (nothing stored) when a card uuid is unknown."""
    unknown = await anyio.to_thread.run_sync(feedback.unknown_cards, session, body.feedback)
    if unknown and audit.enqueued > audit.written + audit.lost:
        await audit.flush()  # the card's audit row may still be in the write-behind queue
        unknown = await anyio.to_thread.run_sync(feedback.unknown_cards, session, body.feedback)
    if unknown:
        raise UnknownCardError(
            details=[{"field": "card", "value": card, "reason": "unknown card"} for card in unknown]
        )
    return {
        "feedback": await anyio.to_thread.run_sync(
            feedback.store, session, body.feedback, events.chain
        )
    }
