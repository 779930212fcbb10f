"""Per-key token-bucket rate limiting (in-process: each worker process keeps its own buckets).

A bucket holds up to ``per_minute`` tokens (the allowed burst) and refills at
``per_minute / 60`` tokens per second; a request takes one token or is refused with the number of
seconds until one is available (the ``Retry-After`` header).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucketLimiter:
    """Token buckets keyed by an opaque id (the API key's id)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # id -> (tokens, last time)

    def acquire(self, key: str) -> float | None:
        """Take a token for ``key``; None if allowed, else seconds to wait (rounded up, ≥ 1)."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return None
        self._buckets[key] = (tokens, now)
        return float(max(1, math.ceil((1.0 - tokens) / self.rate)))
