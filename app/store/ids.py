"""Row ids: time-ordered UUIDs (RFC 9562 version 7) in the canonical text form.

The audit table's primary key is a string index; version-4 (random) ids land all over it, so
once it outgrows SQLite's page cache every row of a batch dirties a different page: 1,000 rows
cost 8-11 ms to insert into a fresh table and 45-51 ms (32 ms CPU) past 50,000 rows (measured,
see the README). Version-7 ids start with the Unix time in milliseconds, so new rows go to the
right edge of the index and the cost stays flat. The other 74 bits are random (RFC 9562 §5.7:
no per-millisecond counter, so ids of the same millisecond are unordered among themselves).
"""

from __future__ import annotations

import os
import time


def new_ids(n: int) -> list[str]:
    """``n`` distinct version-7 UUID strings sharing this millisecond's timestamp, formatted
    from one `os.urandom` call and one hex string (1,000 ids: ~0.8 ms)."""
    raw = bytearray(os.urandom(16 * n))
    stamp = (time.time_ns() // 1_000_000).to_bytes(6, "big")  # 48-bit Unix milliseconds
    for k, byte in enumerate(stamp):
        raw[k::16] = bytes((byte,)) * n
    raw[6::16] = bytes(b & 0x0F | 0x70 for b in raw[6::16])  # version 7
    raw[8::16] = bytes(b & 0x3F | 0x80 for b in raw[8::16])  # RFC variant
    h = raw.hex()
    return [
        f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-{h[i + 12 : i + 16]}-"
        f"{h[i + 16 : i + 20]}-{h[i + 20 : i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


def new_id() -> str:
    """One version-7 UUID string."""
    return new_ids(1)[0]
