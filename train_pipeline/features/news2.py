"""NEWS2 (RCP 2017): the one table of bands, read by the response's score and band
(`app.serving.rules`), its NEWS2 warnings, and the model's sub-score features (`derived`).

Every function works alike on one Python float and on a NumPy column, float for float.
"""

from __future__ import annotations

import dataclasses
import math
from bisect import bisect_left
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

# --- Rounding to the recorded precision ------------------------------------------------------
# Royal College of Physicians, National Early Warning Score (NEWS) 2, 2017, chart 1: the chart
# scores *recorded* values, whole numbers (respiration rate, SpO2, systolic BP, pulse; GCS) and
# temperature to one decimal. A value is first rounded HALF UP (towards +inf) to that precision,
# then looked up: HR 40.4 -> 40 -> 3 points, 40.5 -> 41 -> 1 point; 35.04 °C -> 35.0 -> 3,
# 35.05 °C -> 35.1 -> 1.
#
# How: ``floor(value * 10**decimals + 0.5 + RECORDING_TOLERANCE) / 10**decimals``, the same
# IEEE-754 operations in `recorded` (math) and `recorded_many` (NumPy), so both give the same
# float. 35.05 is 35.04999999999999716 in binary, but its product by 10 rounds to exactly 350.5
# (so do all two-decimal values 0.00-999.99, checked against `decimal.ROUND_HALF_UP` on their
# text); the tolerance, a millionth of the recorded unit, keeps a half that arrives a few ulps
# short (a computed value, e.g. a unit conversion) rounding up. Values within it of a half
# round up too: no vital is recorded that finely.
RECORDING_TOLERANCE = 1e-6
_HALF = 0.5 + RECORDING_TOLERANCE


def recorded(value: float, decimals: int) -> float:
    """`value` as the chart records it: rounded half up to `decimals` (NaN and inf unchanged)."""
    scale = 10.0**decimals
    shifted = value * scale + _HALF
    if not math.isfinite(shifted):
        return shifted / scale  # what np.floor leaves of inf / NaN
    return math.floor(shifted) / scale


def recorded_many(values: np.ndarray, decimals: int | np.ndarray) -> np.ndarray:
    """`recorded` of every element (``decimals`` may be one per column, broadcast)."""
    scale = 10.0 ** np.asarray(decimals, dtype=float)
    return np.asarray(np.floor(values * scale + _HALF) / scale, dtype=float)


# --- The chart --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class News2Parameter:
    """One row of the chart: the contract field, its recorded precision, its bands.

    ``uppers`` are the inclusive upper bounds of every band but the last, on recorded values;
    ``points[i]`` scores ``uppers[i-1] < recorded <= uppers[i]`` (``len(points) = len(uppers)+1``).
    """

    field: str
    decimals: int
    uppers: tuple[float, ...]
    points: tuple[int, ...]
    _uppers: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)
    _points: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.points) != len(self.uppers) + 1 or list(self.uppers) != sorted(self.uppers):
            raise ValueError(f"NEWS2 {self.field}: bands out of order or points miscounted")
        object.__setattr__(self, "_uppers", np.asarray(self.uppers, dtype=float))
        object.__setattr__(self, "_points", np.asarray(self.points, dtype=float))

    def score(self, value: float) -> float:
        """Points of one value (NaN: missing, NaN returned)."""
        if value != value:
            return math.nan
        return float(self.points[bisect_left(self.uppers, recorded(value, self.decimals))])

    def scores(self, values: np.ndarray) -> np.ndarray:
        """`score` of every element of a float column."""
        values = np.asarray(values, dtype=float)
        index = np.searchsorted(self._uppers, recorded_many(values, self.decimals), side="left")
        out = self._points[index]
        out[np.isnan(values)] = np.nan
        return out


# RCP 2017 chart 1, SpO2 scale 1 (the record has no hypercapnic-failure flag).
RESPIRATORY_RATE = News2Parameter("respiratory_rate", 0, (8, 11, 20, 24), (3, 1, 0, 2, 3))
"""RR <=8: 3, 9-11: 1, 12-20: 0, 21-24: 2, >=25: 3 (breaths/min)."""
SPO2_SCALE1 = News2Parameter("spo2", 0, (91, 93, 95), (3, 2, 1, 0))
"""SpO2 scale 1: <=91: 3, 92-93: 2, 94-95: 1, >=96: 0 (%)."""
SYSTOLIC_BP = News2Parameter("systolic_bp", 0, (90, 100, 110, 219), (3, 2, 1, 0, 3))
"""SBP <=90: 3, 91-100: 2, 101-110: 1, 111-219: 0, >=220: 3 (mmHg)."""
PULSE = News2Parameter("heart_rate", 0, (40, 50, 90, 110, 130), (3, 1, 0, 1, 2, 3))
"""Pulse <=40: 3, 41-50: 1, 51-90: 0, 91-110: 1, 111-130: 2, >=131: 3 (/min)."""
TEMPERATURE = News2Parameter("temperature", 1, (35.0, 36.0, 38.0, 39.0), (3, 1, 0, 1, 2))
"""Temperature <=35.0: 3, 35.1-36.0: 1, 36.1-38.0: 0, 38.1-39.0: 1, >=39.1: 2 (°C)."""
CONSCIOUSNESS = News2Parameter("glasgow", 0, (14,), (3, 0))
"""ACVPU: Alert 0, new confusion or V/P/U 3; from the Glasgow scale, GCS < 15 = not Alert."""

NEWS2_VITALS = (RESPIRATORY_RATE, SPO2_SCALE1, SYSTOLIC_BP, PULSE, TEMPERATURE)
"""Without any of these there is no aggregate score; an absent GCS is scored Alert."""
NEWS2_PARAMETERS = (*NEWS2_VITALS, CONSCIOUSNESS)
NEWS2_AIR_POINTS = 0  # "air" scores 0, supplemental oxygen 2: the record has no oxygen field.
NEWS2_RED_POINTS = 3  # a "red score": 3 points in a single parameter


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


# --- Aggregate bands (RCP 2017 "clinical risk") ------------------------------------------------
# 0-4 low; a red score of 3 in any single parameter (aggregate 0-4) low-medium; 5-6 medium
# (urgent response); >= 7 high (emergency response).
News2Band = Literal["low", "low-medium", "medium", "high"]
NEWS2_BANDS: tuple[News2Band, ...] = get_args(News2Band)
"""Every band the response can carry (or null when a vital sign is missing)."""
NEWS2_MEDIUM = 5
NEWS2_HIGH = 7


def news2_band(score: float, red: bool) -> News2Band:
    """Clinical-risk band of an aggregate `score`; `red`: some parameter scored 3."""
    if score >= NEWS2_HIGH:
        return "high"
    if score >= NEWS2_MEDIUM:
        return "medium"
    return "low-medium" if red else "low"


def news2_bands(scores: np.ndarray, red: np.ndarray) -> np.ndarray:
    """`news2_band` of every element (an array of band strings)."""
    return np.where(
        scores >= NEWS2_HIGH,
        "high",
        np.where(scores >= NEWS2_MEDIUM, "medium", np.where(red, "low-medium", "low")),
    )
