"""Row ids are RFC 9562 version-7 UUIDs: distinct, canonical text, ordered by creation time."""

from __future__ import annotations

import time
import uuid

from app.store.ids import new_id, new_ids


def _millis(text: str) -> int:
    return uuid.UUID(text).int >> 80


def test_ids_are_distinct_version_7_uuids() -> None:
    ids = new_ids(5000)
    assert len(set(ids)) == 5000
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_ids_carry_the_unix_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    ids = new_ids(3)
    after = time.time_ns() // 1_000_000
    assert {_millis(t) for t in ids} == {_millis(ids[0])}  # one timestamp per call
    assert before <= _millis(ids[0]) <= after


def test_later_ids_sort_after_earlier_ones() -> None:
    """What keeps inserts at the right edge of the primary-key index."""
    first = new_ids(100)
    time.sleep(0.002)
    second = new_ids(100)
    assert max(first) < min(second)
    assert sorted(first + second)[100:] == sorted(second)


def test_one_id() -> None:
    assert uuid.UUID(new_id()).version == 7
    assert new_id() != new_id()
