"""`canonical_records` (the columnar fast path) gives exactly what `PatientRecord` gives, or None.

The property, checked on real cohort payloads and on thousands of randomly mutated batches:
either the fast path says "not sure" (None) or pydantic accepts every record and returns the
same list, key order and value types included. Mutations are derived from the contract, so a
field added to it is fuzzed without touching this file.
"""

from __future__ import annotations

import copy
import math
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from app.schemas.fast_records import canonical_records
from app.schemas.patient import LOWER_BP, TASK, UPPER_BP, PatientRecord
from tests.factories import cohort_payloads
from train_pipeline.contract import Feature

FEATURES = TASK.features
BOUNDED = [f for f in FEATURES if f.kind in ("numeric", "integer")]
NUMERIC = [f for f in FEATURES if f.kind == "numeric"]
INTEGER = [f for f in FEATURES if f.kind == "integer"]
OPTIONAL = [f for f in FEATURES if f.tier != "required"]
REQUIRED = [f for f in FEATURES if f.tier == "required"]
NULLABLE = [f for f in OPTIONAL if f.default is None]  # absent or null -> None
CATEGORICAL = [f for f in FEATURES if f.kind == "categorical"]
MULTILABEL = [f for f in FEATURES if f.kind == "multilabel"]
BOOLEAN = [f for f in FEATURES if f.kind == "boolean"]
ALIASED = [f for f in FEATURES if f.all_aliases]

Record = dict[str, Any]
Batch = list[Any]


@pytest.fixture(scope="module")
def payloads(cohort_csv: Path) -> list[Record]:
    records = cohort_payloads(cohort_csv, 1000, seed=3)
    assert len(records) == 1000
    return records


def reference(batch: Batch) -> list[Record] | None:
    """The full path: every record through pydantic, or None if any record is refused."""
    try:
        return [PatientRecord.model_validate(r).to_record() for r in batch]
    except ValidationError:
        return None


def typed(value: Any) -> Any:
    """``value`` with every type and key order made visible (``repr`` tells -0.0 from 0.0)."""
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, repr(value))


def as_json_ints(record: Record) -> Record:
    """What a JSON client often sends: integral numbers written without a decimal point."""
    return {k: int(v) if type(v) is float and v.is_integer() else v for k, v in record.items()}


# ------------------------------------------------------------------ real cohort payloads


@pytest.mark.parametrize("style", ["cohort", "json-ints"])
def test_cohort_batch_equals_pydantic(payloads: list[Record], style: str) -> None:
    batch = payloads if style == "cohort" else [as_json_ints(r) for r in payloads]
    before = copy.deepcopy(batch)
    fast = canonical_records(batch)
    expected = reference(batch)
    assert fast is not None and expected is not None
    assert typed(fast) == typed(expected)
    assert batch == before  # the input is left alone
    if style == "json-ints":  # ints were given to float fields, floats came back
        assert any(type(r[f.name]) is int for r in batch for f in NUMERIC if f.name in r)


def test_lists_are_fresh(payloads: list[Record]) -> None:
    batch = [{f.name: payloads[0][f.name] for f in REQUIRED}, copy.deepcopy(payloads[1])] * 2
    first = canonical_records(batch)
    assert first is not None
    for feat in MULTILABEL:
        assert first[0][feat.name] == [] and first[0][feat.name] is not first[2][feat.name]
        assert all(
            out[feat.name] is not r.get(feat.name) for out, r in zip(first, batch, strict=True)
        )
        first[0][feat.name].append("mutated")  # the caller may mutate what it got
    again = canonical_records(batch)
    assert again is not None and typed(again) == typed(reference(batch))


def test_empty_and_non_list_inputs() -> None:
    assert canonical_records([]) == reference([]) == []
    record = {f.name: v for f, v in zip(REQUIRED, ("x",) * len(REQUIRED), strict=True)}
    for batch in ((record,), {"records": [record]}, None, "[]"):
        assert canonical_records(batch) is None


