"""Columnar fast path for batches of already-canonical patient records.

`canonical_records(records)` returns exactly what
``[PatientRecord.model_validate(r).to_record() for r in records]`` returns (same keys in the same
order, equal values of the same types), checked column by column instead of record by record, or
``None`` when it is not sure that the full validation would accept every record unchanged
(aliases, value spellings, wrong types, out-of-range values, ...). The caller then falls back to
the full pydantic validation, which also explains the errors.

Every rule comes from the contract (`TASK`): kind, range, categories, ``max_items``, default and
tier; the one cross-field rule reuses the constants of `app.schemas.patient`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any, Final

from app.schemas.patient import LOWER_BP, TASK, UPPER_BP
from train_pipeline.contract import Feature


class _Absent(tuple[str, ...]):
    """Placeholder of an absent multilabel field: an empty sequence of a private type."""


_ABSENT: Final = _Absent()
_KIND_TYPES: Final[dict[str, frozenset[type]]] = {  # exact types strict pydantic keeps as is
    "numeric": frozenset({float, int}),  # int becomes float (below)
    "integer": frozenset({int}),  # not bool, not 3.0
    "boolean": frozenset({bool}),
    "categorical": frozenset({str}),
    "multilabel": frozenset({list, _Absent}),
}


def _nullable(feat: Feature) -> bool:
    """Whether pydantic gives None for the field when absent (or null): optional scalars."""
    return feat.tier != "required" and feat.kind in ("numeric", "integer", "categorical")


# What pydantic puts in an absent field, in the contract's order: None, the boolean default, or
# `_ABSENT` (replaced by a fresh [] at the end). A None left in a boolean, list or required
# column was given as null: refused (pydantic would turn it into the default or an error).
_TEMPLATE: Final[dict[str, Any]] = {
    f.name: bool(f.default) if f.kind == "boolean" else _ABSENT if f.kind == "multilabel" else None
    for f in TASK.features
}
_CODES: Final = {f.name: frozenset(f.categories) for f in TASK.features if f.categories}


def _in_range(feat: Feature, values: Sequence[Any]) -> bool:
    """Numbers within the feature's ``[minimum, maximum]`` (inclusive), no NaN."""
    low, high = feat.minimum, feat.maximum
    if low is None or high is None or not low <= min(values) <= max(values) <= high:
        return False  # (an unbounded feature, or a huge int: leave it to pydantic)
    return not math.isnan(sum(values))  # NaN hides from min/max; bounded sums cannot overflow


def _lists_ok(feat: Feature, lists: Sequence[Any]) -> bool:
    """Lists of known codes (exact str), without duplicates, at most ``max_items`` long."""
    items = list(chain.from_iterable(lists))
    if not (set(map(type, items)) <= {str} and _CODES[feat.name].issuperset(items)):
        return False  # (`issuperset` only runs on str, hence hashable, items)
    sizes = list(map(len, map(set, lists)))  # a duplicate shrinks its set
    too_long = feat.max_items is not None and max(sizes) > feat.max_items
    return sum(sizes) == len(items) and not too_long


def _values_ok(feat: Feature, values: Sequence[Any]) -> bool:
    """Whether values of the exact types of ``feat.kind`` pass validation unchanged."""
    if not values or feat.kind == "boolean":
        return True  # nothing present, or booleans: the exact type is all there is to check
    if feat.kind in ("numeric", "integer"):
        return _in_range(feat, values)
    if feat.kind == "categorical":
        return _CODES[feat.name].issuperset(values)
    return _lists_ok(feat, values)


def canonical_records(records: object) -> list[dict[str, Any]] | None:
    """``[PatientRecord.model_validate(r).to_record() for r in records]``, fast, or None.

    A returned list is equal to that expression (which then does not raise), value types
    included. None means "not sure": use the full validation. An explicit null in an optional
    field without a default is taken as absent, which is also what pydantic does.
    """
    if type(records) is not list:
        return None
    if not records:
        return []
    if set(map(type, records)) != {dict}:
        return None
    out: list[dict[str, Any]] = [{**_TEMPLATE, **r} for r in records]  # the contract's key order
    if set(map(len, out)) != {len(_TEMPLATE)}:
        return None  # a key that is not a canonical name (alias, camelCase, unknown)
    columns = dict(zip(_TEMPLATE, zip(*map(dict.values, out), strict=True), strict=True))
    converted: list[tuple[str, Iterable[Any]]] = []  # what pydantic changes: int->float, lists
    for feat in TASK.features:
        column = columns[feat.name]
        values = [v for v in column if v is not None] if _nullable(feat) else column
        types = set(map(type, values))
        if not types <= _KIND_TYPES[feat.kind] or not _values_ok(feat, values):
            return None
        if feat.kind == "numeric" and int in types:
            converted.append((feat.name, [v if v is None else float(v) for v in column]))
        elif feat.kind == "multilabel":
            converted.append((feat.name, map(list, column)))  # a new list, [] if absent
    pairs = zip(columns[LOWER_BP], columns[UPPER_BP], strict=True)
    if any(low >= up for low, up in pairs if low is not None and up is not None):
        return None
    for name, new_values in converted:
        for row, value in zip(out, new_values, strict=True):
            row[name] = value
    return out
