"""Prediction bodies, field for field as DESIGN §4 shows them (a front-end codes against these)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.schemas.patient import PATIENT_EXAMPLE, PatientRecord
from train_pipeline.features.news2 import News2Band

Quality = Literal["high", "medium", "low", "insufficient"]


class ClassProbability(BaseModel):
    code: str = Field(description="Class code (stable, machine-readable).")
    label: str = Field(description="Human label.")
    probability: float = Field(ge=0, le=1)


class DiagnosisOut(ClassProbability):
    top_k: list[ClassProbability] = Field(description="Most probable diagnoses, best first.")


class TreatmentOut(ClassProbability):
    """Chosen only among the treatments allowed for the predicted diagnosis."""


class News2Out(BaseModel):
    score: int | None = Field(description="NEWS2 aggregate score (RCP 2017); null if unknown.")
    band: News2Band | None = Field(
        description=(
            "NEWS2 clinical risk band (RCP 2017): `low` (aggregate 0-4), `low-medium` (0-4 with "
            "a red score of 3 in a single parameter: urgent ward-based response), `medium` (5-6: "
            "urgent response), `high` (7 or more: emergency response); null if a vital sign "
            "is missing."
        )
    )


class WarningOut(BaseModel):
    code: str = Field(description="Rule code, e.g. `hypoxia`, `hypotension`, `news2_high`.")
    severity: str = Field(description="`info`, `low`, `medium` or `high`.")
    message: str


class ModelInfo(BaseModel):
    source: Literal["mlflow", "bentoml"]
    diagnosis_version: str
    treatment_version: str
    run_id: str


class FeatureContribution(BaseModel):
    feature: str = Field(description="Canonical input field.")
    value: float | str | bool | list[str] | None = Field(description="Its value for the patient.")
    contribution: float = Field(description="SHAP contribution to the predicted diagnosis.")


class PredictionResponse(BaseModel):
    """One patient's prediction. With `prediction_quality == "insufficient"`, `diagnosis` and
    `treatment` are null and `warnings` says why (a clinically safe abstention)."""

    prediction_id: str = Field(description="Id of the audit row; quote it in `POST /feedback`.")
    diagnosis: DiagnosisOut | None
    treatment: TreatmentOut | None
    prediction_quality: Quality
    missing_features: list[str] = Field(description="Critical/important fields not given.")
    imputed_features: list[str] = Field(description="Fields the model imputed.")
    news2: News2Out
    warnings: list[WarningOut]
    model: ModelInfo
    explanation: list[FeatureContribution] | None = Field(
        None, description="Top feature contributions, with `?explain=true` only."
    )

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "prediction_id": "3f2c8a0e6b0d4f5c9a4e2b7d1c0f9e8a",
                    "diagnosis": {
                        "code": "pneumonia",
                        "label": "Community-acquired pneumonia",
                        "probability": 0.81,
                        "top_k": [
                            {"code": "pneumonia", "label": "Community-acquired pneumonia",
                             "probability": 0.81},
                            {"code": "sepsis", "label": "Sepsis", "probability": 0.12},
                        ],
                    },
                    "treatment": {"code": "iv_antibiotics_admit",
                                  "label": "IV antibiotics, admit", "probability": 0.74},
                    "prediction_quality": "high",
                    "missing_features": [],
                    "imputed_features": [],
                    "news2": {"score": 9, "band": "high"},
                    "warnings": [{"code": "hypoxia", "severity": "high",
                                  "message": "SpO2 89 % < 90 %"}],
                    "model": {"source": "mlflow", "diagnosis_version": "3",
                              "treatment_version": "3", "run_id": "9c1d…"},
                    "explanation": None,
                }
            ]
        }
    }  # fmt: skip


class BatchPredictionRequest(BaseModel):
    """Many patients in one call (at most `HP_BATCH_MAX_SIZE`; 413 beyond)."""

    records: list[PatientRecord] = Field(min_length=1)

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {"examples": [{"records": [PATIENT_EXAMPLE, PATIENT_EXAMPLE]}]},
    }


class BatchPredictionResponse(BaseModel):
    count: int
    predictions: list[PredictionResponse] = Field(description="In the order of `records`.")
