"""A fitted `ClinicalFeatures` unpacked for serving: `ClinicalPlan`, built once per transformer.

All NEWS2 sub-scores of a block of rows in one `News2Block`, and, for a few records,
plain-Python rows (`News2Parameter.score`, `ROW_FORMULAS`), since per-call NumPy overhead
dominates single rows. The plan is never pickled (`ServingPlanMixin`); tests hold every path
equal to the NumPy columns path, float for float.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from itertools import chain
from typing import Any, Protocol, cast

import numpy as np

from train_pipeline.contract import Feature
from train_pipeline.features.derived import (
    AGE_BAND_EDGES,
    NEWS2_PARAMETER_OF,
    NEWS2_PARTS,
    NUMERIC_KINDS,
    Columns,
    Engineered,
    _age_band_of,
    _codes_of,
    _count_missing,
    _is_missing,
    _map,
    _news2_part,
    _pulse_pressure,
    _shock_index,
    news2_total,
)
from train_pipeline.features.news2 import News2Parameter, recorded_many


class FittedClinical(Protocol):
    """What a plan reads of a fitted `clinical.ClinicalFeatures` (which imports this module)."""

    features: tuple[Feature, ...]
    vocabulary_: dict[str, dict[str, int]]
    feature_names_out_: np.ndarray
    engineered_: list[Engineered]


# The same formulas on plain floats (NaN: missing), for `transform_records` on a few rows; the
# sources come in the `Engineered` order. A test holds each equal to its NumPy version.
def _map_row(sbp: float, dbp: float) -> float:
    return (sbp + 2 * dbp) / 3


def _shock_index_row(hr: float, sbp: float) -> float:
    if sbp:  # NaN included
        return hr / sbp
    return float(np.float64(hr) / np.float64(sbp))  # inf / nan (and NumPy's warning)


def _pulse_pressure_row(sbp: float, dbp: float) -> float:
    return sbp - dbp


def _age_band_row(age: float) -> float:
    return math.nan if age != age else float(bisect_right(_AGE_BAND_EDGES, age))


_AGE_BAND_EDGES = AGE_BAND_EDGES.tolist()
ROW_FORMULAS: dict[Callable[[Columns], np.ndarray], Callable[..., float]] = {
    _map: _map_row,
    _shock_index: _shock_index_row,
    _pulse_pressure: _pulse_pressure_row,
    _age_band_of: _age_band_row,
}


def _index(positions: Sequence[int]) -> slice | np.ndarray:
    """Column positions as a slice when they are a contiguous run (cheaper to index with)."""
    if len(positions) and list(positions) == list(range(positions[0], positions[-1] + 1)):
        return slice(positions[0], positions[-1] + 1)
    return np.asarray(positions, dtype=np.intp)


class News2Block:
    """Every NEWS2 sub-score (and their total) of a block of rows in a dozen NumPy calls.

    The same numbers as `News2Parameter.scores` and `news2_total`: the vitals are rounded to
    their recorded precision together (`recorded_many`, one ``decimals`` per column), then each
    band index is the count of upper bounds below the recorded value, the bounds padded with
    +inf so that the six vitals share one comparison.

    Args:
        sources: position of each NEWS2 vital in the numeric block, `NEWS2_PARTS` order.
        parameters: their chart rows.
    """

    def __init__(self, sources: Sequence[int], parameters: Sequence[News2Parameter]) -> None:
        width = max(len(p.uppers) for p in parameters)
        self.sources = np.asarray(sources, dtype=np.intp)
        self.decimals = np.array([p.decimals for p in parameters])
        self.bounds = np.full((len(parameters), width), np.inf)
        points = np.zeros((len(parameters), width + 1))
        for k, p in enumerate(parameters):
            self.bounds[k, : len(p.uppers)] = p.uppers
            points[k, : len(p.points)] = p.points
        self.points = points.ravel()  # band k of vital i at i * (width + 1) + k
        self.offsets = np.arange(len(parameters)) * (width + 1)

    def scores(self, numeric: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, parts) sub-scores, NaN where the vital is missing, and (n,) their NaN-as-0 total."""
        values = recorded_many(numeric.take(self.sources, axis=1), self.decimals)
        index = np.add.reduce(values[:, :, None] > self.bounds, axis=2, dtype=np.intp)
        scores = self.points.take(index + self.offsets)
        missing = np.isnan(values)
        total = np.add.reduce(np.where(missing, 0.0, scores), axis=1)  # small integers: exact
        scores[missing] = np.nan
        return scores, total


