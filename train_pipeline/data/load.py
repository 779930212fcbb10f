"""Read a clinical CSV into a task's canonical columns, with clear errors for bad files.

Every cell is read as text, stripped of surrounding whitespace and tabs (`ckd`'s ``ckd\\t``),
matched against the missing-value markers, mapped through the config's value maps and the
contract's value aliases, then coerced to the feature's kind. The result has exactly the task's
feature columns plus its target column(s), named as the contract names them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from train_pipeline.contract import Feature, TaskContract
from train_pipeline.task_config import DEFAULT_NA_VALUES, FeatureConfig, TargetConfig, TaskConfig

logger = logging.getLogger(__name__)

TOLERATED_BAD_FRACTION = 0.05
_TRUE = {"true", "yes", "y", "t", "1"}
_FALSE = {"false", "no", "n", "f", "0"}


class DataError(ValueError):
    """A CSV does not fit its task (missing column, unparseable values, unknown classes)."""

    def __init__(self, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


def canonical_token(value: Any) -> str:
    """``" 1.0 "`` -> ``"1"``, ``"ckd\\t"`` -> ``"ckd"``: how raw cells are matched to maps."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if np.isfinite(number) and number.is_integer():
        return str(int(number))
    return text


def _read_text(path: Path, na_values: tuple[str, ...]) -> pd.DataFrame:
    if not Path(path).is_file():
        raise DataError(f"CSV not found: {path}")
    try:
        raw = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig"
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    markers = {m.strip() for m in na_values}
    stripped = raw.apply(lambda col: col.str.strip())
    return stripped.mask(stripped.isin(markers))


def _rename(df: pd.DataFrame, task: TaskContract, config: TaskConfig | None) -> pd.DataFrame:
    renames = config.all_renames() if config else {}
    for feat in task.features:  # contract aliases (camelCase, French names) for default tasks
        if feat.name not in df.columns:
            for alias in feat.all_aliases:
                if alias in df.columns and alias not in renames:
                    renames[alias] = feat.name
                    break
    return df.rename(columns=renames)


def _check_columns(df: pd.DataFrame, task: TaskContract, path: Path) -> None:
    targets = [task.diagnosis.name] + ([task.treatment.name] if task.treatment else [])
    for name in targets:
        if name not in df.columns:
            raise DataError(f"{path.name}: target column {name!r} is missing", column=name)
    missing = [name for name in task.feature_names if name not in df.columns]
    if missing:
        raise DataError(
            f"{path.name}: feature column(s) missing: {', '.join(missing)}", column=missing[0]
        )


def _to_number(col: pd.Series, feat: Feature, tolerated: float) -> pd.Series:
    text = col.astype("string")
    if feat.kind == "boolean":
        lowered = text.str.lower()
        text = text.mask(lowered.isin(_TRUE), "1").mask(lowered.isin(_FALSE), "0")
    values = pd.to_numeric(text, errors="coerce")
    bad = col.notna() & values.isna()
    if bad.any():
        share = bad.sum() / max(col.notna().sum(), 1)
        examples = ", ".join(repr(v) for v in col[bad].unique()[:3])
        if share > tolerated:
            raise DataError(
                f"column {feat.name!r} ({feat.kind}) has {bad.sum()} unparseable values "
                f"({share:.0%}), e.g. {examples}",
                column=feat.name,
            )
        logger.warning(
            "unparseable values set to missing",
            extra={"column": feat.name, "count": int(bad.sum())},
        )
    return values.astype(float)


def _map_values(col: pd.Series, mapping: dict[str, Any]) -> pd.Series:
    if not mapping:
        return col
    table = {canonical_token(k): v for k, v in mapping.items()}
    tokens = col.map(lambda v: canonical_token(v) if isinstance(v, str) else v)
    return tokens.map(lambda v: table.get(v, v) if isinstance(v, str) else v)


def _feature_column(
    col: pd.Series, feat: Feature, fcfg: FeatureConfig | None, tolerated: float
) -> pd.Series:
    if fcfg is not None:
        col = _map_values(col, fcfg.value_map)
        col = col.astype(object).where(col.notna(), None)
    if feat.kind == "categorical":
        aliases = {k.lower(): v for k, v in feat.value_aliases}
        col = col.map(
            lambda v: (
                aliases.get(canonical_token(v).lower(), canonical_token(v))
                if isinstance(v, str)
                else v
            )
        )
        return col.astype(object).where(col.notna(), np.nan)
    if feat.kind == "multilabel":
        return col.fillna("").astype(str)
    values = _to_number(col, feat, tolerated)
    if fcfg is not None:
        if fcfg.missing_values:
            values = values.mask(values.isin([float(v) for v in fcfg.missing_values]))
        if fcfg.scale is not None:
            values = values * fcfg.scale
    return values


def _target_column(
    col: pd.Series, target_name: str, codes: tuple[str, ...], tcfg: TargetConfig | None
) -> pd.Series:
    col = col.map(lambda v: canonical_token(v) if isinstance(v, str) else v)
    if tcfg is not None and tcfg.value_map:
        col = _map_values(col, tcfg.value_map)
    unknown = sorted(set(col.dropna()) - set(codes))
    if unknown:
        raise DataError(
            f"target column {target_name!r} has values outside its classes: {unknown[:5]} "
            f"(classes: {list(codes)})",
            column=target_name,
        )
    return col.astype(object).where(col.notna(), np.nan)


def load_task_data(
    path: Path | str, task: TaskContract, config: TaskConfig | None = None
) -> pd.DataFrame:
    """Load a CSV as the task's canonical frame (features + target columns).

    Args:
        path: the CSV file.
        task: the contract (``config.to_contract()`` for config tasks, `contract.ED_COHORT`
            for the default cohort).
        config: the task config (renames, missing markers, value maps); ``None`` for a CSV
            already in canonical columns.

    Raises:
        DataError: a target or feature column is missing, a numeric column cannot be parsed
            beyond the tolerated fraction, or a target holds unknown classes. The message and
            ``.column`` name the column.
    """
    path = Path(path)
    na_values = config.na_values if config else DEFAULT_NA_VALUES
    tolerated = config.tolerated_bad_fraction if config else TOLERATED_BAD_FRACTION
    df = _rename(_read_text(path, na_values), task, config)
    _check_columns(df, task, path)
    fcfgs = {f.name: f for f in config.features} if config else {}
    out = pd.DataFrame(index=df.index)
    for feat in task.features:
        out[feat.name] = _feature_column(df[feat.name], feat, fcfgs.get(feat.name), tolerated)
    targets = [(task.diagnosis, config.diagnosis if config else None)]
    if task.treatment is not None:
        targets.append((task.treatment, config.treatment if config else None))
    for target, tcfg in targets:
        out[target.name] = _target_column(df[target.name], target.name, target.codes, tcfg)
    logger.info("loaded task data", extra={"task": task.name, "rows": len(out)})
    return out
