"""Bodies of the monitoring routes: drift summary and global feature importance."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FeatureDriftOut(BaseModel):
    feature: str = Field(description="Contract field, or `symptoms_count` / `symptoms_<code>`.")
    kind: str = Field(description="`numerical` or `categorical` (how Evidently tested it).")
    method: str = Field(description="Statistical test or distance Evidently chose.")
    threshold: float
    score: float = Field(description="p-value (tests) or distance; compare with `threshold`.")
    drifted: bool


class DriftResponse(BaseModel):
    """Drift of the last live inputs against the training reference (Evidently 0.7)."""

    computed_at: str = Field(description="UTC time the report was computed (cached).")
    window_size: int = Field(description="Live inputs compared (the most recent ones).")
    reference_size: int = Field(description="Training reference rows.")
    run_id: str = Field(description="Training run whose reference was used.")
    drift_share: float = Field(ge=0, le=1, description="Share of tested columns that drifted.")
    n_drifted: int
    n_features: int
    dataset_drift: bool = Field(description="True when at least half the columns drifted.")
    features: list[FeatureDriftOut]
    skipped: dict[str, str] = Field(description="Columns not tested, and why.")


class FeatureImportanceOut(BaseModel):
    feature: str = Field(description="Contract field.")
    importance: float = Field(description="Mean |SHAP| on held-out data, all classes.")


class ImportanceResponse(BaseModel):
    """Global importance of each input field for the diagnosis model, largest first."""

    run_id: str
    model_type: str
    importance: list[FeatureImportanceOut]
