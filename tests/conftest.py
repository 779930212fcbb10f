"""Shared fixtures. The expensive one is `trained_store`: a tiny real bundle, trained once.

`trained_store` trains the default task (a few thousand generated rows, a few dozen trees) into
a temporary SQLite MLflow store and a temporary BentoML home, through the real `train(...)`:
both models registered with alias ``champion``, both saved to BentoML. Tests that need a model
(API, retraining, loader) take it and read the store through the returned paths; they must not
move the champion alias of this shared store (train a store of their own for that).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

TINY_ROWS = 2000
TINY_TREES = 30
TINY_SEED = 7


@dataclass(frozen=True)
class TrainedStore:
    """Where the session's tiny trained bundle lives.

    Attributes:
        tracking_uri: ``sqlite:///…/mlflow.db`` (registry too); artifacts in ``…/mlruns``.
        bentoml_home: the BentoML home holding both models (already made current).
        run_id: the MLflow run of both pipelines.
        diagnosis_version / treatment_version: registered versions (alias ``champion``).
        data_path: the generated CSV it was trained on (canonical columns).
    """

    tracking_uri: str
    bentoml_home: Path
    run_id: str
    diagnosis_version: str
    treatment_version: str
    data_path: Path


@pytest.fixture(scope="session")
def cohort_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated cohort CSV (canonical columns), written once per session."""
    from train_pipeline.data.generate import write_cohort

    path = tmp_path_factory.mktemp("cohort") / "cohort.csv"
    return write_cohort(path, n_rows=TINY_ROWS, seed=TINY_SEED)


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory, cohort_csv: Path) -> TrainedStore:
    """Train the tiny default-task bundle once per session (about 30-60 s on 2 cores)."""
    from train_pipeline.train import train

    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    result = train(
        data_path=cohort_csv,
        tracking_uri=uri,
        bentoml_home=root / "bentoml_home",
        seed=TINY_SEED,
        iterations=TINY_TREES,
        threads=1,
        calibration="none",  # every fast path on; calibrated bundles have tests of their own
    )
    assert result.diagnosis_version and result.treatment_version
    return TrainedStore(
        tracking_uri=uri,
        bentoml_home=root / "bentoml_home",
        run_id=result.run_id,
        diagnosis_version=result.diagnosis_version,
        treatment_version=result.treatment_version,
        data_path=cohort_csv,
    )
