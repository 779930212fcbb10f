"""The API keys in force, with the optional key file (`HP_API_KEYS_FILE`) reloaded without a
restart: when its mtime (or size) changes, checked at most once per `CHECK_INTERVAL_S` on the
request path (one `os.stat`), or at once on SIGHUP (`request_reload`).

A file that cannot be read or parsed leaves the keys in force unchanged (and says so in the
log, never quoting an entry): a typo during a rotation does not lock every client out.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import datetime
from pathlib import Path

from app.security.api_keys import ApiKeyStore, Principal

logger = logging.getLogger(__name__)
CHECK_INTERVAL_S = 1.0


class KeyRing:
    """`HP_API_KEYS` plus the key file's entries.

    Args:
        spec: the `HP_API_KEYS` entries.
        path: the key file, or None.
        allow_clear: whether keys in clear are accepted (outside production).
    """

    def __init__(self, spec: str, path: Path | None = None, allow_clear: bool = True) -> None:
        self._spec = spec
        self._path = path
        self._allow_clear = allow_clear
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._next_check = 0.0
        self._reload_requested = False
        self.reloads = 0
        self._store = ApiKeyStore.from_spec(spec, allow_clear)
        if path is not None:
            self._load(required=True)

    def __len__(self) -> int:
        return len(self._store)

    def request_reload(self) -> None:
        """Read the file again before the next authentication (the SIGHUP handler)."""
        self._reload_requested = True

    def authenticate(self, presented: str | None, now: datetime | None = None) -> Principal | None:
        self._maybe_reload()
        return self._store.authenticate(presented, now)

    def _maybe_reload(self) -> None:
        if self._path is None:
            return
        tick = time.monotonic()
        if not self._reload_requested and tick < self._next_check:
            return
        self._next_check = tick + CHECK_INTERVAL_S
        forced, self._reload_requested = self._reload_requested, False
        try:
            st = self._path.stat()
        except OSError as exc:
            logger.error("API key file unreadable; keys kept", extra={"error": type(exc).__name__})
            return
        if forced or (st.st_mtime_ns, st.st_size) != self._stamp:
            self._load(required=False)

    def _load(self, required: bool) -> None:
        assert self._path is not None
        with self._lock:
            stamp = None
            try:
                st = os.stat(self._path)
                stamp = (st.st_mtime_ns, st.st_size)
                text = self._path.read_text()
                store = ApiKeyStore.from_spec(self._spec + "\n" + text, self._allow_clear)
            except (OSError, ValueError) as exc:
                if required:
                    raise
                logger.error(
                    "API key file not loaded; keys kept",
                    extra={"error": type(exc).__name__, "reason": str(exc)},
                )
                self._stamp = stamp  # tried again once the file changes (or on SIGHUP)
                return
            self._store, self._stamp = store, stamp
            self.reloads += 1
            logger.info("API keys loaded", extra={"keys": len(store), "file": str(self._path)})
