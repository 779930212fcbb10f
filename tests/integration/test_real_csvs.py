"""Any clinical CSV trains through its task config: real public CSVs from ../shared/data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from train_pipeline.fast_path.pipeline import FastPipeline
from train_pipeline.task_config import load_task_config
from train_pipeline.train import TrainResult, train

pytestmark = pytest.mark.slow


def _train(task: str, tmp: Path, model_type: str = "catboost") -> TrainResult:
    csv = load_task_config(task).resolve_csv()
    if not csv.is_file():  # the shared data is part of this machine's setup: fail, never skip
        pytest.fail(f"real CSV for {task} missing at {csv}")
    return train(
        task=task,
        model_type=model_type,
        tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
        bentoml_home=tmp / "bentoml",
        iterations=60,
        threads=1,
        seed=3,
    )


def _registered(result: TrainResult, role: str) -> Any:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=result.tracking_uri, registry_uri=result.tracking_uri)
    return client.get_model_version_by_alias(f"healthpredict-{result.task}-{role}", "champion")


def test_heart_cleveland_binary_diagnosis(tmp_path: Path) -> None:
    result = _train("heart_cleveland", tmp_path, model_type="xgboost")
    assert result.treatment_version is None
    assert str(_registered(result, "diagnosis").version) == result.diagnosis_version
    assert result.baselines["diagnosis"].beats_majority
    assert result.metrics["diagnosis_roc_auc_ovr"] > 0.8
    # binary XGBoost through the fast path equals the pipeline
    import mlflow.sklearn

    pipe = mlflow.sklearn.load_model(
        f"models:/healthpredict-heart_cleveland-diagnosis/{result.diagnosis_version}"
    )
    from train_pipeline.data.load import load_task_data

    config = load_task_config("heart_cleveland")
    df = load_task_data(config.resolve_csv(), config.to_contract(), config)
    fast = FastPipeline.from_pipeline(pipe)
    cols = {c: df[c].to_numpy() for c in df.columns}
    np.testing.assert_allclose(fast.predict_proba(cols), pipe.predict_proba(df), atol=1e-6)


def test_drug200_is_learned_almost_perfectly(tmp_path: Path) -> None:
    result = _train("drug200", tmp_path)
    assert result.metrics["diagnosis_f1_macro"] > 0.85
    assert result.baselines["diagnosis"].beats_majority


def test_cirrhosis_stage_and_randomised_drug(tmp_path: Path) -> None:
    result = _train("cirrhosis_pbc", tmp_path)
    assert result.treatment_version is not None
    assert str(_registered(result, "treatment").version) == result.treatment_version
    # Drug was allocated at random in the trial: the model must be flagged, not celebrated
    assert not result.baselines["treatment"].beats_majority
    assert result.metrics["treatment_beats_majority"] == 0.0
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=result.tracking_uri)
    card = Path(client.download_artifacts(result.run_id, "model_card.md")).read_text()
    assert "treatment model does NOT beat the majority-class baseline" in card
