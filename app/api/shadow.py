"""`GET /models/shadow`: the shadow challenger against the champion, per diagnosis class."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.deps import ModelsDep, SessionDep, ShadowDep
from app.errors import FastJSONResponse, ShadowNotLoadedError
from app.schemas.errors import ErrorResponse
from app.schemas.models import ShadowResponse
from app.schemas.patient import TASK
from app.store.shadow import ClassShadow, shadow_summary

router = APIRouter(
    prefix="/models",
    tags=["models"],
    responses={
        404: {
            "model": ErrorResponse,
            "description": "No challenger loaded (`challenger_not_loaded`).",
        },
        503: {"model": ErrorResponse, "description": "No champion loaded yet."},
    },
)


def _ratio(k: int, n: int) -> float | None:
    return round(k / n, 4) if n else None


def class_body(c: ClassShadow) -> dict[str, Any]:
    """One class's agreement and accuracies as `ShadowClass`."""
    return {
        "code": c.code,
        "label": TASK.diagnosis.label(c.code) if c.code in TASK.diagnosis.codes else c.code,
        "n": c.n,
        "agree": c.agree,
        "agreement": _ratio(c.agree, c.n),
        "feedback": {
            "n": c.n_feedback,
            "champion_accuracy": _ratio(c.champion_correct, c.n_feedback),
            "challenger_accuracy": _ratio(c.challenger_correct, c.n_feedback),
        },
    }


@router.get("/shadow", response_model=ShadowResponse, summary="Shadow challenger vs champion")
def read_shadow(models: ModelsDep, shadow: ShadowDep, session: SessionDep) -> FastJSONResponse:
    """How often the shadow challenger (MLflow alias `challenger`) gave the champion's diagnosis
    on live predictions, per class of the champion's diagnosis, and where clinicians' feedback
    says the true diagnosis, each model's accuracy. Predictions scored by another champion or
    challenger run are not counted. 404 `challenger_not_loaded` when no challenger is loaded
    (`GET /health` says why); a challenger with no predictions yet gives 200 with `n` = 0."""
    champion = models.current().bundle
    challenger = shadow.info
    if challenger is None:
        raise ShadowNotLoadedError(f"No shadow challenger is loaded: {shadow.reason}")
    summary = shadow_summary(session, challenger["run_id"], champion.run_id)
    return FastJSONResponse(
        {
            "champion": champion.info(),
            "challenger": challenger,
            "overall": class_body(summary.total),
            "classes": [class_body(summary.classes[k]) for k in sorted(summary.classes)],
        }
    )
