"""Clean a loaded task frame before any split: duplicates, missing targets, impossible values."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from train_pipeline.contract import SYMPTOM_SEPARATOR, TaskContract

logger = logging.getLogger(__name__)


@dataclass
class CleanReport:
    """What `clean` changed (counts only, no patient values)."""

    rows_in: int = 0
    rows_out: int = 0
    duplicates_removed: int = 0
    missing_target_removed: int = 0
    out_of_range: dict[str, int] = field(default_factory=dict)
    unknown_categories: dict[str, int] = field(default_factory=dict)
    diastolic_not_below_systolic: int = 0

    @property
    def out_of_range_total(self) -> int:
        return sum(self.out_of_range.values())

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["out_of_range_total"] = self.out_of_range_total
        return out


def _target_names(task: TaskContract) -> list[str]:
    return [task.diagnosis.name] + ([task.treatment.name] if task.treatment else [])


def _clean_multilabel(col: pd.Series, allowed: set[str]) -> tuple[pd.Series, int]:
    unknown = 0

    def keep(cell: object) -> str:
        nonlocal unknown
        codes = [c.strip() for c in str(cell).split(SYMPTOM_SEPARATOR) if c.strip()]
        unknown += sum(c not in allowed for c in codes)
        return SYMPTOM_SEPARATOR.join(c for c in codes if c in allowed)

    return col.fillna("").map(keep), unknown


def clean(df: pd.DataFrame, task: TaskContract) -> tuple[pd.DataFrame, CleanReport]:
    """Drop exact duplicates and rows without a target; set out-of-contract values to NaN.

    Deduplication is on the features and targets together and happens before any split, so no
    copy of a row can sit on both sides of a train/test split. Values outside a feature's
    contract range, categories outside its allowed codes, and a diastolic BP not below the
    systolic become missing (imputed later), and are counted in the report.
    """
    report = CleanReport(rows_in=len(df))
    columns = [*task.feature_names, *_target_names(task)]
    out = df.loc[:, columns]
    dup = out.duplicated(keep="first")
    report.duplicates_removed = int(dup.sum())
    out = out.loc[~dup]
    no_target = out[_target_names(task)].isna().any(axis=1)
    report.missing_target_removed = int(no_target.sum())
    out = out.loc[~no_target].copy()
    for feat in task.features:
        col = out[feat.name]
        if feat.kind in ("numeric", "integer") and (
            feat.minimum is not None or feat.maximum is not None
        ):
            lo = -np.inf if feat.minimum is None else feat.minimum
            hi = np.inf if feat.maximum is None else feat.maximum
            bad = col.notna() & ~col.between(lo, hi)
            if bad.any():
                report.out_of_range[feat.name] = int(bad.sum())
                out.loc[bad, feat.name] = np.nan
        elif feat.kind == "categorical" and feat.categories:
            bad = col.notna() & ~col.isin(feat.categories)
            if bad.any():
                report.unknown_categories[feat.name] = int(bad.sum())
                out.loc[bad, feat.name] = np.nan
        elif feat.kind == "multilabel" and feat.categories:
            out[feat.name], unknown = _clean_multilabel(col, set(feat.categories))
            if unknown:
                report.unknown_categories[feat.name] = unknown
    if {"systolic_bp", "diastolic_bp"} <= set(task.feature_names):
        bad = out["diastolic_bp"] >= out["systolic_bp"]
        report.diastolic_not_below_systolic = int(bad.sum())
        out.loc[bad, "diastolic_bp"] = np.nan
    out = out.reset_index(drop=True)
    report.rows_out = len(out)
    logger.info("cleaned task data", extra={"task": task.name, **report.as_dict()})
    return out, report
