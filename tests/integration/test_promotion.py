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
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient

from app.settings import DEFAULT_ADMIN_KEY, PROJECT_ROOT
from app.store import db, repository
from retrain import promote
from retrain.challenger import fit_challenger
from retrain.job import RetrainConfig, run_retrain
from tests.api.conftest import ADMIN, CLINICIAN, make_settings
from tests.api.test_feedback_concurrency import running
from tests.factories import _payload
from train_pipeline import register
from train_pipeline.bundle_meta import BundleMeta
from train_pipeline.contract import ED_COHORT
from train_pipeline.data.generate import generate_cohort
from train_pipeline.data.load import load_task_data
from train_pipeline.fitting import FitOptions
from train_pipeline.models.pipeline import DEFAULT_PARAMS
from train_pipeline.train import clean_frame, train

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAMES = {"diagnosis": "healthpredict-diagnosis", "treatment": "healthpredict-treatment"}
TINY = {"iterations": 20, "thread_count": 1}


def write_cohort(path: Path, rows: int, seed: int) -> pd.DataFrame:
    df = generate_cohort(rows, seed)
    df.to_csv(path, index=False)
    return df


def register_champion(uri: str, home: Path, csv: Path, seed: int = 42) -> None:
    """A champion fitted on ALL of ``csv`` with the retrain recipe (H2's fitting code), logged,
    aliased and saved to BentoML like `make train` does."""
    task = ED_COHORT
    df = clean_frame(load_task_data(csv, task), task)
    params = {**DEFAULT_PARAMS["catboost"], **TINY}
    out = fit_challenger(task, df, df.head(0), FitOptions(seed=seed, params=params), full=False)
    meta = BundleMeta(
        task=task.name,
        contract_fingerprint=task.fingerprint(),
        run_id="",
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        model_type="catboost",
        diagnosis_classes=out.diagnosis_classes,
        treatment_classes=out.treatment_classes,
        allowed_pairs=out.allowed_pairs,
    )
    example = df[list(task.feature_names)].head(3)
    pipelines = {
        "diagnosis": (out.diagnosis_pipeline, example),
        "treatment": (out.treatment_pipeline, example.assign(diagnosis=df["diagnosis"].head(3))),
    }
    files = home.parent / "champion-files"
    files.mkdir(exist_ok=True)
    run_params = {
        "seed": seed,
        "model_type": "catboost",
        **{f"model_{k}": v for k, v in params.items()},
    }
    bundle, meta = register.log_bundle(
        uri,
        "healthpredict",
        pipelines,
        meta,
        NAMES,
        run_params,
        {},
        files,
        run_name="biased-champion",
    )
    promote.promote(
        RetrainConfig(data_path=csv, tracking_uri=uri, bentoml_home=home),
        {r: p for r, (p, _) in pipelines.items()},
        meta,
        bundle,
    )


def aliased(uri: str) -> tuple[str, str]:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = [client.get_model_version_by_alias(n, "champion") for n in NAMES.values()]
    assert versions[0].run_id == versions[1].run_id
    return str(versions[0].version), versions[0].run_id


async def wait_for_job(client: httpx.AsyncClient, url: str, timeout_s: float = 600) -> Any:
    import asyncio

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = (await client.get(url, headers=ADMIN)).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        await asyncio.sleep(1.0)
    raise AssertionError(f"{url} did not finish within {timeout_s} s")


