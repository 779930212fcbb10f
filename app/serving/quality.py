"""Prediction quality from which contract fields a record lacks (DESIGN §4 tiers).

high: every critical and important field present; medium: critical present, important missing;
low: one or two critical missing; insufficient: three or more critical missing (no prediction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from train_pipeline.contract import ED_COHORT, TaskContract

Quality = Literal["high", "medium", "low", "insufficient"]

INSUFFICIENT_CRITICAL_MISSING = 3
"""Missing critical fields from which the service abstains (DESIGN §4)."""


@dataclass(frozen=True)
class QualityAssessment:
    """How far a record can be trusted, and which fields were absent.

    Attributes:
        quality: the DESIGN §4 tier.
        missing: absent critical, important and optional numeric (lab) fields, contract order.
        imputed: fields the pipeline will impute (absent numeric fields); empty when the
            quality is insufficient, because no model runs.
        missing_critical: the absent critical fields (the reason for low / insufficient).
    """

    quality: Quality
    missing: list[str]
    imputed: list[str]
    missing_critical: list[str]


@dataclass(frozen=True)
class _TierNames:
    critical: tuple[str, ...]
    important: tuple[str, ...]
    reported: tuple[str, ...]  # critical + important + optional numeric, contract order
    numeric: frozenset[str]


def _tier_names(task: TaskContract) -> _TierNames:
    numeric = frozenset(task.names_of("numeric", "integer"))
    reported = tuple(
        f.name
        for f in task.features
        if f.tier in ("critical", "important") or (f.tier == "optional" and f.name in numeric)
    )
    return _TierNames(
        critical=task.names_in_tier("critical"),
        important=task.names_in_tier("important"),
        reported=reported,
        numeric=numeric,
    )


_ED = _tier_names(ED_COHORT)


def assess(record: Mapping[str, Any], task: TaskContract = ED_COHORT) -> QualityAssessment:
    """Grade one canonical record (absent key, ``None`` and NaN count as missing, as the
    feature columns and the imputer see them)."""
    names = _ED if task is ED_COHORT else _tier_names(task)
    get = record.get
    missing = [n for n in names.reported if (v := get(n)) is None or v != v]  # NaN != NaN
    gone = set(missing)  # critical and important fields are all reported
    missing_critical = [n for n in names.critical if n in gone]
    quality: Quality
    if len(missing_critical) >= INSUFFICIENT_CRITICAL_MISSING:
        quality = "insufficient"
    elif missing_critical:
        quality = "low"
    elif not gone.isdisjoint(names.important):
        quality = "medium"
    else:
        quality = "high"
    imputed = [] if quality == "insufficient" else [n for n in missing if n in names.numeric]
    return QualityAssessment(quality, missing, imputed, missing_critical)


def assess_many(
    records: Sequence[Mapping[str, Any]],
    columns: Mapping[str, Any],
    task: TaskContract = ED_COHORT,
) -> list[QualityAssessment]:
    """`assess` of every record, from its feature columns (``app.serving.predictor.
    build_columns``: numbers as float arrays, NaN when absent).

    An assessment depends only on which reported fields are missing, so the records are grouped
    by that pattern (one NumPy pass) and each pattern is assessed once, on its first record
    (1,000 cohort records have 226 patterns: 1.4 vs 4.3 ms). Records with the same pattern
    share one assessment; its lists are shared too: read them only.
    """
    names = _ED if task is ED_COHORT else _tier_names(task)
    reported = names.reported
    if not records or len(reported) > 62 or not names.numeric.issuperset(reported):
        return [assess(r, task) for r in records]
    missing = np.column_stack([np.isnan(np.asarray(columns[n], dtype=float)) for n in reported])
    keys = missing @ (np.int64(1) << np.arange(len(reported), dtype=np.int64))
    first: dict[int, int] = {}  # pattern -> its first record (a dict: cheaper than np.unique)
    patterns = [first.setdefault(key, i) for i, key in enumerate(keys.tolist())]
    shared = {i: assess(records[i], task) for i in first.values()}
    return [shared[i] for i in patterns]
