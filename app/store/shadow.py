"""Queries of the shadow challenger's answers: store them, and compare them with the champion's.

Agreement is counted per class of the champion's diagnosis. Where clinicians gave feedback on a
prediction, the true diagnosis is the correction, or the champion's answer when the verdict
confirms it (``correct``, ``wrong_treatment``); the latest feedback of a prediction wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.store.tables import FeedbackRow, ShadowPredictionRow

CONFIRMS_DIAGNOSIS = frozenset({"correct", "wrong_treatment"})


def save_shadow_predictions(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the challenger's answers (dicts keyed by `ShadowPredictionRow` columns); commit."""
    if not rows:
        return 0
    session.execute(insert(ShadowPredictionRow), list(rows))
    session.commit()
    return len(rows)


@dataclass
class ClassShadow:
    """Agreement and, on predictions with feedback, each model's accuracy for one class."""

    code: str
    n: int = 0
    agree: int = 0
    n_feedback: int = 0
    champion_correct: int = 0
    challenger_correct: int = 0

    def add(self, agree: bool, truth: str | None, champion: str, challenger: str | None) -> None:
        self.n += 1
        self.agree += agree
        if truth is not None:
            self.n_feedback += 1
            self.champion_correct += champion == truth
            self.challenger_correct += challenger == truth


@dataclass
class ShadowSummary:
    """Every class the champion answered, and the totals over them."""

    classes: dict[str, ClassShadow] = field(default_factory=dict)

    @property
    def total(self) -> ClassShadow:
        out = ClassShadow("all")
        for c in self.classes.values():
            out.n += c.n
            out.agree += c.agree
            out.n_feedback += c.n_feedback
            out.champion_correct += c.champion_correct
            out.challenger_correct += c.challenger_correct
        return out


def _truths(session: Session, prediction_ids: set[str]) -> dict[str, tuple[str, str | None]]:
    """prediction id -> (verdict, corrected diagnosis) of its latest feedback."""
    stmt = (
        select(FeedbackRow.prediction_id, FeedbackRow.verdict, FeedbackRow.corrected_diagnosis)
        .where(FeedbackRow.prediction_id.in_(prediction_ids))
        .order_by(FeedbackRow.created_at, FeedbackRow.id)
    )
    return {pid: (verdict, corrected) for pid, verdict, corrected in session.execute(stmt)}


def shadow_summary(session: Session, challenger_run_id: str, champion_run_id: str) -> ShadowSummary:
    """The comparison of this challenger with this champion over every stored shadow answer."""
    stmt = select(
        ShadowPredictionRow.prediction_id,
        ShadowPredictionRow.champion_diagnosis,
        ShadowPredictionRow.challenger_diagnosis,
        ShadowPredictionRow.agree,
    ).where(
        ShadowPredictionRow.challenger_run_id == challenger_run_id,
        ShadowPredictionRow.champion_run_id == champion_run_id,
    )
    rows = session.execute(stmt).all()
    feedback: dict[str, tuple[str, str | None]] = {}
    ids = sorted({r.prediction_id for r in rows})
    for start in range(0, len(ids), 500):  # bounded IN lists
        feedback.update(_truths(session, set(ids[start : start + 500])))
    summary = ShadowSummary()
    for pid, champion, challenger, agree in rows:
        truth: str | None = None
        if pid in feedback:
            verdict, corrected = feedback[pid]
            truth = corrected or (champion if verdict in CONFIRMS_DIAGNOSIS else None)
        cls = summary.classes.setdefault(champion, ClassShadow(champion))
        cls.add(bool(agree), truth, champion, challenger)
    return summary
