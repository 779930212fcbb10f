"""Champion vs challenger, both ways, with real MLflow (SQLite store) and BentoML (tmp home).

- Systematic error: a champion trained where every pneumonia was labelled viral URI. With no
  feedback the retrain reproduces it exactly (kept); clinicians' corrections sent through the
  running app teach pneumonia back -> promoted, and the same running app serves the new
  version after its in-process reload, without restart.
- Noisy corrections: random labels -> champion kept, both scores on the challenger's run, via
  the `python -m retrain` CLI; the champion's score equals the one logged at training (same
  held-out set as `make train`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient

from app.settings import DEFAULT_ADMIN_KEY, PROJECT_ROOT, Settings
from app.store import db, retrain_jobs
from retrain.job import RetrainConfig, run_retrain
from tests.api.conftest import ADMIN, CLINICIAN, make_settings
from tests.api.test_feedback_concurrency import running
from tests.factories import _payload
from tests.integration._promotion import (
    NAMES,
    aliased,
    random_feedback,
    register_champion,
    wait_for_job,
    write_cohort,
)
from train_pipeline import register
from train_pipeline.contract import ED_COHORT
from train_pipeline.data.generate import generate_cohort
from train_pipeline.data.load import load_task_data
from train_pipeline.train import TrainResult, train

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass(frozen=True)
class SystematicError:
    """A champion that never learned pneumonia, and the data to correct it."""

    train_csv: Path
    holdout_csv: Path
    pool: pd.DataFrame
    """True pneumonias the clinicians correct."""
    uri: str
    home: Path
    first_version: str
    first_run: str


@pytest.fixture
def systematic_error(tmp_path: Path) -> SystematicError:
    """Every pneumonia of the champion's training data was labelled viral URI."""
    train_csv, holdout_csv, pool_csv = (
        tmp_path / n for n in ("train.csv", "holdout.csv", "pool.csv")
    )
    biased = generate_cohort(700, 11)
    biased.loc[biased["diagnosis"] == "pneumonia", "diagnosis"] = "viral_uri"
    biased.to_csv(train_csv, index=False)
    write_cohort(holdout_csv, 400, 12)  # an adjudicated evaluation set: labels are right
    pool = generate_cohort(2500, 13)
    pool = pool.loc[pool["diagnosis"] == "pneumonia"].head(200)
    pool.to_csv(pool_csv, index=False)
    uri, home = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "bentoml"
    register_champion(uri, home, train_csv)
    first_version, first_run = aliased(uri)
    return SystematicError(train_csv, holdout_csv, pool, uri, home, first_version, first_run)


def app_settings(case: SystematicError, root: Path) -> Settings:
    """The app on the champion's registry, retraining on 100+ corrections at 50 % errors."""
    return make_settings(
        root,
        mlflow_tracking_uri=case.uri,
        bentoml_home=case.home,
        mlflow_timeout_s=120.0,
        training_data_path=case.train_csv,
        retrain_holdout_path=case.holdout_csv,
        retrain_min_feedback=100,
        retrain_error_rate=0.5,
        retrain_margin=0.02,
    )


async def test_corrections_of_a_systematic_error_promote_and_the_app_serves_it(
    systematic_error: SystematicError, tmp_path: Path
) -> None:
    case = systematic_error
    # Control: no feedback -> the same recipe on the same rows -> the same model: kept.
    config = RetrainConfig(
        data_path=case.train_csv,
        holdout_path=case.holdout_csv,
        tracking_uri=case.uri,
        bentoml_home=case.home,
        threads=1,
    )
    control = run_retrain(config, [])
    assert control.decision == "kept"
    assert control.challenger_scores == control.champion_scores
    assert aliased(case.uri) == (case.first_version, case.first_run)

    async with running(app_settings(case, tmp_path)) as (_app, client):
        served = (await client.get("/models", headers=CLINICIAN)).json()
        assert served["run_id"] == case.first_run
        sent = await send_pneumonia_corrections(client, case.pool)
        assert sent >= 150
        stats = (await client.get("/feedback/stats", headers=CLINICIAN)).json()
        assert stats["retraining_recommended"], stats["recommendation_reason"]
        job = await retrain_through_the_api(client)
        scores = job["scores"]
        key = scores["metric"]
        assert scores["challenger"][key] > scores["champion"][key] + 0.02
        assert scores["n_feedback"] == sent
        await assert_the_app_serves_the_challenger(client, case, job)

    assert_promotion_recorded(case, job, key)


async def send_pneumonia_corrections(client: httpx.AsyncClient, pool: pd.DataFrame) -> int:
    """Predict each pneumonia of `pool` and correct it as a clinician; how many were sent."""
    sent = 0
    for row in pool.to_dict(orient="records"):
        payload = _payload(row)
        if payload is None:
            continue
        answer = (await client.post("/predict", json=payload, headers=CLINICIAN)).json()
        if answer["diagnosis"] is None:
            continue
        assert answer["diagnosis"]["code"] != "pneumonia"  # it cannot: never learned
        right_treatment = answer["treatment"]["code"] == row["treatment"]
        feedback = {
            "prediction_id": answer["prediction_id"],
            "clinician_id": "clin-9",
            "verdict": "wrong_diagnosis" if right_treatment else "both_wrong",
            "corrected_diagnosis": "pneumonia",
            "reason": "consolidation on chest X-ray",
        }
        if not right_treatment:
            feedback["corrected_treatment"] = row["treatment"]
        response = await client.post("/feedback", json=feedback, headers=CLINICIAN)
        assert response.status_code == 201, response.text
        sent += 1
    return sent


