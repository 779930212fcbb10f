"""Queries of the store: audit rows, feedback (idempotent), feedback statistics, retrain jobs.

Write functions commit their own work (callers may still wrap them in an outer transaction:
with ``join_transaction_mode="create_savepoint"`` a commit only releases a savepoint).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.store.chain import CHAIN_COLUMNS, Chain
from app.store.ids import new_id
from app.store.prediction_batch import PredictionBatch, save_batches
from app.store.tables import (
    VERDICTS,
    FeedbackRow,
    PredictionRow,
    utcnow,
)
from train_pipeline.contract import ED_COHORT, SYMPTOM_SEPARATOR, TaskContract

logger = logging.getLogger(__name__)
FEEDBACK_TABLE = "feedback"

DIAGNOSIS_ERRORS = frozenset({"wrong_diagnosis", "both_wrong"})
TREATMENT_ERRORS = frozenset({"wrong_treatment", "both_wrong"})
META_COLUMNS = ("prediction_id", "feedback_id", "verdict", "feedback_created_at")


# --- predictions (audit) ---------------------------------------------------------------------


def save_predictions(
    session: Session, records: Sequence[dict[str, Any]], chain: Chain | None = None
) -> int:
    """Insert audit rows in one executemany and commit (`app.store.prediction_batch`).

    Args:
        records: dicts keyed by `PredictionRow` column names (``id`` and ``created_at`` are
            filled in when absent or None; unknown keys are ignored; a missing column is NULL).
            The caller's dicts are left alone.
        chain: the writer's HMAC chain (`app.store.chain`): the rows are sealed into it in
            order and it advances once they are committed.

    Returns:
        The number of rows given (a row whose id is already stored is skipped, on SQLite and
        PostgreSQL: a retried write stores each row once).
    """
    return save_batches(session, [PredictionBatch.of_row(r) for r in records], chain)


def get_prediction(session: Session, prediction_id: str) -> PredictionRow | None:
    """The audit row of ``prediction_id``, or None."""
    return session.get(PredictionRow, prediction_id)


def recent_inputs(session: Session, limit: int) -> list[dict[str, Any]]:
    """The canonical inputs of the ``limit`` most recent predictions, oldest first (for drift)."""
    stmt = select(PredictionRow.inputs).order_by(PredictionRow.created_at.desc()).limit(limit)
    rows = list(session.scalars(stmt))
    rows.reverse()
    return rows


def count_predictions(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(PredictionRow)) or 0)


# --- feedback --------------------------------------------------------------------------------


def add_feedback(
    session: Session,
    *,
    prediction_id: str,
    verdict: str,
    clinician_id: str,
    corrected_diagnosis: str | None = None,
    corrected_treatment: str | None = None,
    reason: str | None = None,
    chain: Chain | None = None,
) -> tuple[FeedbackRow, bool]:
    """Store a clinician's feedback once per (prediction, clinician) and commit; with a
    ``chain``, the new row is sealed into it (`app.store.chain`).

    Concurrency-safe: the insert runs in a SAVEPOINT; a unique-constraint conflict (a repeat,
    possibly racing) rolls it back and returns the row already stored. The first write wins;
    a repeat never changes it.

    Returns:
        ``(row, created)``: ``created`` is False for a repeat.
    """
    row = FeedbackRow(
        prediction_id=prediction_id,
        verdict=verdict,
        clinician_id=clinician_id,
        corrected_diagnosis=corrected_diagnosis,
        corrected_treatment=corrected_treatment,
        reason=reason,
    )
    if chain is None:
        return _insert_feedback(session, row)
    row.id, row.created_at = new_id(), utcnow()
    with chain.lock:  # rows of one chain are sealed and committed in order
        values = {c: getattr(row, c) for c in _FEEDBACK_COLUMNS}
        link = chain.seal(FEEDBACK_TABLE, [values])
        row.chain_id, row.seq, row.mac = values["chain_id"], values["seq"], values["mac"]
        stored, created = _insert_feedback(session, row)
        if created:
            chain.advance(link)
    return stored, created


_FEEDBACK_COLUMNS = tuple(
    c.name for c in cast(Table, FeedbackRow.__table__).columns if c.name not in CHAIN_COLUMNS
)


def _insert_feedback(session: Session, row: FeedbackRow) -> tuple[FeedbackRow, bool]:
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        existing = find_feedback(session, row.prediction_id, row.clinician_id)
        if existing is None:  # not a duplicate: e.g. the prediction does not exist
            session.rollback()
            raise
        session.commit()
        return existing, False
    session.commit()
    return row, True


def find_feedback(session: Session, prediction_id: str, clinician_id: str) -> FeedbackRow | None:
    stmt = select(FeedbackRow).where(
        FeedbackRow.prediction_id == prediction_id, FeedbackRow.clinician_id == clinician_id
    )
    return session.scalars(stmt).one_or_none()


def count_feedback(session: Session, since: datetime | None = None) -> int:
    stmt = select(func.count()).select_from(FeedbackRow)
    if since is not None:
        stmt = stmt.where(FeedbackRow.created_at >= since)
    return int(session.scalar(stmt) or 0)


@dataclass(frozen=True)
class ClassErrors:
    """Feedback on predictions of one class: how many, how many wrong."""

    n: int
    errors: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.n if self.n else 0.0


@dataclass(frozen=True)
class FeedbackStats:
    """Aggregated feedback and whether it calls for retraining."""

    total: int
    by_verdict: dict[str, int]
    error_rate: float | None
    diagnosis_error_rate: float | None
    treatment_error_rate: float | None
    per_diagnosis: dict[str, ClassErrors]
    per_treatment: dict[str, ClassErrors]
    since: datetime | None
    since_last_training: int
    error_rate_since_last_training: float | None
    retraining_recommended: bool
    recommendation_reason: str
    thresholds: dict[str, float] = field(default_factory=dict)


def _verdict_counts(
    session: Session, since: datetime | None
) -> list[tuple[str, str | None, str | None, int]]:
    stmt = (
        select(
            FeedbackRow.verdict,
            PredictionRow.diagnosis_code,
            PredictionRow.treatment_code,
            func.count(),
        )
        .join(PredictionRow, PredictionRow.id == FeedbackRow.prediction_id)
        .group_by(FeedbackRow.verdict, PredictionRow.diagnosis_code, PredictionRow.treatment_code)
    )
    if since is not None:
        stmt = stmt.where(FeedbackRow.created_at >= since)
    return [(v, d, t, int(n)) for v, d, t, n in session.execute(stmt)]


def _per_class(
    groups: Iterable[tuple[str, str | None, str | None, int]], which: int, wrong: frozenset[str]
) -> dict[str, ClassErrors]:
    acc: dict[str, list[int]] = {}
    for group in groups:
        code = group[which]
        if code is None:
            continue
        slot = acc.setdefault(str(code), [0, 0])
        slot[0] += group[3]
        slot[1] += group[3] if group[0] in wrong else 0
    return {code: ClassErrors(n, e) for code, (n, e) in sorted(acc.items())}


def _rate(
    groups: list[tuple[str, str | None, str | None, int]], wrong: Iterable[str]
) -> float | None:
    total = sum(g[3] for g in groups)
    bad = sum(g[3] for g in groups if g[0] in set(wrong))
    return bad / total if total else None


def feedback_stats(
    session: Session,
    *,
    since: datetime | None,
    min_feedback: int,
    error_rate_threshold: float,
) -> FeedbackStats:
    """Counts by verdict, error rates (overall and per predicted class), retraining advice.

    Retraining is recommended when the feedback received since ``since`` (the served model's
    training time; all feedback when None) holds at least ``min_feedback`` rows AND its error
    rate (any verdict but ``correct``) is at least ``error_rate_threshold``.
    """
    groups = _verdict_counts(session, None)
    recent = groups if since is None else _verdict_counts(session, since)
    by_verdict = dict.fromkeys(VERDICTS, 0)
    for verdict, _, _, n in groups:
        by_verdict[verdict] += n
    wrong = [v for v in VERDICTS if v != "correct"]
    n_recent = sum(g[3] for g in recent)
    rate_recent = _rate(recent, wrong)
    if n_recent < min_feedback:
        recommended, why = False, f"{n_recent} feedback since last training < {min_feedback}"
    elif (rate_recent or 0.0) < error_rate_threshold:
        recommended = False
        why = f"error rate {rate_recent:.3f} since last training < {error_rate_threshold}"
    else:
        recommended = True
        why = (
            f"{n_recent} feedback since last training with error rate {rate_recent:.3f} "
            f">= {error_rate_threshold}"
        )
    return FeedbackStats(
        total=sum(by_verdict.values()),
        by_verdict=by_verdict,
        error_rate=_rate(groups, wrong),
        diagnosis_error_rate=_rate(groups, DIAGNOSIS_ERRORS),
        treatment_error_rate=_rate(groups, TREATMENT_ERRORS),
        per_diagnosis=_per_class(groups, 1, DIAGNOSIS_ERRORS),
        per_treatment=_per_class(groups, 2, TREATMENT_ERRORS),
        since=since,
        since_last_training=n_recent,
        error_rate_since_last_training=rate_recent,
        retraining_recommended=recommended,
        recommendation_reason=why,
        thresholds={"min_feedback": min_feedback, "error_rate": error_rate_threshold},
    )


def _labels(fb: FeedbackRow, pred: PredictionRow) -> tuple[str | None, str | None]:
    """Corrected (diagnosis, treatment): corrections where given, else what the verdict confirms."""
    diagnosis = fb.corrected_diagnosis or (
        pred.diagnosis_code if fb.verdict in ("correct", "wrong_treatment") else None
    )
    treatment = fb.corrected_treatment or (
        pred.treatment_code if fb.verdict in ("correct", "wrong_diagnosis") else None
    )
    return diagnosis, treatment


def to_training_row(inputs: dict[str, Any], task: TaskContract = ED_COHORT) -> dict[str, Any]:
    """An audit row's canonical inputs in the training CSV's encoding (symptoms joined, 0/1)."""
    out: dict[str, Any] = {}
    for feat in task.features:
        value = inputs.get(feat.name)
        if feat.kind == "multilabel":
            value = SYMPTOM_SEPARATOR.join(value or [])
        elif feat.kind == "boolean":
            value = int(bool(value if value is not None else feat.default))
        out[feat.name] = value
    return out


def corrected_rows(
    session: Session,
    *,
    task: TaskContract = ED_COHORT,
    include_confirmed: bool = False,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """Training rows from feedback: features from the audit row, labels from the correction.

    One row per prediction (its most recent feedback wins); rows whose labels are not both
    known are left out. Columns: the task's features, its target names, then `META_COLUMNS`.

    Args:
        include_confirmed: also return rows whose verdict is ``correct`` (confirmed labels).
        since: only feedback created at or after this time.
    """
    stmt = (
        select(FeedbackRow, PredictionRow)
        .join(PredictionRow, PredictionRow.id == FeedbackRow.prediction_id)
        .order_by(FeedbackRow.created_at, FeedbackRow.id)
    )
    if not include_confirmed:
        stmt = stmt.where(FeedbackRow.verdict != "correct")
    if since is not None:
        stmt = stmt.where(FeedbackRow.created_at >= since)
    latest: dict[str, dict[str, Any]] = {}
    treatment_name = task.treatment.name if task.treatment else None
    for fb, pred in session.execute(stmt):
        diagnosis, treatment = _labels(fb, pred)
        if diagnosis is None or (treatment_name and treatment is None):
            continue
        row = to_training_row(pred.inputs, task)
        row[task.diagnosis.name] = diagnosis
        if treatment_name:
            row[treatment_name] = treatment
        row.update(
            prediction_id=pred.id,
            feedback_id=fb.id,
            verdict=fb.verdict,
            feedback_created_at=fb.created_at.isoformat(),
        )
        latest[pred.id] = row
    return list(latest.values())
