"""A fitted `ClinicalFeatures` unpacked for serving: `ClinicalPlan`, built once per transformer.

All NEWS2 sub-scores of a block of rows in one `News2Block`, the missing-lab counts vectorised.
The plan is never pickled (`ServingPlanMixin`); tests hold it equal to the derived features' own
functions, float for float.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

import numpy as np

from train_pipeline.contract import Feature
from train_pipeline.features.derived import (
    NEWS2_PARAMETER_OF,
    NEWS2_PARTS,
    NUMERIC_KINDS,
    Columns,
    Engineered,
    _count_missing,
    _news2_part,
    news2_total,
)
from train_pipeline.features.news2 import News2Block


class FittedClinical(Protocol):
    """What a plan reads of a fitted `clinical.ClinicalFeatures` (which imports this module)."""

    features: tuple[Feature, ...]
    vocabulary_: dict[str, dict[str, int]]
    feature_names_out_: np.ndarray
    engineered_: list[Engineered]


def _index(positions: Sequence[int]) -> slice | np.ndarray:
    """Column positions as a slice when they are a contiguous run (cheaper to index with)."""
    if len(positions) and list(positions) == list(range(positions[0], positions[-1] + 1)):
        return slice(positions[0], positions[-1] + 1)
    return np.asarray(positions, dtype=np.intp)


class ClinicalPlan:
    """A fitted `ClinicalFeatures` unpacked for transforming: built once, then reused per call.

    Output columns: ``numeric`` (numbers and booleans), ``categorical`` codes, ``multilabel``
    flags (together the first ``raw_width`` columns), then the derived ones (``derive``).
    """

    def __init__(self, fitted: FittedClinical) -> None:
        features = fitted.features
        self.numeric = tuple(f.name for f in features if f.kind in NUMERIC_KINDS)
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
        counts vectorised, anything else through its own ``compute``."""
        position = {name: j for j, name in enumerate(self.numeric)}
        parts = [(out, src, fn) for out, src, fn in NEWS2_PARTS if src in position]
        chart = [NEWS2_PARAMETER_OF[src] for _, src, _ in parts]
        self.news2 = News2Block([position[src] for _, src, _ in parts], chart) if parts else None
        part_cols: list[int] = []
        part_sel: list[int] = []
        self.news2_total: int | None = None
        self.counts: list[tuple[int, np.ndarray]] = []
        self.generic: list[tuple[int, Callable[[Columns], np.ndarray]]] = []
        inputs: set[str] = set()
        for j, eng in enumerate(engineered, start=self.raw_width):
            c = eng.compute
            args = c.args if isinstance(c, partial) and not c.keywords else ()
            if isinstance(c, partial) and c.func is _news2_part and (eng.name, *args) in parts:
                part_cols.append(j)
                part_sel.append(parts.index((eng.name, *args)))
            elif c is news2_total and parts:
                self.news2_total = j
            elif (
                isinstance(c, partial)
                and c.func is _count_missing
                and len(args) == 1
                and all(n in position for n in args[0])
            ):
                where = [position[n] for n in args[0]]
                self.counts.append((j, np.array(where, np.intp)))
            else:
                self.generic.append((j, c))
                inputs.update(eng.sources)
        self.part_cols, self.part_sel = _index(part_cols), _index(part_sel)
        if not part_cols and self.news2_total is None:
            self.news2 = None
        self.inputs = tuple((n, position[n]) for n in self.numeric if n in inputs)

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
