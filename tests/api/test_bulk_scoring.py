"""Bulk scoring (`app.scoring`): pandas, Spark (a real local[2] session) and `POST /predict/batch`
answer the same for the same 1,000 cohort patients; bad rows go to the rejects file, none lost.

One Spark session for the module; the data stays small (Spark at size is in `bench/`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from app.scoring import job
from app.scoring.__main__ import main as scoring_main
from app.scoring.batch import OUTPUT_COLUMNS
from app.scoring.files import rejects_path
from app.serving.predictor import Predictor
from app.settings import Settings, get_settings
from tests.api.conftest import CLINICIAN
from tests.factories import cohort_payloads, make_patient
from train_pipeline.contract import SYMPTOM_SEPARATOR

N_PATIENTS = 1000
N_BAD = 50
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def payloads(trained_store: Any) -> list[dict[str, Any]]:
    rows = cohort_payloads(trained_store.data_path, N_PATIENTS + 50, seed=3)[:N_PATIENTS]
    assert len(rows) == N_PATIENTS
    return rows


def table(payloads: list[dict[str, Any]], ids: bool = True) -> pd.DataFrame:
    """API payloads as an input table: canonical columns, symptoms ';'-joined, patient ids."""
    frame = pd.DataFrame(
        [
            {**p, "symptoms": SYMPTOM_SEPARATOR.join(p.get("symptoms") or [])}
            if "symptoms" in p
            else p
            for p in payloads
        ]
    )
    if ids:
        frame.insert(0, "patient_id", [f"P{i:05d}" for i in range(len(payloads))])
    return frame


@pytest.fixture(scope="module")
def cohort_files(payloads: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bulk")
    table(payloads).to_csv(root / "cohort.csv", index=False)
    table(payloads).to_parquet(root / "cohort.parquet", index=False)
    return root


@pytest.fixture(scope="module")
def predictor(trained_settings: Settings) -> Predictor:
    return job.load_predictor(trained_settings)


@pytest.fixture(scope="module")
def spark_session() -> Iterator[Any]:
    from app.scoring import spark

    session, _ = spark.start_session("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def api_rows(client: TestClient, payloads: list[dict[str, Any]]) -> pd.DataFrame:
    response = client.post("/predict/batch", json={"records": payloads}, headers=CLINICIAN)
    assert response.status_code == 200, response.text
    out = []
    for i, body in enumerate(response.json()["predictions"]):
        d, t = body["diagnosis"], body["treatment"]
        out.append(
            {
                "row": i,
                "diagnosis_code": d and d["code"],
                "diagnosis_probability": d["probability"] if d else math.nan,
                "treatment_code": t and t["code"],
                "treatment_probability": t["probability"] if t else math.nan,
                "prediction_quality": body["prediction_quality"],
                "news2_score": body["news2"]["score"],
                "run_id": body["model"]["run_id"],
            }
        )
    return pd.DataFrame(out)


def assert_same(scored: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(scored["row"]) == list(expected["row"])
    for name in ("diagnosis_code", "treatment_code", "prediction_quality", "run_id"):
        assert scored[name].tolist() == expected[name].tolist(), name
    assert (
        scored["news2_score"].astype("Int64").tolist()
        == expected["news2_score"].astype("Int64").tolist()
    )
    for name in ("diagnosis_probability", "treatment_probability"):
        a, b = scored[name].astype(float).to_numpy(), expected[name].astype(float).to_numpy()
        assert ((abs(a - b) <= TOLERANCE) | (pd.isna(a) & pd.isna(b))).all(), name


def test_pandas_spark_and_api_batch_agree(
    cohort_files: Path,
    trained_settings: Settings,
    predictor: Predictor,
    spark_session: Any,
    api_rows: pd.DataFrame,
    tmp_path: Path,
) -> None:
    by_pandas = job.run(
        trained_settings, cohort_files / "cohort.csv", tmp_path / "pandas.parquet",
        predictor=predictor, show_progress=False,
    )  # fmt: skip
    by_spark = job.run(
        trained_settings, cohort_files / "cohort.parquet", tmp_path / "spark.parquet", "spark",
        spark_session=spark_session, predictor=predictor, show_progress=False,
    )  # fmt: skip
    assert (by_pandas.scored, by_pandas.rejected) == (N_PATIENTS, 0)
    assert (by_spark.scored, by_spark.rejected) == (N_PATIENTS, 0)
    pandas_out = pd.read_parquet(by_pandas.output)
    spark_out = pd.read_parquet(by_spark.output)
    assert list(pandas_out.columns) == list(OUTPUT_COLUMNS)
    assert pandas_out["patient_id"].tolist() == [f"P{i:05d}" for i in range(N_PATIENTS)]
    assert_same(pandas_out, api_rows)
    assert_same(spark_out, api_rows)
    assert spark_out["patient_id"].tolist() == pandas_out["patient_id"].tolist()
    assert pd.read_csv(by_pandas.rejects).empty


def bad_rows() -> list[tuple[dict[str, Any], str]]:
    """50 invalid records, each with the field its reject names."""
    kinds: list[tuple[dict[str, Any], str]] = [
        (make_patient(heart_rate=400), "heart_rate"),
        (make_patient(sex="X"), "sex"),
        (make_patient(diastolic_bp=150, systolic_bp=120), "diastolic_bp"),
        (make_patient(spo2="abc"), "spo2"),
        (make_patient(symptoms=["not_a_symptom"]), "symptoms"),
    ]
    missing_age = make_patient()
    del missing_age["age"]
    kinds.append((missing_age, "age"))
    return [kinds[i % len(kinds)] for i in range(N_BAD)]


@pytest.mark.parametrize("engine", ["pandas", "spark"])
def test_bad_rows_go_to_the_rejects_file(
    engine: str,
    payloads: list[dict[str, Any]],
    trained_settings: Settings,
    predictor: Predictor,
    spark_session: Any,
    tmp_path: Path,
) -> None:
    good = payloads[:200]
    bad = bad_rows()
    mixed: list[dict[str, Any]] = []
    bad_at: dict[int, str] = {}
    for i, record in enumerate(good):
        mixed.append(record)
        if i % 4 == 0 and len(bad_at) < N_BAD:
            bad_at[len(mixed)] = bad[len(bad_at)][1]
            mixed.append(bad[len(bad_at) - 1][0])
    source = tmp_path / "mixed.csv"
    table(mixed).to_csv(source, index=False)
    result = job.run(
        trained_settings, source, tmp_path / "out.csv", engine,  # type: ignore[arg-type]
        spark_session=spark_session, predictor=predictor, show_progress=False,
    )  # fmt: skip
    assert (result.scored, result.rejected) == (len(good), N_BAD)
    out = pd.read_csv(result.output)
    assert sorted(set(out["row"]) | set(bad_at)) == list(range(len(mixed)))
    rejects = pd.read_csv(rejects_path(result.output))
    assert list(rejects.columns) == ["row", "field", "value", "reason"]
    fields = {
        row: field.split(".")[0].split("[")[0]
        for row, field in zip(rejects["row"], rejects["field"], strict=True)
    }
    assert fields == bad_at
    assert rejects["reason"].notna().all() and (rejects["reason"].str.len() > 0).all()


def test_cli_rerun_writes_the_same_files(
    cohort_files: Path, trained_settings: Settings, tmp_path: Path, monkeypatch: Any
) -> None:
    """The CLI loads the champion through the API's loader; a rerun writes identical bytes."""
    monkeypatch.setenv("HP_MLFLOW_TRACKING_URI", trained_settings.mlflow_tracking_uri)
    monkeypatch.setenv("HP_BENTOML_HOME", str(trained_settings.bentoml_home))
    get_settings.cache_clear()
    output = tmp_path / "scores.parquet"
    try:
        argv = [str(cohort_files / "cohort.csv"), str(output), "--no-progress"]
        assert scoring_main(argv) == 0
        first = output.read_bytes(), rejects_path(output).read_bytes()
        assert scoring_main(argv) == 0
        assert (output.read_bytes(), rejects_path(output).read_bytes()) == first
    finally:
        get_settings.cache_clear()
    assert len(pd.read_parquet(output)) == N_PATIENTS


def test_unknown_columns_are_refused_before_scoring(
    cohort_files: Path, tmp_path: Path, trained_settings: Settings
) -> None:
    source = tmp_path / "typo.csv"
    pd.read_csv(cohort_files / "cohort.csv").rename(columns={"heart_rate": "hart_rate"}).to_csv(
        source, index=False
    )
    assert scoring_main([str(source), str(tmp_path / "out.csv"), "--no-progress"]) == 2
    assert not (tmp_path / "out.csv").exists()
