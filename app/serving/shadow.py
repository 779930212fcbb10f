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
from typing import Any

from sqlalchemy.orm import Session

from app.monitoring import metrics
from app.serving.loader import build_bundle, run_in_daemon_thread
from app.serving.predictor import Predictor, Record
from app.serving.sources import load_mlflow
from app.settings import Settings
from app.store import shadow as shadow_store

logger = logging.getLogger(__name__)

BATCH_MAX = 256
"""Most queued predictions scored in one challenger call."""
IDLE_WAIT_S = 0.05
"""How long the worker gathers predictions before a call: fewer, larger model calls."""


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


class ShadowScorer:
    """Holds the challenger, queues answered predictions for it, scores and stores them.

    Args:
        sessionmaker: sessions of the store the answers go to.
        max_queue: bound of the queue (`Settings.shadow_queue_size`).
        load: blocking loader of the challenger (`load_challenger` with the settings).
    """

    def __init__(
        self,
        sessionmaker: Callable[[], Session],
        max_queue: int,
        load: Callable[[], Predictor | None],
    ) -> None:
        self._sessionmaker = sessionmaker
        self._max_queue = max_queue
        self._load = load
        self._pending: deque[Pending] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.challenger: Predictor | None = None
        self.reason: str | None = "not loaded yet"

    # --- request path ----------------------------------------------------------------------
    def submit(
        self, prediction_id: str, record: Record, champion_run_id: str, diagnosis: str | None
    ) -> None:
        """Queue one answered prediction (O(1), never blocks); dropped and counted when full."""
        if self.challenger is None or diagnosis is None:
            return
        if len(self._pending) >= self._max_queue:
            metrics.count_shadow_error("queue_full")
            return
        self._pending.append(Pending(prediction_id, record, champion_run_id, diagnosis))
        self._wake.set()

    # --- lifecycle ---------------------------------------------------------------------------
    async def refresh(self) -> None:
        """(Re)load the challenger in a daemon thread; on failure nothing is loaded and
        ``reason`` says why. Never raises: the champion serves either way."""
        try:
            challenger = await run_in_daemon_thread(self._load)
        except Exception as exc:
            self.challenger, self.reason = None, f"{type(exc).__name__}: {str(exc)[:300]}"
            logger.warning("shadow challenger not loaded: %s", self.reason)
            return
        self.challenger = challenger
        self.reason = None if challenger else "no version carries the challenger alias"
        if challenger is not None:
            logger.info("shadow challenger loaded", extra=challenger.bundle.info())
            self._start()

    def status(self) -> dict[str, Any]:
        """For /health: the challenger's identity (None when absent), why, and the queue."""
        c = self.challenger
        return {
            "loaded": c is not None,
            "challenger": c.bundle.info() if c else None,
            "reason": self.reason,
            "queued": len(self._pending),
        }

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="hp-shadow", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Score what is queued (within ``timeout_s``), then stop the worker."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

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
        """Score and store up to ``limit`` queued predictions; returns how many were taken."""
        batch = [self._pending.popleft() for _ in range(min(limit, len(self._pending)))]
        challenger = self.challenger
        if not batch or challenger is None:
            return len(batch)
        try:
            predictions = challenger.predict_many([p.record for p in batch])
        except Exception:
            logger.warning("shadow challenger failed to score", exc_info=True)
            metrics.count_shadow_error("score", len(batch))
            return len(batch)
        rows = _rows(batch, predictions, challenger)
        metrics.count_shadow(sum(r["agree"] for r in rows), sum(not r["agree"] for r in rows))
        try:
            with self._sessionmaker() as session:
                shadow_store.save_shadow_predictions(session, rows)
        except Exception:
            logger.warning("shadow answers not stored", exc_info=True)
            metrics.count_shadow_error("store", len(rows))
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
