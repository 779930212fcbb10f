"""Shared parts of the promotion tests: cohorts on disk, a champion registered like `make
train` does, the champion alias, a retrain job polled to its end, random corrections."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from mlflow import MlflowClient

from app.store import db, repository
from retrain import promote
from retrain.challenger import fit_challenger
from retrain.job import RetrainConfig
from tests.api.conftest import ADMIN
from tests.factories import _payload
from train_pipeline import register
from train_pipeline.bundle_meta import BundleMeta
from train_pipeline.contract import ED_COHORT
from train_pipeline.data.generate import generate_cohort
from train_pipeline.data.load import load_task_data
from train_pipeline.fitting import FitOptions
from train_pipeline.models.pipeline import DEFAULT_PARAMS
from train_pipeline.train import clean_frame

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
    """The champion's (version, run id); both registered models point at the same run."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = [client.get_model_version_by_alias(n, "champion") for n in NAMES.values()]
    assert versions[0].run_id == versions[1].run_id
    return str(versions[0].version), versions[0].run_id


async def wait_for_job(client: httpx.AsyncClient, url: str, timeout_s: float = 600) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = (await client.get(url, headers=ADMIN)).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        await asyncio.sleep(1.0)
    raise AssertionError(f"{url} did not finish within {timeout_s} s")


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
