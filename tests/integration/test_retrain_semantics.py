"""Retraining's decision rule, with real MLflow (SQLite store), real training and `run_retrain`:

- a challenger that wins by less than a positive margin is kept out, and the same challenger
  is promoted when the margin is below its gain;
- a lower-is-better metric (log loss) promotes the challenger whose loss is LOWER;
- a non-finite score never promotes (either side), whatever the margin or direction.

The champion is deliberately weak (20 boosting rounds); the challenger refits the same rows with
more rounds, so it is better by an amount measured in the first retrain (retrains are seeded and
deterministic: the same config gives the same challenger scores).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from retrain.job import RetrainConfig, run_retrain
from retrain.promote import challenger_wins
from tests.integration._promotion import aliased, write_cohort
from train_pipeline.contract import ED_COHORT
from train_pipeline.data.load import load_task_data
from train_pipeline.train import train

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_margin_and_lower_is_better_decide_with_real_models(tmp_path: Path) -> None:
    data = tmp_path / "cohort.csv"
    write_cohort(data, 700, 31)
    uri, home = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "bentoml"
    weak = train(
        frame=load_task_data(data, ED_COHORT),
        tracking_uri=uri,
        bentoml_home=home,
        iterations=20,
        threads=1,
        cv_folds=1,
    )
    config = RetrainConfig(
        data_path=data, tracking_uri=uri, bentoml_home=home, params={"iterations": 150}, threads=1
    )
    # 1. a positive margin larger than the challenger's gain keeps the champion
    kept = run_retrain(replace(config, metric="f1_macro", margin=0.5), [])
    key = kept.metric
    gain = float(kept.challenger_scores[key]) - float(kept.champion_scores[key])  # type: ignore[arg-type]
    assert 0 < gain < 0.5, gain
    assert kept.decision == "kept"
    assert "does not win" in kept.reason
    assert kept.gate_passed
    assert aliased(uri)[1] == weak.run_id
    # 2. log loss, lower is better: the stronger challenger has the lower loss and is promoted
    by_loss = run_retrain(replace(config, metric="log_loss", margin=0.0), [])
    champ_ll = by_loss.champion_scores["diagnosis_log_loss"]
    chall_ll = by_loss.challenger_scores["diagnosis_log_loss"]
    assert champ_ll is not None and chall_ll is not None
    assert chall_ll < champ_ll
    assert by_loss.decision == "promoted", by_loss.reason
    assert aliased(uri)[1] == by_loss.challenger_run_id
    # the same challenger scores on f1_macro as in 1 (deterministic), so a margin below its
    # gain would have promoted it: the margin, not chance, kept it out in 1
    assert by_loss.challenger_scores[key] == pytest.approx(kept.challenger_scores[key])
    assert challenger_wins(
        float(kept.champion_scores[key]),  # type: ignore[arg-type]
        float(kept.challenger_scores[key]),  # type: ignore[arg-type]
        key,
        gain / 2,
    )


@pytest.mark.parametrize("metric", ["diagnosis_f1_macro", "diagnosis_log_loss"])
@pytest.mark.parametrize(
    ("champion", "challenger"),
    [
        (0.5, math.nan),
        (math.nan, 0.5),
        (math.nan, math.nan),
        (0.5, math.inf),
        (0.5, -math.inf),
        (math.inf, 0.5),
        (-math.inf, 0.5),
    ],
)
def test_non_finite_scores_never_promote(metric: str, champion: float, challenger: float) -> None:
    for margin in (-1.0, 0.0, 0.02):
        assert not challenger_wins(champion, challenger, metric, margin)


@pytest.mark.parametrize(
    ("metric", "champion", "challenger", "margin", "wins"),
    [
        ("diagnosis_f1_macro", 0.80, 0.81, 0.02, False),  # wins by less than the margin
        ("diagnosis_f1_macro", 0.80, 0.83, 0.02, True),
        ("diagnosis_f1_macro", 0.80, 0.80, 0.0, False),  # a tie is not a win
        ("diagnosis_log_loss", 0.50, 0.40, 0.02, True),  # lower loss wins
        ("diagnosis_log_loss", 0.40, 0.50, 0.02, False),  # higher loss never does
        ("diagnosis_log_loss", 0.50, 0.49, 0.02, False),  # lower, but by less than the margin
        ("treatment_calibration_error", 0.10, 0.05, 0.0, True),
    ],
)
def test_margin_and_direction(
    metric: str, champion: float, challenger: float, margin: float, wins: bool
) -> None:
    assert challenger_wins(champion, challenger, metric, margin) is wins