async def test_corrections_of_a_systematic_error_promote_and_the_app_serves_it(
    tmp_path: Path,
) -> None:
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

    # Control: no feedback -> the same recipe on the same rows -> the same model: kept.
    config = RetrainConfig(
        data_path=train_csv,
        holdout_path=holdout_csv,
        tracking_uri=uri,
        bentoml_home=home,
        threads=1,
    )
    control = run_retrain(config, [])
    assert control.decision == "kept"
    assert control.challenger_scores == control.champion_scores
    assert aliased(uri) == (first_version, first_run)

    settings = make_settings(
        tmp_path,
        mlflow_tracking_uri=uri,
        bentoml_home=home,
        mlflow_timeout_s=120.0,
        training_data_path=train_csv,
        retrain_holdout_path=holdout_csv,
        retrain_min_feedback=100,
        retrain_error_rate=0.5,
        retrain_margin=0.02,
    )
    async with running(settings) as (_app, client):
        served = (await client.get("/models", headers=CLINICIAN)).json()
        assert served["run_id"] == first_run
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
        assert sent >= 150
        stats = (await client.get("/feedback/stats", headers=CLINICIAN)).json()
        assert stats["retraining_recommended"], stats["recommendation_reason"]

        accepted = await client.post("/retrain", headers=ADMIN)
        assert accepted.status_code == 202, accepted.text
        assert accepted.json()["executor"] == "in-process"
        busy = await client.post("/retrain", headers=ADMIN)
        assert busy.status_code == 409
        job = await wait_for_job(client, accepted.json()["status_url"])
        assert job["status"] == "succeeded", job["error"]
        assert job["decision"] == "promoted"
        scores = job["scores"]
        key = scores["metric"]
        assert scores["challenger"][key] > scores["champion"][key] + 0.02
        assert scores["n_feedback"] == sent

        # The running app reloaded the new champion: no restart.
        served = (await client.get("/models", headers=CLINICIAN)).json()
        assert served["run_id"] == job["challenger_run_id"]
        new_version, new_run = aliased(uri)
        assert (
            new_run == job["challenger_run_id"] and new_version == scores["challenger_versions"][0]
        )
        payloads = [p for p in map(_payload, pool.to_dict(orient="records")) if p][:40]
        answers = [
            (await client.post("/predict", json=p, headers=CLINICIAN)).json() for p in payloads
        ]
        assert {a["model"]["diagnosis_version"] for a in answers} == {new_version}
        said_pneumonia = sum(
            a["diagnosis"] and a["diagnosis"]["code"] == "pneumonia" for a in answers
        )
        assert said_pneumonia >= len(answers) // 2

    client_ml = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client_ml.get_run(job["challenger_run_id"])
    assert run.data.tags["retrain.decision"] == "promoted"
    assert run.data.tags["retrain.job_id"] == job["id"]
    assert {f"champion_{key}", f"challenger_{key}"} <= set(run.data.metrics)
    register.configure_bentoml_home(home)
    import bentoml

    saved = bentoml.models.get(f"{NAMES['diagnosis']}:latest")
    assert saved.info.labels["mlflow_run_id"] == job["challenger_run_id"]


def random_feedback(store_url: str, source: pd.DataFrame, n: int, seed: int) -> int:
    """``n`` audit rows of cohort patients, each with a randomly 'corrected' label."""
    rng = random.Random(seed)
    diagnoses = list(ED_COHORT.diagnosis.codes)
    treatments = list(ED_COHORT.treatment.codes)  # type: ignore[union-attr]
    engine = db.make_engine(store_url)
    written = 0
    with db.make_sessionmaker(engine)() as session:
        for row in source.to_dict(orient="records"):
            if written == n:
                break
            inputs = _payload(row)
            if inputs is None:
                continue
            pid = f"p{written}"
            record = {
                "id": pid,
                "inputs": inputs,
                "outputs": {},
                "quality": "high",
                "diagnosis_code": row["diagnosis"],
                "treatment_code": row["treatment"],
            }
            repository.save_predictions(session, [record])
            repository.add_feedback(
                session,
                prediction_id=pid,
                verdict="both_wrong",
                clinician_id="clin-x",
                corrected_diagnosis=rng.choice(diagnoses),
                corrected_treatment=rng.choice(treatments),
            )
            written += 1
    engine.dispose()
    return written


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
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["decision"] == "kept"
    assert result["n_feedback"] == n
    key = result["metric"]
    # Scored on the held-out set `make train` used: the champion's logged score, exactly.
    assert result["champion"][key] == pytest.approx(champion.metrics[key], abs=1e-12)
    assert result["challenger"][key] < result["champion"][key]
    assert aliased(uri) == (champion.diagnosis_version, champion.run_id)
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
        job = repository.get_retrain_job(session, result["job_id"])
        assert job is not None and job.status == "succeeded" and job.decision == "kept"
        assert job.executor == "cli" and job.scores["challenger_versions"]  # type: ignore[index]
    engine.dispose()
