"""`POST /predict` and `POST /predict/batch`: validated records in, DESIGN §4 bodies out.

Single predictions go through the micro-batcher (concurrent requests share one model call,
inline on the loop: a few hundred µs, cheaper than a thread hop); batches run in a worker thread
so they never block the loop. Every prediction, insufficient ones included, is audited.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import TypeAdapter

from app.api.direct import DirectRoute
from app.audit_chunks import EncodedRows
from app.deps import require_role
from app.errors import BatchTooLargeError, FastJSONResponse, ModelNotReadyError
from app.monitoring import metrics
from app.schemas.errors import ErrorResponse
from app.schemas.fast_records import canonical_records
from app.schemas.patient import PATIENT_EXAMPLES, PatientRecord
from app.schemas.prediction import (
    BatchPredictionRequest,
    BatchPredictionResponse,
    PredictionResponse,
)
from app.serving.bundle import ModelBundle
from app.serving.loader import ModelManager
from app.serving.microbatch import MicroBatcher
from app.serving.prediction import Prediction
from app.serving.predictor import Predictor, Record
from app.store.ids import new_id, new_ids

EXPLAIN_TOP_N = 5
ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Batch larger than `HP_BATCH_MAX_SIZE`."},
    422: {"model": ErrorResponse, "description": "Invalid record: field, value and reason."},
    503: {"model": ErrorResponse, "description": "No model loaded yet (degraded mode)."},
}


def current_predictor(models: ModelManager) -> Predictor:
    """The predictor being served; `ModelNotReadyError` (503, with the reason) while degraded."""
    predictor: Predictor | None = models.predictor
    if predictor is None:
        reason = models.status().get("reason")
        raise ModelNotReadyError(
            f"No model is loaded yet ({reason}); retrying in the background" if reason else None
        )
    return predictor


def build_batcher(
    models: ModelManager, window_ms: float, max_size: int
) -> MicroBatcher[Record, Prediction]:
    """The micro-batcher single predictions go through (built by the lifespan); it calls the
    manager's current predictor, so a reload is picked up by the next batch."""
    return MicroBatcher(models.predict_many, window_ms=window_ms, max_size=max_size)


def batch_precheck(request: Request, body: Any) -> list[dict[str, Any]] | None:
    """The parsed batch body before validation: 413 beyond `HP_BATCH_MAX_SIZE`; the canonical
    records when `canonical_records` is sure of them (canonical names and codes, the common
    case: ~4x cheaper than pydantic), else None and the model validates (and explains)."""
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        return None
    limit = request.app.state.settings.batch_max_size
    if len(records) > limit:
        raise BatchTooLargeError(
            f"{len(records)} records in one batch; at most {limit} (HP_BATCH_MAX_SIZE)",
            details=[{"field": "records", "value": len(records), "reason": f"at most {limit}"}],
        )
    return canonical_records(records) if records and len(body) == 1 else None


# The role check sits on the router, not on its inclusion: `DirectRoute` enforces it itself.
router = APIRouter(
    prefix="/predict",
    tags=["predict"],
    responses=ERRORS,
    dependencies=[Depends(require_role("clinician"))],
)


async def predict_one(
    request: Request, record: PatientRecord, query: dict[str, Any]
) -> FastJSONResponse:
    """`POST /predict` once authenticated and validated (`DirectRoute` calls this)."""
    _observe_parse(request)
    state = request.app.state
    canonical = record.to_record()
    predictor = current_predictor(state.models)  # 503 after validation (422 first)
    prediction = await state.batcher.submit(canonical)
    body, row = _assemble(canonical, prediction, new_id(), datetime.now(UTC))
    if query["explain"] and prediction.diagnosis is not None:
        body["explanation"] = await _explain(predictor.bundle, canonical)
    with metrics.time_stage("audit_enqueue"):
        await state.audit.enqueue(row)
    request.state.model_version = body["model"]["diagnosis_version"]
    return FastJSONResponse(body)


async def create_prediction(
    record: Annotated[PatientRecord, Body(openapi_examples=PATIENT_EXAMPLES)],
    request: Request,
    explain: Annotated[bool, Query(description="Add the top SHAP contributions.")] = False,
) -> FastJSONResponse:
    """Diagnosis, a treatment coherent with it, quality, NEWS2 and warnings for one patient.

    Numbers must be JSON numbers (`"12"` is refused), booleans JSON booleans. Names may be
    canonical, camelCase or French; `glycemie` is taken in g/L and converted to mmol/L.
    """
    # The signature documents the route (OpenAPI); requests are served by `DirectRoute`.
    return await predict_one(request, record, {"explain": explain})


