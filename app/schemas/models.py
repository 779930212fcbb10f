"""Bodies describing the served models, their input signature and the service's health."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ClassLabel(BaseModel):
    code: str
    label: str


class ServedModel(BaseModel):
    name: str = Field(description="Registered model name (MLflow and BentoML).")
    role: Literal["diagnosis", "treatment"]
    version: str
    classes: list[ClassLabel] = Field(description="Class codes, in the model's output order.")


class ModelsResponse(BaseModel):
    """The pair of pipelines being served (both from one training run and one source)."""

    source: Literal["mlflow", "bentoml"]
    alias: str = Field(description="MLflow alias served (e.g. `champion`).")
    run_id: str
    trained_at: str
    loaded_at: str
    load_seconds: float
    model_type: str
    contract_fingerprint: str
    metrics: dict[str, float] = Field(description="Held-out metrics logged at training.")
    models: list[ServedModel]
    allowed_pairs: dict[str, list[str]] = Field(
        description="Diagnosis -> treatments it may be paired with (coherence table)."
    )


class InputField(BaseModel):
    name: str
    kind: str
    unit: str
    tier: str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    aliases: list[str] = Field(description="Other accepted names (camelCase, French).")
    converted_aliases: list[dict[str, Any]] = Field(
        default_factory=list, description="Aliases in another unit: name, unit, factor."
    )
    categories: list[str] = Field(default_factory=list)
    default: Any = None
    max_items: int | None = None


class SignatureResponse(BaseModel):
    """What `POST /predict` accepts and what it can answer, from the feature contract."""

    task: str
    contract_fingerprint: str
    inputs: list[InputField]
    diagnosis_classes: list[ClassLabel]
    treatment_classes: list[ClassLabel]


class ReloadResponse(BaseModel):
    status: Literal["reloaded"]
    previous: dict[str, str] | None
    current: dict[str, str]
    load_seconds: float


class ReadyResponse(BaseModel):
    status: Literal["ready"]
    source: str
    diagnosis_version: str
    treatment_version: str
    run_id: str
    checks: dict[str, str] = Field(
        description="Each dependency checked (`models`, `database`, `broker` when configured)."
    )


class HealthResponse(BaseModel):
    """Service summary: `ok` when a model is served, `degraded` otherwise."""

    status: Literal["ok", "degraded"]
    ready: bool
    source: str | None
    diagnosis_version: str | None
    treatment_version: str | None
    run_id: str | None
    uptime_s: float
    version: str
    loader: dict[str, Any] = Field(description="Loader state, last failure reason, attempts.")
    registry: dict[str, Any] = Field(
        default_factory=dict,
        description="The served alias as last polled (`HP_MODEL_POLL_INTERVAL_S`): versions it "
        "pointed at, `checked_at` (UTC), the last error, swaps made.",
    )
    fast_paths: dict[str, bool] = Field(
        default_factory=dict,
        description="Each fast path (`train_pipeline.fast_path`) and whether it serves the "
        "loaded bundle; `false` is logged once and counted in "
        "`healthpredict_fast_path_disabled_total{path}`.",
    )
    shadow: dict[str, Any] = Field(
        default_factory=dict,
        description="The shadow challenger: `loaded`, its identity (`challenger`: source, "
        "versions, run id; null when absent), why not loaded (`reason`), predictions `queued`.",
    )


class ShadowAccuracy(BaseModel):
    """Both models on the predictions of a class that clinicians gave feedback on."""

    n: int = Field(description="Predictions with feedback that says the true diagnosis.")
    champion_accuracy: float | None = Field(description="Null when `n` is 0.")
    challenger_accuracy: float | None = Field(description="Null when `n` is 0.")


class ShadowClass(BaseModel):
    """Agreement on the predictions whose champion diagnosis is this class."""

    code: str = Field(description="Champion's diagnosis code (`all`: every class together).")
    label: str
    n: int = Field(description="Predictions the challenger scored.")
    agree: int = Field(description="Of them, where its diagnosis was the champion's.")
    agreement: float | None = Field(description="agree / n; null when `n` is 0.")
    feedback: ShadowAccuracy


class ShadowResponse(BaseModel):
    """The shadow challenger against the champion on live predictions (`GET /models/shadow`)."""

    champion: dict[str, str] = Field(description="Source, versions and run id of the champion.")
    challenger: dict[str, str] = Field(description="The same for the challenger.")
    overall: ShadowClass
    classes: list[ShadowClass] = Field(description="One entry per class the champion answered.")
