"""The served pair of pipelines, with where they came from; swapped atomically on reload."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np

from app.errors import ModelLoadError
from train_pipeline.bundle_meta import BundleMeta
from train_pipeline.contract import ED_COHORT, TaskContract
from train_pipeline.fast_path.pipeline import FastPipeline

Source = Literal["mlflow", "bentoml"]


class IncompatibleModelError(ModelLoadError):
    """A loaded model does not fit the API's feature contract or its sibling; never served."""

    code = "model_incompatible"


@dataclass(frozen=True)
class ModelBundle:
    """Both pipelines of one training run, ready to serve.

    Attributes:
        diagnosis / treatment: fast paths over the two fitted pipelines.
        diagnosis_pipeline / treatment_pipeline: the sklearn pipelines themselves (SHAP, tests).
        meta: the run's `BundleMeta` (classes, allowed pairs, metrics, reference sample).
        source: where both were loaded from.
        diagnosis_version / treatment_version: MLflow registry versions (BentoML: the MLflow
            version label, or the BentoML tag version when unknown).
        run_id: MLflow run id shared by both.
        loaded_at: UTC time the load finished; load_seconds: how long it took.
    """

    diagnosis: FastPipeline
    treatment: FastPipeline
    diagnosis_pipeline: Any
    treatment_pipeline: Any
    meta: BundleMeta
    source: Source
    diagnosis_version: str
    treatment_version: str
    run_id: str
    loaded_at: datetime
    load_seconds: float

    def info(self) -> dict[str, str]:
        """Model identity as the response's ``model`` block shows it."""
        return {
            "source": self.source,
            "diagnosis_version": self.diagnosis_version,
            "treatment_version": self.treatment_version,
            "run_id": self.run_id,
        }


def class_codes(model_classes: Iterable[Any], meta_classes: Sequence[str]) -> list[str]:
    """The class code of each `predict_proba` column.

    Training encodes labels as integers (index into the metadata's class list); a pipeline
    fitted on string labels carries the codes themselves.

    Raises:
        IncompatibleModelError: an integer class outside the metadata's list.
    """
    values = list(model_classes)
    if values and all(isinstance(v, int | np.integer) for v in values):
        if any(not 0 <= int(v) < len(meta_classes) for v in values):
            raise IncompatibleModelError(
                f"model classes {values} do not index the {len(meta_classes)} bundle classes"
            )
        return [str(meta_classes[int(v)]) for v in values]
    return [str(v) for v in values]


def check_compatible(
    meta: BundleMeta,
    diagnosis_pipeline: Any,
    treatment_pipeline: Any,
    *,
    diagnosis_run_id: str | None = None,
    treatment_run_id: str | None = None,
    task: TaskContract = ED_COHORT,
) -> None:
    """Refuse a pair of pipelines the API cannot serve safely.

    Raises:
        IncompatibleModelError: the contract fingerprint differs from the API's, the class
            lists in the metadata differ from the pipelines' ``classes_`` or name codes the
            contract does not know, or the two pipelines come from different runs.
    """
    expected = task.fingerprint()
    if meta.contract_fingerprint != expected:
        raise IncompatibleModelError(
            f"feature contract mismatch: model {meta.contract_fingerprint!r}, API {expected!r}"
        )
    _same_classes(
        "diagnosis",
        meta.diagnosis_classes,
        class_codes(diagnosis_pipeline.classes_, meta.diagnosis_classes),
    )
    _same_classes(
        "treatment",
        meta.treatment_classes,
        class_codes(treatment_pipeline.classes_, meta.treatment_classes),
    )
    _known_codes("diagnosis", meta.diagnosis_classes, task.diagnosis.codes)
    if task.treatment is not None:
        _known_codes("treatment", meta.treatment_classes, task.treatment.codes)
    runs = {r for r in (diagnosis_run_id, treatment_run_id, meta.run_id or None) if r}
    if len(runs) > 1:
        raise IncompatibleModelError(f"pipelines come from different runs: {sorted(runs)}")


def _same_classes(role: str, meta_classes: Sequence[str], pipe_classes: Sequence[str]) -> None:
    if list(meta_classes) != list(pipe_classes):
        raise IncompatibleModelError(
            f"{role} classes in bundle_meta {list(meta_classes)} != pipeline classes_ "
            f"{list(pipe_classes)}"
        )


def _known_codes(role: str, codes: Sequence[str], contract_codes: Sequence[str]) -> None:
    unknown = sorted(set(codes) - set(contract_codes))
    if unknown:
        raise IncompatibleModelError(f"{role} classes unknown to the contract: {unknown}")
