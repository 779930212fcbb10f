"""CDS Hooks §Feedback -> the feedback table of `POST /feedback`.

``accepted`` is verdict ``correct``; ``overridden`` takes its verdict from the coded override
reason (`cards.OVERRIDE_REASONS`) with the clinician's comment as the reason; a reason naming
another diagnosis (``diagnosis-is-<code>``) is a full correction, a training row for retraining.
An override without a reason, or with ``other``, says nothing about what was wrong: it is
acknowledged and not stored (the table holds verdicts). The clinician is the ``context.userId``
of the hook call that produced the card, kept in its audit row.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from app.cds.cards import DIAGNOSIS_IS, OVERRIDE_REASONS
from app.cds.hook import CDS_KEY
from app.cds.schemas import CardFeedback
from app.monitoring import metrics
from app.store import repository
from app.store.chain import Chain
from train_pipeline.contract import ED_COHORT

logger = logging.getLogger(__name__)

VERDICT_OF_REASON = {code: verdict for code, _, verdict in OVERRIDE_REASONS}


def verdict_of(item: CardFeedback) -> tuple[str | None, str | None]:
    """(verdict, corrected diagnosis) of one outcome; verdict None: nothing to store."""
    if item.outcome == "accepted":
        return "correct", None
    reason = item.overrideReason.reason if item.overrideReason else None
    if reason is None:
        return None, None
    corrected = reason.code.removeprefix(DIAGNOSIS_IS)
    if reason.code.startswith(DIAGNOSIS_IS) and corrected in ED_COHORT.diagnosis.codes:
        return "wrong_diagnosis", corrected
    return VERDICT_OF_REASON.get(reason.code), None


def unknown_cards(session: Session, items: list[CardFeedback]) -> list[str]:
    """Card uuids that are no card of this service (blocking; run in a thread)."""
    unknown = []
    for card in dict.fromkeys(item.card for item in items):
        row = repository.get_prediction(session, card)
        if row is None or not isinstance((row.outputs or {}).get(CDS_KEY), dict):
            unknown.append(card)
    session.rollback()  # end the read transaction before any wait (SQLite lock)
    return unknown


def store(
    session: Session, items: list[CardFeedback], chain: Chain | None = None
) -> list[dict[str, Any]]:
    """Store each outcome that carries a verdict, sealed into the audit ``chain``; what was done
    with each (blocking)."""
    results = []
    for item in items:
        row = repository.get_prediction(session, item.card)
        assert row is not None  # `unknown_cards` said so
        verdict, corrected = verdict_of(item)
        if verdict == "correct" and row.diagnosis_code is None:
            verdict = None  # an abstention (no diagnosis) cannot be confirmed
        stored: bool | None = None
        if verdict is not None:
            comment = item.overrideReason.userComment if item.overrideReason else None
            _, stored = repository.add_feedback(
                session,
                prediction_id=item.card,
                verdict=verdict,
                clinician_id=row.outputs[CDS_KEY]["user_id"],
                corrected_diagnosis=corrected,
                reason=comment,
                chain=chain,
            )
            if stored:
                metrics.count_feedback(verdict)
        results.append({"card": item.card, "verdict": verdict, "stored": bool(stored)})
    logger.info("CDS feedback", extra={"outcomes": len(items)})
    return results