router.add_api_route(
    "",
    create_prediction,
    methods=["POST"],
    response_model=PredictionResponse,
    summary="Predict one patient",
    route_class_override=DirectRoute.serving(
        predict_one,
        PatientRecord,
        {"explain": (TypeAdapter(bool), False)},
    ),
)


async def predict_batch(
    request: Request, batch: BatchPredictionRequest | list[dict[str, Any]], query: dict[str, Any]
) -> FastJSONResponse:
    """`POST /predict/batch` once authenticated and validated (`DirectRoute` calls this; the
    records come ready-made from `batch_precheck` when it was sure of them)."""
    _observe_parse(request)
    records = batch if isinstance(batch, list) else [r.to_record() for r in batch.records]
    audit = request.app.state.audit
    predictor = current_predictor(request.app.state.models)
    predictions = await anyio.to_thread.run_sync(predictor.predict_many, records)
    now, ids = datetime.now(UTC), new_ids(len(records))
    parts, codes = [], []
    for p, pid in zip(predictions, ids, strict=True):
        body = _body(p, pid)
        parts.append(orjson.dumps(body))  # serialised once: the response's item, the audit's
        codes.append(_codes(body))
    if predictions:
        shared = _model_columns(predictions[0].model)
        with metrics.time_stage("audit_enqueue"):
            await audit.enqueue_encoded(
                EncodedRows.of_batch(now, shared, ids, codes, records, parts)
            )
    request.state.model_version = predictor.bundle.diagnosis_version
    return FastJSONResponse(
        {"count": len(parts), "predictions": [orjson.Fragment(part) for part in parts]}
    )


async def create_predictions(batch: BatchPredictionRequest, request: Request) -> FastJSONResponse:
    """Up to `HP_BATCH_MAX_SIZE` records (413 beyond); predictions in the order of `records`.

    One model call per model for the whole batch, in a worker thread; each item is audited.
    """
    # The signature documents the route (OpenAPI); requests are served by `DirectRoute`.
    return await predict_batch(request, batch, {})


router.add_api_route(
    "/batch",
    create_predictions,
    methods=["POST"],
    response_model=BatchPredictionResponse,
    summary="Predict many patients",
    route_class_override=DirectRoute.serving(
        predict_batch, BatchPredictionRequest, {}, batch_precheck
    ),
)


def _observe_parse(request: Request) -> None:
    """Stage ``parse_validate``: from the request's arrival (middleware) to the handler, i.e.
    body read, JSON parse, auth and pydantic validation."""
    started = request.scope.get("state", {}).get("started")
    if started is not None:
        metrics.observe_stage("parse_validate", time.perf_counter() - started)


def _assemble(
    record: dict[str, Any], prediction: Prediction, prediction_id: str, created_at: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(response body, audit row) of one prediction; the row stores the body as its outputs."""
    body = _body(prediction, prediction_id)
    diagnosis_code, treatment_code, quality = _codes(body)
    row = {
        "id": prediction_id,
        "created_at": created_at,
        **_model_columns(body["model"]),
        "inputs": record,
        "outputs": body,
        "diagnosis_code": diagnosis_code,
        "treatment_code": treatment_code,
        "quality": quality,
    }
    return body, row


def _body(prediction: Prediction, prediction_id: str) -> dict[str, Any]:
    """The DESIGN §4 response body of one prediction (no explanation yet)."""
    return {"prediction_id": prediction_id, **prediction.to_dict(), "explanation": None}


def _codes(body: dict[str, Any]) -> tuple[str | None, str | None, str]:
    """The audit row's (diagnosis_code, treatment_code, quality), read from the body's blocks
    (the `Prediction` properties build a dataclass per read)."""
    diagnosis, treatment = body["diagnosis"], body["treatment"]
    return (
        diagnosis["code"] if diagnosis else None,
        treatment["code"] if treatment else None,
        body["prediction_quality"],
    )


def _model_columns(model: dict[str, Any]) -> dict[str, Any]:
    """The audit row's columns of the model that answered (its response block)."""
    return {
        "model_source": model["source"],
        "diagnosis_version": model["diagnosis_version"],
        "treatment_version": model["treatment_version"],
        "run_id": model["run_id"],
    }


async def _explain(bundle: ModelBundle, record: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Top SHAP contributions (H6's `app.serving.explain`), computed in a worker thread."""
    try:
        from app.serving import explain as explainer
    except ImportError:  # monitoring part not installed: the body says explanation: null
        return None
    from app.serving.predictor import build_columns

    cols = build_columns([record], bundle.diagnosis.features.features)
    result: Sequence[dict[str, Any]] = await anyio.to_thread.run_sync(
        explainer.explain, bundle, cols, EXPLAIN_TOP_N
    )
    return list(result)
