"""Explanations made in a micro-batch (`app.serving.service._explain_batch`) are those made one
request at a time in a worker thread (`_explain`), for every model family: the same fields,
values and order; contributions equal to float rounding (summing the model's columns back onto
the fields is a matrix product, whose last bit may depend on the batch's size, as the
micro-batched probabilities' does)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.serving.service import EXPLAIN_TOP_N, _explain, _explain_batch
from train_pipeline.contract import ED_COHORT
from train_pipeline.data.generate import generate_cohort
from train_pipeline.fast_path.pipeline import FastPipeline
from train_pipeline.models.diagnosis import build_pipeline

SMALL = {
    "catboost": {"iterations": 30, "depth": 4},
    "xgboost": {"n_estimators": 20, "max_depth": 3},
    "logreg": {"max_iter": 200},
}


@dataclass(frozen=True)
class TinyBundle:
    """What the explanation reads of a `ModelBundle`: the diagnosis fast path."""

    diagnosis: FastPipeline


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return generate_cohort(600, seed=5)


@pytest.fixture(scope="module", params=list(SMALL))
def predictor(request: pytest.FixtureRequest, cohort: pd.DataFrame) -> Any:
    pipe = build_pipeline(ED_COHORT, request.param, SMALL[request.param], seed=0)
    y = pd.Series(pd.factorize(cohort["diagnosis"], sort=True)[0])
    pipe.fit(cohort[list(ED_COHORT.feature_names)], y)
    return SimpleNamespace(bundle=TinyBundle(FastPipeline.from_pipeline(pipe)))


def _records(cohort: pd.DataFrame, n: int) -> list[dict[str, Any]]:
    rows = cohort[list(ED_COHORT.feature_names)].head(n).to_dict("records")
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in rows
    ]


def test_batch_explanations_are_the_single_ones(predictor: Any, cohort: pd.DataFrame) -> None:
    records = _records(cohort, 8)
    asked = [True, True, False, True, True, True, False, True]
    diagnosed = [SimpleNamespace(diagnosis=None if i == 4 else object()) for i in range(8)]
    out = _explain_batch(predictor, list(zip(records, asked, strict=True)), diagnosed)
    kind = predictor.bundle.diagnosis.kind
    if kind == "xgboost":  # not cheap: left to the worker thread, per request
        assert out == [None] * 8
        return
    for i, record in enumerate(records):
        if not asked[i] or i == 4:  # not asked for, or no diagnosis (insufficient data)
            assert out[i] is None
        else:
            single = _explain(predictor, record, EXPLAIN_TOP_N)
            batch = out[i]
            assert batch is not None
            assert [(c["feature"], c["value"]) for c in batch] == [
                (c["feature"], c["value"]) for c in single
            ], (kind, i)
            assert [c["contribution"] for c in batch] == pytest.approx(
                [c["contribution"] for c in single], rel=1e-12, abs=1e-12
            ), (kind, i)
