"""`GET /models`, `GET /models/signature`, `POST /models/reload` (admin)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request

from app.deps import AdminDep, AuditEventsDep, BundleDep, ModelsDep, SettingsDep, ShadowDep
from app.errors import FastJSONResponse
from app.schemas.errors import ErrorResponse
from app.schemas.models import ModelsResponse, ReloadResponse, SignatureResponse
from app.schemas.patient import TASK
from app.serving.bundle import ModelBundle
from app.serving.shadow import ShadowScorer

router = APIRouter(
    prefix="/models",
    tags=["models"],
    responses={503: {"model": ErrorResponse, "description": "No model loaded yet."}},
)


def _labelled(codes: list[str], target: Any) -> list[dict[str, str]]:
    return [{"code": c, "label": target.label(c) if target else c} for c in codes]


@router.get("", response_model=ModelsResponse, summary="The models being served")
async def read_models(bundle: BundleDep, settings: SettingsDep) -> FastJSONResponse:
    """Names, versions, source, alias, run id, training time, metrics and class labels."""
    meta = bundle.meta
    return FastJSONResponse(
        {
            "source": bundle.source,
            "alias": settings.model_alias,
            "run_id": bundle.run_id,
            "trained_at": meta.trained_at,
            "loaded_at": bundle.loaded_at.isoformat(),
            "load_seconds": round(bundle.load_seconds, 3),
            "model_type": meta.model_type,
            "contract_fingerprint": meta.contract_fingerprint,
            "metrics": meta.metrics,
            "models": [
                {
                    "name": settings.diagnosis_model_name,
                    "role": "diagnosis",
                    "version": bundle.diagnosis_version,
                    "classes": _labelled(meta.diagnosis_classes, TASK.diagnosis),
                },
                {
                    "name": settings.treatment_model_name,
                    "role": "treatment",
                    "version": bundle.treatment_version,
                    "classes": _labelled(meta.treatment_classes, TASK.treatment),
                },
            ],
            "allowed_pairs": meta.allowed_pairs,
        }
    )


@router.get("/signature", response_model=SignatureResponse, summary="Accepted input fields")
async def read_model_signature() -> FastJSONResponse:
    """Every input field from the feature contract (name, unit, range, tier, aliases, codes)
    and the class labels both models can answer. Works while degraded."""
    inputs = []
    for feat in TASK.features:
        item = dataclasses.asdict(feat)
        item["aliases"] = list(feat.all_aliases)
        item["converted_aliases"] = [
            {"name": a, "unit": u, "factor": k} for a, u, k in feat.converted_aliases
        ]
        item["categories"] = list(feat.categories)
        item.pop("value_aliases", None)
        inputs.append(item)
    treatment = TASK.treatment
    return FastJSONResponse(
        {
            "task": TASK.name,
            "contract_fingerprint": TASK.fingerprint(),
            "inputs": inputs,
            "diagnosis_classes": _labelled(list(TASK.diagnosis.codes), TASK.diagnosis),
            "treatment_classes": _labelled(list(treatment.codes), treatment) if treatment else [],
        }
    )


async def refresh_shadow_within(state: Any, shadow: ShadowScorer, budget_s: float) -> None:
    """Reload the shadow challenger too, waiting for it only within what is left of the
    reload's MLflow budget (`HP_MLFLOW_TIMEOUT_S`): past it the answer goes out and the load
    goes on in the background (`GET /health`'s ``shadow`` says when it is done)."""
    task = asyncio.create_task(shadow.refresh(), name="hp-shadow-load")
    state.shadow_load = task  # cancelled at shutdown if still running
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), max(0.0, budget_s))


@router.post(
    "/reload",
    response_model=ReloadResponse,
    summary="Swap in the current champion (admin)",
)
async def reload_models(
    request: Request,
    models: ModelsDep,
    events: AuditEventsDep,
    admin: AdminDep,
    shadow: ShadowDep,
) -> FastJSONResponse:
    """Load the current `champion` and swap it in atomically: requests in flight finish on the
    old bundle, none fails. On failure the old bundle stays served and 503 says why. Each
    successful reload is an audit event (who, from which versions to which). The shadow
    challenger is reloaded too (absent alias: nothing shadows; see `GET /health`)."""
    started = time.monotonic()
    previous: ModelBundle | None = models.bundle
    bundle: ModelBundle = await models.reload()
    detail = {"previous": previous.info() if previous else None, "current": bundle.info()}
    await anyio.to_thread.run_sync(events.record, "model_reload", admin.key_id, detail)
    settings = request.app.state.settings
    if settings.shadow_enabled:
        budget = settings.mlflow_timeout_s - (time.monotonic() - started)
        await refresh_shadow_within(request.app.state, shadow, budget)
    return FastJSONResponse(
        {
            "status": "reloaded",
            "previous": previous.info() if previous else None,
            "current": bundle.info(),
            "load_seconds": round(bundle.load_seconds, 3),
        }
    )
