"""Treatment features from the diagnosis features: one raw transform per request, not two.

The treatment pipeline takes the patient's fields plus the predicted ``diagnosis``; its raw
feature matrix is the diagnosis pipeline's with one extra column (the diagnosis code). Rather
than relying on the transformers' column layout, `SharedFeatures.probe` *finds* that column on
probe records at load time and verifies the identity for every diagnosis code; when anything
differs it returns None and the predictor keeps the full (two-transform) path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from train_pipeline.fast_path.pipeline import FastPipeline
from train_pipeline.models.treatment import DIAGNOSIS_COLUMN


@dataclass(frozen=True)
class SharedFeatures:
    """Where the diagnosis code goes in the treatment's raw matrix, and its value per code."""

    position: int
    code_value: Mapping[str, float]

    def treatment_raw(self, diag_raw: np.ndarray, diag_codes: Sequence[str]) -> np.ndarray:
        return self.insert(diag_raw, self.code_values(diag_codes))

    def insert(self, diag_raw: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``np.insert(diag_raw, position, values, axis=1)`` with three slice copies."""
        n, width = diag_raw.shape
        p = self.position
        out = np.empty((n, width + 1))
        out[:, :p] = diag_raw[:, :p]
        out[:, p] = values
        out[:, p + 1 :] = diag_raw[:, p:]
        return out

    def code_values(self, codes: Sequence[str]) -> np.ndarray:
        """The inserted value of each code, as an array to index with class numbers."""
        return np.array([self.code_value[c] for c in codes], dtype=float)

    @classmethod
    def probe(
        cls,
        diagnosis: FastPipeline,
        treatment: FastPipeline,
        codes: Sequence[str],
        probe_cols: Mapping[str, Any],
    ) -> SharedFeatures | None:
        """Find and verify the insertion on ``probe_cols`` (several rows, some values missing)."""
        try:
            d_raw = diagnosis.features.transform_columns(probe_cols)
            n = d_raw.shape[0]
            t_raws = {
                c: treatment.features.transform_columns({**probe_cols, DIAGNOSIS_COLUMN: [c] * n})
                for c in codes
            }
        except Exception:  # pragma: no cover - a layout we do not understand: full path
            return None
        if not codes or any(t.shape != (n, d_raw.shape[1] + 1) for t in t_raws.values()):
            return None
        stacked = np.stack(list(t_raws.values()))  # (codes, rows, cols)
        varying = [
            j
            for j in range(stacked.shape[2])
            if not np.allclose(stacked[:, :, j], stacked[0, :, j], equal_nan=True)
        ]
        if len(codes) > 1 and len(varying) != 1:
            return None
        position = varying[0] if varying else _only_insertion(d_raw, t_raws[codes[0]])
        if position is None:
            return None
        code_value = {c: float(t[0, position]) for c, t in t_raws.items()}
        shared = cls(position, code_value)
        for c, t in t_raws.items():
            if not np.allclose(shared.treatment_raw(d_raw, [c] * n), t, equal_nan=True):
                return None
        return shared


def _only_insertion(d_raw: np.ndarray, t_raw: np.ndarray) -> int | None:
    for j in range(t_raw.shape[1]):
        if np.allclose(np.delete(t_raw, j, axis=1), d_raw, equal_nan=True):
            return j
    return None
