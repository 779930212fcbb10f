"""Diagnosis -> allowed treatments: learned from training data, enforced at prediction time.

`coherent_choice` is the one implementation used by evaluation and by the API, so an incoherent
pair (e.g. thrombolysis for pneumonia) can never be returned whatever the raw scores say.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

AllowedPairs = dict[str, list[str]]


def learn_allowed_pairs(
    diagnoses: Iterable[str],
    treatments: Iterable[str],
    min_count: int = 3,
    min_share: float = 0.01,
) -> AllowedPairs:
    """Treatments seen with each diagnosis at least `min_count` times and `min_share` of its rows.

    The thresholds drop label noise (a handful of implausible pairs) while keeping every
    treatment the data really uses; a diagnosis always keeps its most frequent treatment.
    """
    counts: dict[str, dict[str, int]] = {}
    for diag, treat in zip(diagnoses, treatments, strict=True):
        if diag is None or treat is None:
            continue
        row = counts.setdefault(str(diag), {})
        row[str(treat)] = row.get(str(treat), 0) + 1
    allowed: AllowedPairs = {}
    for diag, row in counts.items():
        total = sum(row.values())
        keep = [t for t, n in row.items() if n >= min_count and n / total >= min_share]
        top = max(row, key=lambda t: row[t])
        allowed[diag] = sorted(set(keep) | {top})
    return dict(sorted(allowed.items()))


def merge_overrides(
    learned: Mapping[str, Sequence[str]],
    overrides: Iterable[tuple[str, Sequence[str]]] | Mapping[str, Sequence[str]],
) -> AllowedPairs:
    """The task config's `allowed_pairs` replace the learned row of each diagnosis they name."""
    items = overrides.items() if isinstance(overrides, Mapping) else overrides
    merged = {d: list(t) for d, t in learned.items()}
    for diag, treats in items:
        merged[str(diag)] = sorted(str(t) for t in treats)
    return dict(sorted(merged.items()))


def allowed_mask(
    diag_codes: Sequence[str],
    treatment_classes: Sequence[str],
    allowed: Mapping[str, Sequence[str]],
) -> np.ndarray:
    """Boolean (n, T): which treatment classes each row's diagnosis allows.

    A diagnosis absent from the table allows every treatment (nothing learned to restrict it).
    """
    index = {t: j for j, t in enumerate(treatment_classes)}
    rows: dict[str, np.ndarray] = {}
    mask = np.ones((len(diag_codes), len(treatment_classes)), dtype=bool)
    for i, diag in enumerate(diag_codes):
        row = rows.get(diag)
        if row is None:
            row = np.ones(len(treatment_classes), dtype=bool)
            if diag in allowed:
                ok = [index[t] for t in allowed[diag] if t in index]
                if ok:
                    row = np.zeros(len(treatment_classes), dtype=bool)
                    row[ok] = True
            rows[diag] = row
        mask[i] = row
    return mask


def coherent_choice(
    diag_codes: Sequence[str],
    treat_proba: np.ndarray,
    treatment_classes: Sequence[str],
    allowed: Mapping[str, Sequence[str]],
) -> tuple[list[str], np.ndarray]:
    """Mask treatments the diagnosis does not allow, renormalise, pick the most probable.

    Args:
        diag_codes: one diagnosis code per row (the predicted one at serving time).
        treat_proba: (n, T) raw treatment probabilities in `treatment_classes` order.
        treatment_classes: the treatment pipeline's class codes.
        allowed: diagnosis -> allowed treatment codes (`BundleMeta.allowed_pairs`).

    Returns:
        (chosen treatment code per row, (n, T) renormalised probabilities, 0 where disallowed).
        When the model gives every allowed treatment zero mass, allowed ones share it equally.
    """
    row_of: dict[str, int] = {}
    rows = [row_of.setdefault(d, len(row_of)) for d in diag_codes]
    table = CoherenceTable(list(row_of), treatment_classes, allowed)
    return table.choose(np.asarray(rows, dtype=np.intp), treat_proba)


class CoherenceTable:
    """`coherent_choice` for a fixed list of diagnoses, their masks computed once.

    The predictor builds one per bundle over the diagnosis model's classes and passes the
    predicted class indices: no per-call mask building.

    Args:
        diagnoses: the diagnosis codes rows will refer to by index.
        treatment_classes / allowed: as for `coherent_choice`.
    """

    def __init__(
        self,
        diagnoses: Sequence[str],
        treatment_classes: Sequence[str],
        allowed: Mapping[str, Sequence[str]],
    ) -> None:
        self.treatment_classes = list(treatment_classes)
        self.mask = allowed_mask(diagnoses, treatment_classes, allowed)
        # every row allows at least one treatment (`allowed_mask`), so no division by zero here
        self.uniform = self.mask / self.mask.sum(axis=1, keepdims=True)

    def choose(
        self, diag_index: np.ndarray, treat_proba: np.ndarray
    ) -> tuple[list[str], np.ndarray]:
        """`coherent_choice` for rows whose diagnosis is ``diagnoses[diag_index[i]]``."""
        proba = np.asarray(treat_proba, dtype=float)
        mask = self.mask[diag_index]
        masked = np.where(mask, proba, 0.0)
        total = np.add.reduce(masked, axis=1, keepdims=True)
        positive = total > 0
        if positive.all():  # the usual case: the same numbers as the general expression below
            out = masked / total
        else:  # the divisor is never 0: rows without mass take the uniform share instead
            out = np.where(
                positive, masked / np.where(positive, total, 1.0), self.uniform[diag_index]
            )
        classes = self.treatment_classes
        return [classes[j] for j in out.argmax(axis=1).tolist()], out
