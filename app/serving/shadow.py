"""The shadow challenger: a second pair scoring live predictions after they were answered.

`ShadowScorer.submit` is what the request path pays: one bounded ``deque.append`` (full: the
prediction is dropped and counted, never waited for). A daemon thread drains the queue in
batches, scores them with the challenger (`Predictor.predict_many`, one call per batch) and
stores the answers with the prediction ids (`app.store.shadow`). Nothing it does can change a
response or fail a request: its errors are logged and counted
(``healthpredict_shadow_errors_total``).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from app.monitoring import metrics
from app.serving.loader import build_bundle, run_in_daemon_thread
from app.serving.predictor import Predictor, Record
from app.serving.sources import load_mlflow
from app.settings import Settings
from app.store import shadow as shadow_store

logger = logging.getLogger(__name__)

BATCH_MAX = 512
"""Most queued predictions scored in one challenger call."""
IDLE_WAIT_S = 0.5
"""How long the worker gathers predictions before a call: fewer, larger model calls and store
transactions. With 50 ms (batches of ~20 at ~400 req/s) the shadow child spent ~320 us of CPU
per prediction, a third of what serving it cost (`make bench-shadow`, /proc CPU times)."""


@dataclass(frozen=True)
class Pending:
    """One answered prediction waiting for the challenger."""

    prediction_id: str
    record: Record
    champion_run_id: str
    champion_diagnosis: str


def load_challenger(settings: Settings) -> Predictor | None:
    """Blocking: the pair with the shadow alias (one run, checked like the champion), or None
    when no version carries the alias. Any other failure propagates."""
    from mlflow.exceptions import MlflowException

    s = settings
    try:
        _, predictor = build_bundle(
            lambda: load_mlflow(
                s.mlflow_tracking_uri,
                s.diagnosis_model_name,
                s.treatment_model_name,
                s.shadow_alias,
            ),
            s.top_k,
        )
    except MlflowException as exc:
        if "alias" in str(exc).lower() and "not found" in str(exc).lower():
            return None
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return Predictor(predictor.bundle, s.top_k, observe=False)


@dataclass(frozen=True)
class Outcome:
    """What became of one batch: answers that agreed / disagreed, and those lost (and why)."""

    agree: int = 0
    disagree: int = 0
    lost: int = 0
    reason: str | None = None  # score | store


def score_and_store(
    challenger: Predictor, sessionmaker: Callable[[], Session], batch: Sequence[Pending]
) -> Outcome:
    """Score a batch with the challenger and store the answers; never raises (logged)."""
    try:
        predictions = challenger.predict_many([p.record for p in batch])
    except Exception:
        logger.warning("shadow challenger failed to score", exc_info=True)
        return Outcome(lost=len(batch), reason="score")
    rows = _rows(batch, predictions, challenger)
    agree = sum(1 for r in rows if r["agree"])
    try:
        with sessionmaker() as session:
            shadow_store.save_shadow_predictions(session, rows)
    except Exception:
        logger.warning("shadow answers not stored", exc_info=True)
        return Outcome(agree, len(rows) - agree, len(rows), "store")
    return Outcome(agree, len(rows) - agree)


class ThreadBackend:
    """Scores in a thread of the serving process (`HP_SHADOW_PROCESS=false`; tests)."""

    def __init__(self, sessionmaker: Callable[[], Session], load: Callable[[], Predictor | None]):
        self._sessionmaker = sessionmaker
        self._load = load
        self.challenger: Predictor | None = None

    def open(self) -> dict[str, str] | None:
        """Blocking: load the challenger; its identity, or None when absent."""
        self.challenger = self._load()
        return self.challenger.bundle.info() if self.challenger else None

    def run(self, batch: Sequence[Pending]) -> Outcome:
        challenger = self.challenger
        if challenger is None:
            return Outcome()
        return score_and_store(challenger, self._sessionmaker, batch)

    def close(self) -> None:
        self.challenger = None


class Backend(Protocol):
    """Where the challenger lives: a thread here (`ThreadBackend`) or a child process."""

    def open(self) -> dict[str, str] | None: ...
    def run(self, batch: Sequence[Pending]) -> Outcome: ...
    def close(self) -> None: ...


class ShadowScorer:
    """Queues answered predictions for the challenger; a worker thread hands them to the
    backend in batches and counts what became of them.

    Args:
        max_queue: bound of the queue (`Settings.shadow_queue_size`).
        backend: loads the challenger, scores and stores batches (`ThreadBackend`, or
            `shadow_process.ProcessBackend`, off the serving process's GIL).
    """

    def __init__(self, max_queue: int, backend: Backend) -> None:
        self._max_queue = max_queue
        self.backend = backend
        self._pending: deque[Pending] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.info: dict[str, str] | None = None
        self.reason: str | None = "not loaded yet"

    @property
    def loaded(self) -> bool:
        return self.info is not None

    # --- request path ----------------------------------------------------------------------
    def submit(
        self, prediction_id: str, record: Record, champion_run_id: str, diagnosis: str | None
    ) -> None:
        """Queue one answered prediction (O(1), never blocks); dropped and counted when full."""
        if self.info is None or diagnosis is None:
            return
        if len(self._pending) >= self._max_queue:
            metrics.count_shadow_error("queue_full")
            return
        self._pending.append(Pending(prediction_id, record, champion_run_id, diagnosis))
        self._wake.set()

    # --- lifecycle ---------------------------------------------------------------------------
    async def refresh(self) -> None:
        """(Re)load the challenger off the event loop; on failure nothing is loaded and
        ``reason`` says why. Never raises: the champion serves either way."""
        self.info = None
        try:
            info = await run_in_daemon_thread(self.backend.open)
        except Exception as exc:
            self.reason = f"{type(exc).__name__}: {str(exc)[:300]}"
            logger.warning("shadow challenger not loaded: %s", self.reason)
            return
        self.info = info
        self.reason = None if info else "no version carries the challenger alias"
        if info is not None:
            logger.info("shadow challenger loaded", extra=info)
            self._start()

    def status(self) -> dict[str, Any]:
        """For /health: the challenger's identity (None when absent), why, and the queue."""
        return {
            "loaded": self.info is not None,
            "challenger": self.info,
            "reason": self.reason,
            "queued": len(self._pending),
        }

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="hp-shadow", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Score what is queued (within ``timeout_s``), stop the worker and the backend."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.backend.close()

    # --- worker ------------------------------------------------------------------------------
    def _run(self) -> None:
        while not (self._stop.is_set() and not self._pending):
            self._wake.wait()
            if not self._stop.is_set():
                self._stop.wait(IDLE_WAIT_S)  # gather a batch (ends early on stop)
            self._wake.clear()
            while self._pending:
                self.drain(BATCH_MAX)

    def drain(self, limit: int) -> int:
        """Hand up to ``limit`` queued predictions to the backend; returns how many."""
        batch = [self._pending.popleft() for _ in range(min(limit, len(self._pending)))]
        if not batch:
            return 0
        try:
            outcome = self.backend.run(batch)
        except Exception:
            logger.warning("shadow backend failed", exc_info=True)
            outcome = Outcome(lost=len(batch), reason="score")
        metrics.count_shadow(outcome.agree, outcome.disagree)
        if outcome.lost and outcome.reason:
            metrics.count_shadow_error(outcome.reason, outcome.lost)
        return len(batch)


def _rows(
    batch: Sequence[Pending], predictions: Sequence[Any], challenger: Predictor
) -> list[dict[str, Any]]:
    info = challenger.bundle.info()
    rows = []
    for pending, prediction in zip(batch, predictions, strict=True):
        diagnosis, treatment = prediction.diagnosis, prediction.treatment
        code = diagnosis.code if diagnosis is not None else None
        rows.append(
            {
                "prediction_id": pending.prediction_id,
                "champion_run_id": pending.champion_run_id,
                "challenger_run_id": info["run_id"],
                "challenger_version": info["diagnosis_version"],
                "champion_diagnosis": pending.champion_diagnosis,
                "challenger_diagnosis": code,
                "challenger_probability": diagnosis.probability if diagnosis else None,
                "challenger_treatment": treatment.code if treatment is not None else None,
                "agree": code == pending.champion_diagnosis,
            }
        )
    return rows
