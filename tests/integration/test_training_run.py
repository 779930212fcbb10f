"""A full small training run against a real SQLite MLflow store and a temporary BentoML home."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from train_pipeline.bundle_meta import BundleMeta
from train_pipeline.contract import ED_COHORT
from train_pipeline.data.load import DataError
from train_pipeline.split import dedupe, split_dataset
from train_pipeline.train import train

pytestmark = pytest.mark.slow

METRICS = (
    "accuracy",
    "balanced_accuracy",
    "f1_macro",
    "precision_macro",
    "recall_macro",
    "roc_auc_ovr",
    "log_loss",
    "calibration_error",
    "latency_per_sample_ms",
)
ARTIFACTS = (
    "confusion_matrix_diagnosis.png",
    "confusion_matrix_treatment.png",
    "classification_report_diagnosis.txt",
    "classification_report_treatment.txt",
    "feature_config.json",
    "data_quality_report.html",
    "shap_importance_diagnosis.png",
    "model_card.md",
    "bundle_meta.json",
    "baselines.json",
)


@pytest.fixture(scope="module")
def client(trained_store: Any) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(
        tracking_uri=trained_store.tracking_uri, registry_uri=trained_store.tracking_uri
    )


def test_both_models_registered_with_champion_alias(client: Any, trained_store: Any) -> None:
    for name, version in (
        ("healthpredict-diagnosis", trained_store.diagnosis_version),
        ("healthpredict-treatment", trained_store.treatment_version),
    ):
        mv = client.get_model_version_by_alias(name, "champion")
        assert str(mv.version) == version
        assert mv.run_id == trained_store.run_id
        assert mv.tags["run_id"] == trained_store.run_id
        assert mv.tags["contract_fingerprint"] == ED_COHORT.fingerprint()


def test_run_holds_every_metric_and_artifact(client: Any, trained_store: Any) -> None:
    run = client.get_run(trained_store.run_id)
    metrics = run.data.metrics
    for role in ("diagnosis", "treatment"):
        for key in METRICS:
            assert f"{role}_{key}" in metrics, f"{role}_{key}"
        for code in (ED_COHORT.diagnosis if role == "diagnosis" else ED_COHORT.treatment).codes:
            assert f"{role}_recall_{code}" in metrics
        assert f"{role}_baseline_logreg_f1_macro" in metrics
        assert f"{role}_beats_majority" in metrics
    assert {"diagnosis_cv_f1_macro_mean", "diagnosis_cv_f1_macro_std"} <= set(metrics)
    assert metrics["diagnosis_beats_majority"] == 1.0
    assert run.data.params["model_type"] == "catboost"
    files = {f.path for f in client.list_artifacts(trained_store.run_id)}
    assert set(ARTIFACTS) <= files, set(ARTIFACTS) - files
    local = Path(client.download_artifacts(trained_store.run_id, "bundle_meta.json"))
    meta = BundleMeta.from_json(local.read_text())
    assert meta.run_id == trained_store.run_id
    assert meta.diagnosis_classes == list(ED_COHORT.diagnosis.codes)
    assert meta.allowed_pairs["stroke"] and "thrombolysis" not in meta.allowed_pairs["pneumonia"]
    card = Path(client.download_artifacts(trained_store.run_id, "model_card.md")).read_text()
    assert "| majority class |" in card and "| logistic regression |" in card


def test_registered_pipelines_load_and_predict(trained_store: Any) -> None:
    import mlflow.sklearn

    mlflow.set_registry_uri(trained_store.tracking_uri)
    pipe = mlflow.sklearn.load_model("models:/healthpredict-diagnosis@champion")
    rows = pd.read_csv(trained_store.data_path).head(20)
    proba = pipe.predict_proba(rows[list(ED_COHORT.feature_names)])
    assert proba.shape == (20, len(ED_COHORT.diagnosis.codes))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_bentoml_store_links_to_the_run(trained_store: Any) -> None:
    import bentoml

    from train_pipeline.register import configure_bentoml_home

    configure_bentoml_home(trained_store.bentoml_home)
    models = {m.tag.name: m for m in bentoml.models.list()}
    for role, version in (
        ("diagnosis", trained_store.diagnosis_version),
        ("treatment", trained_store.treatment_version),
    ):
        model = models[f"healthpredict-{role}"]
        assert model.info.labels["mlflow_run_id"] == trained_store.run_id
        assert model.info.labels["mlflow_version"] == version
        assert model.info.labels["role"] == role
        assert model.info.labels["contract"] == ED_COHORT.fingerprint()
        latest = bentoml.models.get(f"healthpredict-{role}:latest")
        meta = latest.custom_objects["bundle_meta"]
        assert meta["run_id"] == trained_store.run_id
        assert hasattr(bentoml.sklearn.load_model(latest), "predict_proba")


def test_no_duplicate_crosses_the_split() -> None:
    base = pd.DataFrame({"a": np.arange(100.0), "b": list("xyzw") * 25, "y": ["p", "q"] * 50})
    base.loc[:3, "a"] = np.nan  # NaN features still identify duplicates (b differs here)
    data = pd.concat([base, base.head(30).assign(y="q")])  # 30 copies, some relabelled
    train_df, test_df = split_dataset(data, ["a", "b"], "y", test_size=0.3, seed=1)
    assert len(train_df) + len(test_df) == len(dedupe(data, ["a", "b"])) == 100
    key = ["a", "b"]
    crossed = train_df[key].astype(str).merge(test_df[key].astype(str), how="inner")
    assert crossed.empty
    again = split_dataset(data, ["a", "b"], "y", test_size=0.3, seed=1)
    pd.testing.assert_frame_equal(again[1], test_df)  # seeded: reproducible


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda df: df.drop(columns=["diagnosis"]), "diagnosis"),
        (lambda df: df.assign(heart_rate="fast"), "heart_rate"),
        (lambda df: df.drop(columns=["spo2"]), "spo2"),
    ],
    ids=["missing-target", "wrong-type", "missing-feature"],
)
def test_bad_csv_gives_a_clear_error(
    tmp_path: Path, cohort_csv: Path, mutate: Any, message: str
) -> None:
    bad = tmp_path / "bad.csv"
    mutate(pd.read_csv(cohort_csv).head(200)).to_csv(bad, index=False)
    with pytest.raises(DataError, match=message):
        train(
            data_path=bad,
            tracking_uri=f"sqlite:///{tmp_path / 'm.db'}",
            bentoml_home=tmp_path / "b",
            iterations=5,
            threads=1,
        )
    assert not (tmp_path / "m.db").exists()  # refused before anything was logged


def test_feature_config_is_the_contract(client: Any, trained_store: Any) -> None:
    local = client.download_artifacts(trained_store.run_id, "feature_config.json")
    config = json.loads(Path(local).read_text())
    assert config["fingerprint"] == ED_COHORT.fingerprint()
    assert [f["name"] for f in config["features"]] == list(ED_COHORT.feature_names)
