"""The prediction service: validated canonical records in, response bodies and audit rows out.

In the manner of MLServer's ``DataPlane``: the routes hand it validated records and return what
it answers. Each request reads the served bundle **once** (`ModelManager.current`): its
prediction, treatment and explanation come from that one predictor even if a reload swaps the
bundle meanwhile. A single prediction is a batch of one: both paths build their audit rows with
`audit_rows`, and every answered prediction is queued for the audit before the answer leaves.

Single predictions go through the micro-batcher (concurrent requests share one model call,
inline on the loop: a few hundred µs, cheaper than a thread hop); batches run in a worker thread
so they never block the loop.

With a shadow challenger loaded, each answered prediction is also handed to `ShadowScorer`
(a bounded, non-blocking append): the challenger scores it later in its own thread, and
nothing it does reaches the response.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import orjson

from app.audit.rows import EncodedRows
from app.audit.writer import AuditWriter
from app.monitoring import metrics
from app.serving import explain as explainer
from app.serving.loader import ModelManager
from app.serving.microbatch import MicroBatcher
from app.serving.prediction import Prediction
from app.serving.predictor import Predictor, Record, build_columns
from app.serving.shadow import ShadowScorer
from app.store.ids import new_ids

EXPLAIN_TOP_N = 5
Scored = tuple[Predictor, Prediction]


@dataclass(frozen=True)
class Answer:
    """What a route returns: the serialised JSON body and the diagnosis model's version."""

    content: bytes
    model_version: str


def prediction_body(prediction: Prediction, prediction_id: str) -> dict[str, Any]:
    """The DESIGN §4 response body of one prediction (no explanation yet)."""
    return {"prediction_id": prediction_id, **prediction.to_dict(), "explanation": None}


def audit_rows(
    predictor: Predictor,
    records: Sequence[Record],
    bodies: Sequence[dict[str, Any]],
    encoded: Sequence[bytes],
) -> EncodedRows:
    """The audit rows of answered predictions: inputs, the body as stored outputs, codes."""
    codes = []
    for body in bodies:
        diagnosis, treatment = body["diagnosis"], body["treatment"]
        codes.append(
            (
                diagnosis["code"] if diagnosis else None,
                treatment["code"] if treatment else None,
                body["prediction_quality"],
            )
        )
    info = predictor.bundle.info()
    shared = {
        "model_source": info["source"],
        "diagnosis_version": info["diagnosis_version"],
        "treatment_version": info["treatment_version"],
        "run_id": info["run_id"],
    }
    ids = [body["prediction_id"] for body in bodies]
    return EncodedRows.of_batch(datetime.now(UTC), shared, ids, codes, records, encoded)


class PredictionService:
    """Scores validated records with the served bundle and audits every answer.

    Args:
        models: the loader; `ModelManager.current` gives the predictor (503 while degraded).
        audit: the write-behind audit queue.
        window_ms / max_size: micro-batching of single predictions (`MicroBatcher`).
        shadow: the shadow challenger's queue (None: no shadow scoring at all).
    """

    def __init__(
        self,
        models: ModelManager,
        audit: AuditWriter,
        window_ms: float,
        max_size: int,
        shadow: ShadowScorer | None = None,
    ) -> None:
        self._models = models
        self._audit = audit
        self._shadow = shadow
        self.batcher: MicroBatcher[Record, Scored] = MicroBatcher(
            self._score, window_ms=window_ms, max_size=max_size
        )

    def _score(self, records: list[Record]) -> list[Scored]:
        predictor = self._models.current()  # one read of the bundle for the whole call
        return [(predictor, p) for p in predictor.predict_many(records)]

    async def predict(
        self, record: Record, *, explain: bool = False, annotations: dict[str, Any] | None = None
    ) -> Answer:
        """One patient: diagnosis, coherent treatment, quality, NEWS2, warnings (+ SHAP).

        ``annotations`` are extra top-level keys of the body, audited with it (the CDS Hooks
        door keeps the calling user there for its feedback).
        """
        self._models.current()  # 503 before queuing (validation already gave its 422)
        predictor, prediction = await self.batcher.submit(record)
        body = prediction_body(prediction, new_ids(1)[0]) | (annotations or {})
        if explain and prediction.diagnosis is not None:
            body["explanation"] = await anyio.to_thread.run_sync(
                _explain, predictor, record, EXPLAIN_TOP_N
            )
        encoded = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY, default=str)
        await self._enqueue(audit_rows(predictor, [record], [body], [encoded]))
        self._to_shadow(predictor, [record], [prediction], [body["prediction_id"]])
        return Answer(encoded, predictor.bundle.diagnosis_version)

    async def predict_batch(self, records: Sequence[Record]) -> Answer:
        """Many patients, in order: one model call per model, in a worker thread."""
        predictor = self._models.current()
        predictions = await anyio.to_thread.run_sync(predictor.predict_many, records)
        bodies = [
            prediction_body(p, pid)
            for p, pid in zip(predictions, new_ids(len(records)), strict=True)
        ]
        encoded = [orjson.dumps(body) for body in bodies]  # once: the response's and the audit's
        if bodies:
            await self._enqueue(audit_rows(predictor, records, bodies, encoded))
            ids = [body["prediction_id"] for body in bodies]
            self._to_shadow(predictor, records, predictions, ids)
        content = b'{"count":%d,"predictions":[%s]}' % (len(encoded), b",".join(encoded))
        return Answer(content, predictor.bundle.diagnosis_version)

    def _to_shadow(
        self,
        predictor: Predictor,
        records: Sequence[Record],
        predictions: Sequence[Prediction],
        ids: Sequence[str],
    ) -> None:
        """Queue answered predictions for the shadow challenger (non-blocking, never raises
        into the request: a full queue drops and counts)."""
        shadow = self._shadow
        if shadow is None or not shadow.loaded:
            return
        run_id = predictor.bundle.run_id
        for record, prediction, pid in zip(records, predictions, ids, strict=True):
            diagnosis = prediction.diagnosis
            shadow.submit(pid, record, run_id, diagnosis.code if diagnosis else None)

    async def _enqueue(self, rows: EncodedRows) -> None:
        with metrics.time_stage("audit_enqueue"):
            await self._audit.enqueue_encoded(rows)

    async def aclose(self) -> None:
        """Answer what the micro-batcher still holds."""
        await self.batcher.aclose()


def _explain(predictor: Predictor, record: Record, top_n: int) -> list[dict[str, Any]]:
    """Top SHAP contributions of the record's predicted diagnosis, from the predictor's bundle."""
    bundle = predictor.bundle
    cols = build_columns([record], bundle.diagnosis.features.features)
    return list(explainer.explain(bundle, cols, top_n))
