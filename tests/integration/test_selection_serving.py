"""Model selection may crown logistic regression or XGBoost: such a bundle, trained and aliased
like `make train` does (real SQLite MLflow store), loads in the app and serves `/predict`
(with `?explain=true`) and `/predict/batch` with the same answers as the pipelines themselves;
the CatBoost-only fast paths say they are off instead of failing."""

from __future__ import annotations

from pathlib import Path

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest

from tests.api.conftest import CLINICIAN, client_for, make_settings
from tests.factories import _payload
from tests.integration._promotion import write_cohort
from train_pipeline.train import train

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("family", ["logreg", "xgboost"])
def test_a_non_catboost_winner_serves_predict(tmp_path: Path, family: str) -> None:
    data = tmp_path / "cohort.csv"
    df = write_cohort(data, 900, 41)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = train(
        data_path=data,
        model_type=family,
        tracking_uri=uri,
        bentoml_home=tmp_path / "bentoml",
        iterations=30,
        threads=1,
        cv_folds=1,
    )
    assert result.aliased and result.meta.model_type == family
    rows = [r for r in df.head(40).to_dict(orient="records") if _payload(r) is not None][:8]
    payloads = [_payload(r) for r in rows]
    settings = make_settings(tmp_path / "app", mlflow_tracking_uri=uri, mlflow_timeout_s=120.0)
    for client in client_for(settings):
        health = client.get("/health").json()
        assert health["ready"] and health["diagnosis_version"] == result.diagnosis_version
        assert health["fast_paths"]["diagnosis_forest"] is False  # CatBoost only
        one = client.post("/predict", json=payloads[0], headers=CLINICIAN, params={"explain": 1})
        assert one.status_code == 200, one.text
        body = one.json()
        assert body["diagnosis"]["code"] and body["treatment"]["code"]
        assert body["explanation"] and {"feature", "contribution"} <= set(body["explanation"][0])
        batch = client.post("/predict/batch", json={"records": payloads}, headers=CLINICIAN)
        assert batch.status_code == 200, batch.text
        served = [p["diagnosis"]["probability"] for p in batch.json()["predictions"]]
    pipe = mlflow.sklearn.load_model(f"models:/healthpredict-diagnosis/{result.diagnosis_version}")
    expected = pipe.predict_proba(pd.DataFrame(rows)).max(axis=1)
    np.testing.assert_allclose(served, expected, atol=1e-6)


def test_a_calibrated_catboost_bundle_serves_exact_probabilities(tmp_path: Path) -> None:
    """Calibration (issue 14 part 3) through `train` into the app: the run logs the error
    before and after and the reliability diagram; the served probabilities are the calibrated
    pipeline's own (up to 128 rows through its calibrators reading the NumPy forest), and the
    forest shows as serving, never counted off."""
    data = tmp_path / "cohort.csv"
    df = write_cohort(data, 900, 41)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = train(
        data_path=data,
        model_type="catboost",
        tracking_uri=uri,
        bentoml_home=tmp_path / "bentoml",
        iterations=30,
        threads=1,
        calibration="isotonic",
    )
    assert result.aliased
    assert result.metrics["diagnosis_calibrated"] == 1.0
    assert "diagnosis_calibration_error_uncalibrated" in result.metrics
    client_ = mlflow.MlflowClient(tracking_uri=uri)
    artifacts = {a.path for a in client_.list_artifacts(result.run_id)}
    assert {"reliability_diagram.png", "calibration.md"} <= artifacts
    assert client_.get_run(result.run_id).data.params["calibration"] == "isotonic"
    rows = [r for r in df.head(40).to_dict(orient="records") if _payload(r) is not None][:8]
    payloads = [_payload(r) for r in rows]
    settings = make_settings(tmp_path / "app", mlflow_tracking_uri=uri, mlflow_timeout_s=120.0)
    for client in client_for(settings):
        health = client.get("/health").json()
        assert health["ready"] and health["fast_paths"]["diagnosis_forest"] is True
        assert health["fast_paths"]["treatment_forest"] is True  # the treatment is not calibrated
        metrics_text = client.get("/metrics").text
        assert 'healthpredict_fast_path_disabled_total{path="diagnosis_forest"}' not in metrics_text
        batch = client.post("/predict/batch", json={"records": payloads}, headers=CLINICIAN)
        assert batch.status_code == 200, batch.text
        served = [
            [t["probability"] for t in p["diagnosis"]["top_k"]] for p in batch.json()["predictions"]
        ]
        one = client.post("/predict", json=payloads[0], headers=CLINICIAN, params={"explain": 1})
        assert one.status_code == 200 and one.json()["explanation"], one.text
    pipe = mlflow.sklearn.load_model(f"models:/healthpredict-diagnosis/{result.diagnosis_version}")
    assert type(pipe.named_steps["model"]).__name__ == "CalibratedClassifierCV"
    expected = -np.sort(-pipe.predict_proba(pd.DataFrame(rows)), axis=1)[:, : len(served[0])]
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-12)
