"""API keys with roles (DESIGN §7): parsed from settings, kept only as digests, compared in
constant time.

``HP_API_KEYS`` (and the optional key file) hold entries ``<key part>:<role>``, where the key
part is one of:

- a managed entry ``id=<key id>;salt=<hex>;sha256=<hex>[;expires=<ISO 8601 UTC>]``, printed by
  ``python -m app keys new``: the SHA-256 of salt + key, never the key. Its key reads
  ``hp_<key id>_<secret>``, so the entry is found by id (one hash per request); past
  ``expires`` the key is refused (401);
- ``sha256=<64 hex>`` (the unsalted digest of a key; kept for existing configurations);
- a key in clear (development only: refused in production by `app.settings`).

Roles are ordered: ``admin`` may do everything ``clinician`` may.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

logger = logging.getLogger(__name__)

Role = Literal["clinician", "admin"]
ROLE_RANK: dict[str, int] = {"clinician": 1, "admin": 2}
DIGEST_PREFIX = "sha256="
MANAGED_PREFIX = "id="
KEY_PREFIX = "hp_"
_KEY_ID = re.compile(r"^[0-9a-f]{12}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def digest(key: str) -> str:
    """Hex SHA-256 of a key (unsalted: the legacy ``sha256=`` entries)."""
    return hashlib.sha256(key.encode()).hexdigest()


def salted_digest(salt: bytes, key: str) -> bytes:
    return hashlib.sha256(salt + key.encode()).digest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a short, non-reversible key id (for logs and rate limits) and a role."""

    key_id: str
    role: Role

    def may(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


@dataclass(frozen=True)
class ManagedKey:
    """A managed key's entry: its salt, salted digest, role and expiry."""

    key_id: str
    salt: bytes
    digest: bytes
    role: Role
    expires: datetime | None

    def entry(self) -> str:
        """The configuration line of this key (no secret in it)."""
        parts = [f"id={self.key_id}", f"salt={self.salt.hex()}", f"sha256={self.digest.hex()}"]
        if self.expires is not None:
            parts.append(f"expires={self.expires.strftime('%Y-%m-%dT%H:%M:%SZ')}")
        return ";".join(parts) + f":{self.role}"


def new_key(role: Role, lifetime: timedelta | None = None) -> tuple[str, ManagedKey]:
    """A new random key and its entry (give the key once; configure the entry)."""
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    salt = secrets.token_bytes(16)
    expires = None
    if lifetime is not None:
        expires = (datetime.now(UTC) + lifetime).replace(microsecond=0)
    return key, ManagedKey(key_id, salt, salted_digest(salt, key), role, expires)


def parse_managed(spec: str, role: Role) -> ManagedKey:
    """``id=…;salt=…;sha256=…[;expires=…]`` as a `ManagedKey`.

    Raises:
        ValueError: a field missing or malformed (the message never quotes the entry).
    """
    fields = dict(part.partition("=")[::2] for part in spec.split(";") if part)
    key_id, salt, hexd = fields.get("id", ""), fields.get("salt", ""), fields.get("sha256", "")
    if not _KEY_ID.match(key_id) or not _HEX64.match(hexd) or not salt:
        raise ValueError("a managed API key entry needs id=<12 hex>;salt=<hex>;sha256=<64 hex>")
    expires = None
    if "expires" in fields:
        expires = datetime.fromisoformat(fields["expires"].replace("Z", "+00:00"))
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
    return ManagedKey(key_id, bytes.fromhex(salt), bytes.fromhex(hexd), role, expires)


class ApiKeyStore:
    """The configured keys, as digests: managed keys by key id, the others in a list."""

    def __init__(
        self, entries: dict[str, Role], managed: dict[str, ManagedKey] | None = None
    ) -> None:
        self._entries = [(bytes.fromhex(d), role) for d, role in entries.items()]
        self._managed = dict(managed or {})

    @classmethod
    def from_spec(cls, spec: str, allow_clear: bool = True) -> ApiKeyStore:
        """Parse entries separated by commas or newlines (``#`` starts a comment line).

        Raises:
            ValueError: an entry without a role, an unknown role, a malformed digest, or a key
                in clear when ``allow_clear`` is False.
        """
        entries: dict[str, Role] = {}
        managed: dict[str, ManagedKey] = {}
        items = [i.strip() for line in spec.splitlines() for i in line.split(",")]
        for number, item in enumerate((i for i in items if i and not i.startswith("#")), 1):
            key, sep, role = item.rpartition(":")
            if not sep or not key or role not in ROLE_RANK:
                raise ValueError(
                    f"API key entry #{number} must be 'key:role' with role in {sorted(ROLE_RANK)}"
                )
            if key.startswith(MANAGED_PREFIX):
                entry = parse_managed(key, role)  # type: ignore[arg-type]
                managed[entry.key_id] = entry
                continue
            if key.startswith(DIGEST_PREFIX):
                hexd = key[len(DIGEST_PREFIX) :].lower()
                if not _HEX64.match(hexd):
                    raise ValueError("a 'sha256=' API key entry needs 64 hex digits")
            elif not allow_clear:
                raise ValueError(f"API key entry #{number} holds a key in clear (production)")
            else:
                hexd = digest(key)
            entries[hexd] = role  # type: ignore[assignment]
        return cls(entries, managed)

    def __len__(self) -> int:
        return len(self._entries) + len(self._managed)

    def authenticate(self, presented: str | None, now: datetime | None = None) -> Principal | None:
        """The principal of ``presented``, or None (unknown, or a managed key past its expiry);
        compared in constant time."""
        if not presented:
            return None
        if presented.startswith(KEY_PREFIX):
            found = self._managed_principal(presented, now or datetime.now(UTC))
            if found is not None:
                return found
        candidate = hashlib.sha256(presented.encode()).digest()
        principal: Principal | None = None
        for stored, role in self._entries:
            if hmac.compare_digest(stored, candidate):
                principal = Principal(key_id=stored.hex()[:12], role=role)
        return principal

    def _managed_principal(self, presented: str, now: datetime) -> Principal | None:
        key_id = presented[len(KEY_PREFIX) :].partition("_")[0]
        entry = self._managed.get(key_id)
        if entry is None or not hmac.compare_digest(
            entry.digest, salted_digest(entry.salt, presented)
        ):
            return None
        if entry.expires is not None and now >= entry.expires:
            logger.warning("expired API key refused", extra={"key_id": key_id})
            return None
        return Principal(key_id=key_id, role=entry.role)
