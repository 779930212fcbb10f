"""Prediction quality tiers (DESIGN §4), driven by the contract's tiers."""

from __future__ import annotations

from typing import Any

import pytest

from app.serving.quality import assess
from train_pipeline.contract import ED_COHORT

CRITICAL = ED_COHORT.names_in_tier("critical")
IMPORTANT = ED_COHORT.names_in_tier("important")
LABS = tuple(
    f.name for f in ED_COHORT.features if f.tier == "optional" and f.kind in ("numeric", "integer")
)


def full_record() -> dict[str, Any]:
    rec: dict[str, Any] = {}
    for f in ED_COHORT.features:
        if f.kind in ("numeric", "integer"):
            rec[f.name] = f.minimum if f.minimum is not None else 1
        elif f.kind == "categorical":
            rec[f.name] = f.categories[0]
        elif f.kind == "multilabel":
            rec[f.name] = []
        else:
            rec[f.name] = False
    return rec


# (id, critical fields dropped, important fields dropped, expected tier)
TIERS = [
    ("complete", 0, 0, "high"),
    ("one_important_missing", 0, 1, "medium"),
    ("all_important_missing", 0, len(IMPORTANT), "medium"),
    ("one_critical_missing", 1, 0, "low"),
    ("two_critical_missing", 2, 0, "low"),
    ("two_critical_and_important_missing", 2, len(IMPORTANT), "low"),
    ("three_critical_missing", 3, 0, "insufficient"),
    ("all_critical_missing", len(CRITICAL), len(IMPORTANT), "insufficient"),
]


@pytest.mark.parametrize(
    ("n_crit", "n_imp", "tier"), [t[1:] for t in TIERS], ids=[t[0] for t in TIERS]
)
@pytest.mark.parametrize("how", ["absent", "none"])
def test_tier(n_crit: int, n_imp: int, tier: str, how: str) -> None:
    rec = full_record()
    dropped = [*CRITICAL[:n_crit], *IMPORTANT[:n_imp]]
    for name in dropped:
        if how == "absent":
            del rec[name]
        else:
            rec[name] = None
    result = assess(rec)
    assert result.quality == tier
    assert result.missing == dropped  # contract order, critical before important
    assert result.missing_critical == list(CRITICAL[:n_crit])
    assert result.imputed == ([] if tier == "insufficient" else dropped)


def test_tier_depends_on_which_critical_fields_not_position() -> None:
    rec = full_record()
    for name in CRITICAL[-3:]:
        del rec[name]
    assert assess(rec).quality == "insufficient"


def test_missing_optional_labs_are_reported_and_imputed_but_keep_quality_high() -> None:
    rec = full_record()
    for name in LABS:
        del rec[name]
    result = assess(rec)
    assert result.quality == "high"
    assert result.missing == list(LABS)
    assert result.imputed == list(LABS)


def test_booleans_and_symptoms_are_never_missing() -> None:
    rec = {
        name: rec_value
        for name, rec_value in full_record().items()
        if ED_COHORT.feature(name).kind in ("numeric", "integer", "categorical")
    }
    result = assess(rec)
    assert result.quality == "high"
    assert result.missing == []


def test_zero_is_a_value_not_missing() -> None:
    rec = full_record()
    rec["pain_scale"] = 0
    assert "pain_scale" not in assess(rec).missing
