"""`POST /predict` and `POST /predict/batch`: validated records in, DESIGN §4 bodies out.

Thin routes over `app.serving.service.PredictionService`, which reads the model once per request
and audits every prediction, insufficient ones included.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from app.api.json_route import JsonRoute
from app.errors import BatchTooLargeError
from app.monitoring import metrics
from app.schemas.errors import ErrorResponse
from app.schemas.patient import PATIENT_EXAMPLES, PatientRecord
from app.schemas.prediction import (
    BatchPredictionRequest,
    BatchPredictionResponse,
    PredictionResponse,
)
from app.serving.service import Answer, PredictionService

ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorResponse, "description": "Batch larger than `HP_BATCH_MAX_SIZE`."},
    422: {"model": ErrorResponse, "description": "Invalid record: field, value and reason."},
    503: {"model": ErrorResponse, "description": "No model loaded yet (degraded mode)."},
}

router = APIRouter(prefix="/predict", tags=["predict"], responses=ERRORS, route_class=JsonRoute)


async def check_batch_size(request: Request) -> None:
    """413 beyond `HP_BATCH_MAX_SIZE`, before any record is validated.

    FastAPI parses the body before solving dependencies and validates it after them; this
    reads the parsed body (cached by Starlette, not parsed again).
    """
    try:
        body = await request.json()
    except ValueError:
        return  # malformed JSON: FastAPI's own 422 says where
    records = body.get("records") if isinstance(body, dict) else None
    limit = request.app.state.settings.batch_max_size
    if isinstance(records, list) and len(records) > limit:
        raise BatchTooLargeError(
            f"{len(records)} records in one batch; at most {limit} (HP_BATCH_MAX_SIZE)",
            details=[{"field": "records", "value": len(records), "reason": f"at most {limit}"}],
        )


@router.post("", response_model=PredictionResponse, summary="Predict one patient")
async def create_prediction(
    record: Annotated[PatientRecord, Body(openapi_examples=PATIENT_EXAMPLES)],
    request: Request,
    explain: Annotated[bool, Query(description="Add the top SHAP contributions.")] = False,
) -> Response:
    """Diagnosis, a treatment coherent with it, quality, NEWS2 and warnings for one patient.

    Numbers must be JSON numbers (`"12"` is refused), booleans JSON booleans. Names may be
    canonical, camelCase or French; `glycemie` is taken in g/L and converted to mmol/L.
    """
    _observe_parse(request)
    answer = await _service(request).predict(record.to_record(), explain=explain)
    return _respond(request, answer)


@router.post(
    "/batch",
    response_model=BatchPredictionResponse,
    summary="Predict many patients",
    dependencies=[Depends(check_batch_size)],
)
async def create_predictions(batch: BatchPredictionRequest, request: Request) -> Response:
    """Up to `HP_BATCH_MAX_SIZE` records (413 beyond); predictions in the order of `records`.

    One model call per model for the whole batch, in a worker thread; each item is audited.
    """
    _observe_parse(request)
    records = [r.to_record() for r in batch.records]
    return _respond(request, await _service(request).predict_batch(records))


def _service(request: Request) -> PredictionService:
    """The app's prediction service (read from the app's state, not through a dependency: a
    dependency costs FastAPI's solving at every request)."""
    return request.app.state.service  # type: ignore[no-any-return]


def _respond(request: Request, answer: Answer) -> Response:
    request.state.model_version = answer.model_version  # for the access log
    return Response(answer.content, media_type="application/json")


def _observe_parse(request: Request) -> None:
    """Stage ``parse_validate``: from the request's arrival (middleware) to the handler, i.e.
    body read, JSON parse, auth and pydantic validation."""
    started = request.scope.get("state", {}).get("started")
    if started is not None:
        metrics.observe_stage("parse_validate", time.perf_counter() - started)
