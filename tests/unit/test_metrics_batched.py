"""`observe_predictions` (batched) exports exactly what per-record `observe_prediction` does."""

from __future__ import annotations

import random

from prometheus_client.parser import text_string_to_metric_families

from app.monitoring import metrics

CODES = [("pneumonia", "iv_antibiotics_admit"), ("uti", "oral_antibiotics"), (None, None)]
QUALITIES = ["high", "medium", "low", "insufficient"]


def _prediction_samples() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    body, _ = metrics.render()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name.startswith(("healthpredict_predictions", "healthpredict_prediction_quality"))
        and not s.name.endswith("_created")  # creation timestamps differ by design
    }


def test_batched_counts_equal_per_record_counts() -> None:
    rng = random.Random(7)
    outcomes = [(*rng.choice(CODES), rng.choice(QUALITIES)) for _ in range(1000)]
    metrics.reset_for_tests()
    for diagnosis, treatment, quality in outcomes:
        metrics.observe_prediction(diagnosis, treatment, quality, "3")
    one_by_one = _prediction_samples()
    metrics.reset_for_tests()
    metrics.observe_predictions(outcomes, "3")
    batched = _prediction_samples()
    metrics.reset_for_tests()
    assert one_by_one, "no prediction series exported"
    assert batched == one_by_one
    assert sum(v for (name, _), v in batched.items() if name.endswith("quality_total")) == 1000