class ClinicalPlan:
    """A fitted `ClinicalFeatures` unpacked for transforming: built once, then reused per call.

    Output columns: ``numeric`` (numbers and booleans), ``categorical`` codes, ``multilabel``
    flags (together the first ``raw_width`` columns), then the derived ones (``derive``).
    """

    def __init__(self, fitted: FittedClinical) -> None:
        features = fitted.features
        self.numeric = tuple(f.name for f in features if f.kind in NUMERIC_KINDS)
        self.booleans = tuple(
            (j, bool(f.default))
            for j, f in enumerate(f for f in features if f.kind in NUMERIC_KINDS)
            if f.kind == "boolean"
        )
        self.categorical = tuple(
            (f.name, fitted.vocabulary_[f.name]) for f in features if f.kind == "categorical"
        )
        self.multilabel = tuple(
            (f.name, {code: i for i, code in enumerate(f.categories)})
            for f in features
            if f.kind == "multilabel"
        )
        self.raw_width = (
            len(self.numeric)
            + len(self.categorical)
            + sum(len(index) for _, index in self.multilabel)
        )
        self.width = len(fitted.feature_names_out_)
        if self.raw_width + len(fitted.engineered_) != self.width:
            raise ValueError("fitted ClinicalFeatures: output names do not match its layout")
        self._derived(fitted.engineered_)

    def _derived(self, engineered: Sequence[Engineered]) -> None:
        """Group the derived features: NEWS2 parts and total in one `News2Block`, missing-lab
        counts vectorised, anything else through its own ``compute``. ``row_steps`` compute
        them on plain floats instead (None: a derived feature has no such form)."""
        position = {name: j for j, name in enumerate(self.numeric)}
        parts = [(out, src, fn) for out, src, fn in NEWS2_PARTS if src in position]
        chart = [NEWS2_PARAMETER_OF[src] for _, src, _ in parts]
        self.news2 = News2Block([position[src] for _, src, _ in parts], chart) if parts else None
        self.news2_rows = [(position[src], p) for (_, src, _), p in zip(parts, chart, strict=True)]
        part_cols: list[int] = []
        part_sel: list[int] = []
        self.news2_total: int | None = None
        self.counts: list[tuple[int, np.ndarray]] = []
        self.generic: list[tuple[int, Callable[[Columns], np.ndarray]]] = []
        row_steps: list[_RowStep | None] = []
        inputs: set[str] = set()
        for j, eng in enumerate(engineered, start=self.raw_width):
            c = eng.compute
            args = c.args if isinstance(c, partial) and not c.keywords else ()
            if isinstance(c, partial) and c.func is _news2_part and (eng.name, *args) in parts:
                part_cols.append(j)
                part_sel.append(parts.index((eng.name, *args)))
                row_steps.append(partial(_part_step, part_sel[-1]))
            elif c is news2_total and parts:
                self.news2_total = j
                row_steps.append(_total_step)
            elif (
                isinstance(c, partial)
                and c.func is _count_missing
                and len(args) == 1
                and all(n in position for n in args[0])
            ):
                where = [position[n] for n in args[0]]
                self.counts.append((j, np.array(where, np.intp)))
                row_steps.append(partial(_count_step, where))
            else:
                self.generic.append((j, c))
                inputs.update(eng.sources)
                formula = ROW_FORMULAS.get(c)
                where = [position.get(n, -1) for n in eng.sources]
                if formula is None or -1 in where:
                    row_steps.append(None)
                else:
                    row_steps.append(partial(_formula_step, formula, where))
        self.part_cols, self.part_sel = _index(part_cols), _index(part_sel)
        if not part_cols and self.news2_total is None:
            self.news2, self.news2_rows = None, []
        self.inputs = tuple((n, position[n]) for n in self.numeric if n in inputs)
        self.row_steps = None if None in row_steps else cast(list[_RowStep], row_steps)

    def derive(self, out: np.ndarray) -> None:
        """Fill the derived columns of ``out`` from its numeric block."""
        numeric = out[:, : len(self.numeric)]
        if self.news2 is not None:
            scores, total = self.news2.scores(numeric)
            out[:, self.part_cols] = scores[:, self.part_sel]
            if self.news2_total is not None:
                out[:, self.news2_total] = total
        for j, positions in self.counts:
            out[:, j] = np.add.reduce(
                np.isnan(numeric.take(positions, axis=1)), axis=1, dtype=np.intp
            )
        if self.generic:
            cols = {name: numeric[:, k] for name, k in self.inputs}
            for j, compute in self.generic:
                out[:, j] = compute(cols)

    def fill(self, out: np.ndarray, records: Sequence[Mapping[str, Any]]) -> None:
        """Write the records' raw columns into ``out`` (valued as `transform_records` says).

        Numbers and codes go through one `np.fromiter` over all rows; multi-hot flags are
        zeroed, then set by position.
        """
        n, fixed = len(records), len(self.numeric) + len(self.categorical)
        values = chain.from_iterable(self._values(r) for r in records)
        out[:, :fixed] = np.fromiter(values, dtype=float, count=n * fixed).reshape(n, fixed)
        out[:, fixed : self.raw_width] = 0.0
        rows: list[int] = []
        cols: list[int] = []
        for i, r in enumerate(records):
            hot = self._hot(r)
            rows += [i] * len(hot)
            cols += hot
        out[rows, cols] = 1.0

    def row(self, record: Mapping[str, Any]) -> list[Any]:
        """One record's whole output row in plain Python (requires ``row_steps``)."""
        values = self._values(record)
        n = len(self.numeric)
        num = [math.nan if v is None else float(v) for v in values[:n]]
        flags = [0.0] * (self.raw_width - len(values))
        for j in self._hot(record):
            flags[j - len(values)] = 1.0
        sub = [b.score(num[j]) for j, b in self.news2_rows]
        derived = [step(num, sub) for step in self.row_steps or ()]
        return num + values[n:] + flags + derived

    def _values(self, record: Mapping[str, Any]) -> list[Any]:
        """Numbers (booleans defaulted; None for missing) and categorical codes."""
        get = record.get
        row: list[Any] = [get(name) for name in self.numeric]
        for j, default in self.booleans:
            value = row[j]
            row[j] = default if value is None else bool(value)
        for name, vocab in self.categorical:
            v = get(name)
            row.append(
                np.nan if _is_missing(v) else vocab.get(v if isinstance(v, str) else str(v), np.nan)
            )
        return row

    def _hot(self, record: Mapping[str, Any]) -> list[int]:
        """Output columns of the record's multi-hot flags."""
        hot: list[int] = []
        start = len(self.numeric) + len(self.categorical)
        for name, index in self.multilabel:
            for code in _codes_of(record.get(name) or ()):
                k = index.get(code)
                if k is not None:
                    hot.append(start + k)
            start += len(index)
        return hot


_RowStep = Callable[[list[float], list[float]], float]
"""A derived feature on plain floats: (numeric row, NEWS2 sub-scores) -> value."""


def _part_step(k: int, num: list[float], sub: list[float]) -> float:
    return sub[k]


def _total_step(num: list[float], sub: list[float]) -> float:
    return float(sum(p for p in sub if p == p))  # small integers: exact in any order


def _count_step(where: list[int], num: list[float], sub: list[float]) -> float:
    return float(sum(num[j] != num[j] for j in where))


def _formula_step(
    formula: Callable[..., float], where: list[int], num: list[float], sub: list[float]
) -> float:
    return formula(*[num[j] for j in where])