@pytest.mark.parametrize("position", [0, 1, 500, 998, 999])
@pytest.mark.parametrize("bad", ["nan", "inf", "high", "low", "bool"])
def test_one_bad_value_anywhere_in_a_large_batch(
    payloads: list[Record], position: int, bad: str
) -> None:
    """min/max skip NaN depending on where it sits: every position must still be caught."""
    for feat in BOUNDED:
        assert feat.minimum is not None and feat.maximum is not None
        value = {
            "nan": math.nan,
            "inf": math.inf,
            "high": feat.maximum + (1 if feat.kind == "integer" else 1e-9),
            "low": feat.minimum - (1 if feat.kind == "integer" else 1e-9),
            "bool": True,
        }[bad]
        if feat.kind == "integer" and bad in ("nan", "inf"):
            value = float(feat.minimum)  # 3.0 is not an int
        batch = list(payloads)
        batch[position] = {**batch[position], feat.name: value}
        assert reference(batch[position : position + 1]) is None
        assert canonical_records(batch) is None, (feat.name, bad)


# ------------------------------------------------------------------ fuzz: mutated batches

Mutation = Callable[[random.Random, Record], Any]


def _set(feat: Feature, value: Callable[[random.Random, Record], Any]) -> Mutation:
    def apply(rng: random.Random, record: Record) -> Any:
        record[feat.name] = value(rng, record)
        return record

    return apply


def _drop(feat: Feature) -> Mutation:
    def apply(rng: random.Random, record: Record) -> Any:
        record.pop(feat.name, None)
        return record

    return apply


def _rename(feat: Feature) -> Mutation:
    def apply(rng: random.Random, record: Record) -> Any:
        if feat.name in record:
            record[rng.choice(feat.all_aliases)] = record.pop(feat.name)
        return record

    return apply


def _codes(feat: Feature, n: int) -> Callable[[random.Random, Record], list[str]]:
    return lambda rng, _: rng.sample(feat.categories, min(n, len(feat.categories)))


def _bp_inverted(rng: random.Random, record: Record) -> Any:
    upper = record.get(UPPER_BP, 120.0)
    record[UPPER_BP] = upper
    record[LOWER_BP] = upper + rng.choice([0, 0.0, 1e-9, 5])
    return record


def _mutations() -> dict[str, list[Mutation]]:
    """Mutation kinds; those in `VALID` leave a canonical, valid record (bar cross-field)."""
    up = math.inf
    kinds: dict[str, list[Mutation]] = {
        # valid and canonical: the fast path must take them
        "drop_optional": [_drop(f) for f in OPTIONAL],
        "at_minimum": [
            _set(f, lambda r, _, f=f: _cast(f, f.minimum, 0, r.random() < 0.5)) for f in BOUNDED
        ],
        "at_maximum": [
            _set(f, lambda r, _, f=f: _cast(f, f.maximum, 0, r.random() < 0.5)) for f in BOUNDED
        ],
        "int_for_float": [
            _set(f, lambda r, _, f=f: r.randint(math.ceil(f.minimum), int(f.maximum)))
            for f in NUMERIC
        ],
        "null_optional_scalar": [_set(f, lambda r, _: None) for f in NULLABLE],
        "negative_zero": [_set(f, lambda r, _: -0.0) for f in BOUNDED if f.minimum == 0],
        "flip_boolean": [_set(f, lambda r, _: r.random() < 0.5) for f in BOOLEAN],
        "valid_codes": [
            _set(f, lambda r, _, f=f: _codes(f, r.randint(0, f.max_items or 5))(r, _))
            for f in MULTILABEL
        ],
        "max_codes": [_set(f, _codes(f, f.max_items or 5)) for f in MULTILABEL],
        # invalid, non-canonical or doubtful: None (or the very same list as pydantic)
        "drop_required": [_drop(f) for f in REQUIRED],
        "null_any": [_set(f, lambda r, _: None) for f in FEATURES],
        "str_number": [_set(f, lambda r, rec, f=f: str(rec.get(f.name, 5))) for f in BOUNDED],
        "bool_for_number": [_set(f, lambda r, _: r.random() < 0.5) for f in BOUNDED],
        "float_for_int": [_set(f, lambda r, _, f=f: float(f.minimum)) for f in INTEGER],
        "nan_inf": [_set(f, lambda r, _: r.choice([math.nan, up, -up])) for f in BOUNDED],
        "hair_below": [
            _set(f, lambda r, _, f=f: _cast(f, f.minimum, -1, r.random() < 0.5)) for f in BOUNDED
        ],
        "hair_above": [
            _set(f, lambda r, _, f=f: _cast(f, f.maximum, 1, r.random() < 0.5)) for f in BOUNDED
        ],
        "huge_int": [_set(f, lambda r, _: r.choice([2**63, 10**400, -(10**30)])) for f in BOUNDED],
        "numpy_number": [_set(f, lambda r, _, f=f: np.float64(f.maximum)) for f in NUMERIC],
        "unknown_key": [lambda r, rec: {**rec, r.choice(["foo", "", "Age", 1]): 1}],
        "alias_name": [_rename(f) for f in ALIASED],
        "spelling": [
            _set(f, lambda r, rec, f=f: r.choice(_spellings(f, rec))) for f in CATEGORICAL
        ],
        "unknown_category": [
            _set(f, lambda r, _: r.choice(["X", "", 1, ["M"]])) for f in CATEGORICAL
        ],
        "bad_codes": [_set(f, lambda r, rec, f=f: _bad_codes(r, f, rec)) for f in MULTILABEL],
        "too_many_codes": [_set(f, _codes(f, (f.max_items or 5) + 1)) for f in MULTILABEL],
        "bad_boolean": [
            _set(f, lambda r, _: r.choice([0, 1, 1.0, "true", "false"])) for f in BOOLEAN
        ],
        "bp_inverted": [_bp_inverted],
        "not_a_dict": [lambda r, rec: r.choice([None, [], list(rec.items()), "x", _Sub(rec)])],
    }
    return kinds


