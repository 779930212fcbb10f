"""Prediction ids are RFC 4122 version-4 UUIDs, distinct, in the canonical text form."""

from __future__ import annotations

import uuid

from app.api.predict import _new_ids


def test_ids_are_distinct_version_4_uuids() -> None:
    ids = _new_ids(5000)
    assert len(set(ids)) == 5000
    for text in ids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_one_id() -> None:
    (only,) = _new_ids(1)
    assert uuid.UUID(only).version == 4