async def retrain_through_the_api(client: httpx.AsyncClient) -> Any:
    """POST /retrain (in-process; a second one is refused while it runs) until it promoted."""
    accepted = await client.post("/retrain", headers=ADMIN)
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["executor"] == "in-process"
    busy = await client.post("/retrain", headers=ADMIN)
    assert busy.status_code == 409
    job = await wait_for_job(client, accepted.json()["status_url"])
    assert job["status"] == "succeeded", job["error"]
    assert job["decision"] == "promoted"
    return job


async def assert_the_app_serves_the_challenger(
    client: httpx.AsyncClient, case: SystematicError, job: Any
) -> None:
    """The running app reloaded the new champion (no restart) and it now says pneumonia."""
    scores = job["scores"]
    served = (await client.get("/models", headers=CLINICIAN)).json()
    assert served["run_id"] == job["challenger_run_id"]
    new_version, new_run = aliased(case.uri)
    assert new_run == job["challenger_run_id"] and new_version == scores["challenger_versions"][0]
    payloads = [p for p in map(_payload, case.pool.to_dict(orient="records")) if p][:40]
    answers = [(await client.post("/predict", json=p, headers=CLINICIAN)).json() for p in payloads]
    assert {a["model"]["diagnosis_version"] for a in answers} == {new_version}
    said_pneumonia = sum(a["diagnosis"] and a["diagnosis"]["code"] == "pneumonia" for a in answers)
    assert said_pneumonia >= len(answers) // 2


def assert_promotion_recorded(case: SystematicError, job: Any, key: str) -> None:
    """The challenger's MLflow run carries the decision and both scores; BentoML has it."""
    client_ml = MlflowClient(tracking_uri=case.uri, registry_uri=case.uri)
    run = client_ml.get_run(job["challenger_run_id"])
    assert run.data.tags["retrain.decision"] == "promoted"
    assert run.data.tags["retrain.job_id"] == job["id"]
    assert {f"champion_{key}", f"challenger_{key}"} <= set(run.data.metrics)
    register.configure_bentoml_home(case.home)
    import bentoml

    saved = bentoml.models.get(f"{NAMES['diagnosis']}:latest")
    assert saved.info.labels["mlflow_run_id"] == job["challenger_run_id"]


def test_noisy_corrections_keep_the_champion_via_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "cohort.csv"
    write_cohort(data, 700, 21)
    uri, home = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "bentoml"
    champion = train(
        frame=load_task_data(data, ED_COHORT),
        tracking_uri=uri,
        bentoml_home=home,
        iterations=20,
        threads=1,
        cv_folds=1,
    )
    # No feedback: the champion's own recipe on the same split gives the very same models.
    same = run_retrain(RetrainConfig(data_path=data, tracking_uri=uri, bentoml_home=home), [])
    assert same.decision == "kept"
    assert same.challenger_scores == same.champion_scores
    assert same.champion_scores["treatment_f1_macro"] is not None
    store = f"sqlite:///{tmp_path / 'store.db'}"
    db.upgrade(store)
    n = random_feedback(store, generate_cohort(600, 22), 350, seed=5)
    result = retrain_via_the_cli(store, uri, home, data)
    assert result["decision"] == "kept"
    assert result["n_feedback"] == n
    key = result["metric"]
    # Scored on the held-out set `make train` used: the champion's logged score, exactly.
    assert result["champion"][key] == pytest.approx(champion.metrics[key], abs=1e-12)
    assert result["challenger"][key] < result["champion"][key]
    assert aliased(uri) == (champion.diagnosis_version, champion.run_id)
    assert_kept_decision_recorded(uri, store, result, champion)


def retrain_via_the_cli(store: str, uri: str, home: Path, data: Path) -> Any:
    """`python -m retrain --json` on these stores; its JSON result (it must exit 0)."""
    env = os.environ | {
        "HP_ENVIRONMENT": "test",
        "HP_DATABASE_URL": store,
        "HP_MLFLOW_TRACKING_URI": uri,
        "HP_BENTOML_HOME": str(home),
        "HP_TRAINING_DATA_PATH": str(data),
        "HP_RETRAIN_MARGIN": "0.0",
        "HP_API_KEYS": f"{DEFAULT_ADMIN_KEY}:admin",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "retrain", "--json", "--threads", "1"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_kept_decision_recorded(uri: str, store: str, result: Any, champion: TrainResult) -> None:
    """One challenger run with both scores and the champion's run id; the job row in the store."""
    key = result["metric"]
    run = MlflowClient(tracking_uri=uri).get_run(result["champion_run_id"])
    assert run.info.run_id == champion.run_id
    challenger_runs = MlflowClient(tracking_uri=uri).search_runs(
        [run.info.experiment_id], f"tags.`retrain.job_id` = '{result['job_id']}'"
    )
    assert len(challenger_runs) == 1
    logged = challenger_runs[0].data
    assert logged.metrics[f"champion_{key}"] == pytest.approx(result["champion"][key])
    assert logged.metrics[f"challenger_{key}"] == pytest.approx(result["challenger"][key])
    assert logged.tags["retrain.champion_run_id"] == champion.run_id
    engine = db.make_engine(store)
    with db.make_sessionmaker(engine)() as session:
        job = retrain_jobs.get_retrain_job(session, result["job_id"])
        assert job is not None and job.status == "succeeded" and job.decision == "kept"
        assert job.executor == "cli" and job.scores["challenger_versions"]  # type: ignore[index]
    engine.dispose()