class _Sub(dict[str, Any]):
    """A dict subclass: pydantic takes it, the fast path does not have to."""


VALID = {
    "drop_optional",
    "at_minimum",
    "at_maximum",
    "int_for_float",
    "null_optional_scalar",
    "negative_zero",
    "flip_boolean",
    "valid_codes",
    "max_codes",
}


def _cast(feat: Feature, bound: float | None, direction: int = 0, as_int: bool = False) -> Any:
    """``bound`` (nudged by one ulp / one unit in ``direction``) as the feature's number type."""
    assert bound is not None
    if feat.kind == "integer" or (as_int and float(bound).is_integer()):
        return int(bound) + direction
    value = float(bound)
    return math.nextafter(value, math.inf * direction) if direction else value


def _spellings(feat: Feature, record: Record) -> list[Any]:
    code = record.get(feat.name, feat.categories[0])
    aliases = [alias for alias, target in feat.value_aliases if target == code]
    spellings = [code.lower(), f" {code}", f"{code} ", *aliases, *(a.upper() for a in aliases)]
    return [s for s in spellings if s != code]


def _bad_codes(rng: random.Random, feat: Feature, record: Record) -> Any:
    codes = list(record.get(feat.name) or feat.categories[:2])
    return rng.choice(
        [
            [*codes, codes[0]],  # duplicate
            [*codes, "unknown_code"],
            [codes[0].upper(), *codes[1:]],
            [f" {codes[0]}", *codes[1:]],
            [*codes, 1],
            [*codes, None],
            [*codes, [codes[0]]],  # unhashable
            tuple(codes),
            codes[0],
            {codes[0]: 1},
        ]
    )


def test_fuzzed_batches_equal_pydantic_or_none(payloads: list[Record]) -> None:
    rng = random.Random(20240611)
    kinds = _mutations()
    names = sorted(kinds)
    valid_cases: Counter[str] = Counter()  # by kind: only valid mutations, pydantic accepted
    seen: Counter[str] = Counter()
    refused = set(names) - VALID - {"null_any", "alias_name"}  # (these two can be no-ops)
    for _ in range(4000):
        batch: Batch = [dict(r) for r in rng.sample(payloads, rng.randint(1, 6))]
        used = set()
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            # mostly valid kinds, so that multi-mutation batches are often still valid
            kind = rng.choice(sorted(VALID)) if rng.random() < 0.5 else rng.choice(names)
            i = rng.randrange(len(batch))
            if isinstance(batch[i], dict):
                batch[i] = rng.choice(kinds[kind])(rng, dict(batch[i]))
            used.add(kind)
            seen[kind] += 1
        before = copy.deepcopy(batch)
        fast = canonical_records(batch)
        expected = reference(batch)
        if fast is not None:
            assert expected is not None, (used, batch)
            assert typed(fast) == typed(expected), (used, batch)
        assert typed(batch) == typed(before)  # input untouched
        if len(used) == 1 and used <= refused:  # one invalid or non-canonical change
            assert fast is None, (used, batch)
        if expected is not None and used <= VALID:
            valid_cases.update(used)
            assert fast is not None, (used, batch)  # valid canonical batches are taken
    assert set(seen) == set(names)  # every kind was tried
    for kind in VALID:  # ... and valid kinds often left the whole batch valid
        assert valid_cases[kind] >= 30, (kind, valid_cases)
    assert sum(valid_cases.values()) >= 1000
