"""API keys with roles (DESIGN §7): parsed from settings, kept only as SHA-256 digests,
compared in constant time.

``HP_API_KEYS`` is ``key:role,key:role``; an entry may also give the digest instead of the key,
``sha256=<64 hex>:role``, so production configuration never holds a key in clear.
Roles are ordered: ``admin`` may do everything ``clinician`` may.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal

Role = Literal["clinician", "admin"]
ROLE_RANK: dict[str, int] = {"clinician": 1, "admin": 2}
DIGEST_PREFIX = "sha256="


def digest(key: str) -> str:
    """Hex SHA-256 of a key (keys are long random tokens: a salt-free hash is enough)."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a short, non-reversible key id (for logs and rate limits) and a role."""

    key_id: str
    role: Role

    def may(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class ApiKeyStore:
    """The configured keys, as digests."""

    def __init__(self, entries: dict[str, Role]) -> None:
        self._entries = [(bytes.fromhex(d), role) for d, role in entries.items()]

    @classmethod
    def from_spec(cls, spec: str) -> ApiKeyStore:
        """Parse ``key:role,…`` (or ``sha256=<hex>:role``).

        Raises:
            ValueError: an entry without a role, an unknown role or a malformed digest.
        """
        entries: dict[str, Role] = {}
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            key, sep, role = item.rpartition(":")
            if not sep or not key or role not in ROLE_RANK:
                raise ValueError(
                    f"API key entry #{len(entries) + 1} must be 'key:role' with role in "
                    f"{sorted(ROLE_RANK)}"
                )
            if key.startswith(DIGEST_PREFIX):
                hexd = key[len(DIGEST_PREFIX) :].lower()
                if len(hexd) != 64 or any(c not in "0123456789abcdef" for c in hexd):
                    raise ValueError("a 'sha256=' API key entry needs 64 hex digits")
            else:
                hexd = digest(key)
            entries[hexd] = role  # type: ignore[assignment]
        return cls(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, presented: str | None) -> Principal | None:
        """The principal of ``presented``, or None; every entry is compared (constant time)."""
        if not presented:
            return None
        candidate = hashlib.sha256(presented.encode()).digest()
        found: Principal | None = None
        for stored, role in self._entries:
            if hmac.compare_digest(stored, candidate):
                found = Principal(key_id=stored.hex()[:12], role=role)
        return found
