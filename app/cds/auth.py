"""CDS Hooks §Trusting CDS Clients: every call carries a JWT signed by a trusted EHR.

Accepted: ES384 / RS384 (PyJWT), a ``kid`` of the issuer's JWK set, ``iss`` listed in
`HP_CDS_JWKS_FILE`, ``aud`` the exact URL called, ``exp``/``iat``/``jti`` present, ``jti`` never
seen before (a replay cache holding each ``jti`` until its ``exp``). Anything else is one 401
with one message. Tokens are never logged; the log says which check failed, not the token.
"""

from __future__ import annotations

import heapq
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from fastapi import Request

from app.cds.errors import CdsAuthError
from app.settings import Settings

logger = logging.getLogger(__name__)

ALGORITHMS = ("ES384", "RS384")  # the spec's RECOMMENDED pair; no `none`, no HMAC
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "jti"]
LEEWAY_S = 30  # clock skew tolerated on exp / iat
MAX_LIFETIME_S = 3600  # a token valid longer than this is refused: it bounds the replay cache
REPLAY_CACHE_MAX = 100_000
DEV_ISSUER = "dev"
DEV_JWKS_PATH = Path(__file__).with_name("dev_jwks.json")
_PRIVATE_PARTS = ("d", "p", "q", "dp", "dq", "qi", "oth")
_UNVERIFIED = jwt.PyJWT()


def _algorithm_of(jwk: dict[str, Any]) -> str | None:
    """The one algorithm a public JWK may verify (its ``alg``, else from kty/crv)."""
    kty = jwk.get("kty")
    natural = "ES384" if kty == "EC" and jwk.get("crv") == "P-384" else None
    natural = "RS384" if kty == "RSA" else natural
    alg = jwk.get("alg", natural)
    return alg if alg in ALGORITHMS and alg == natural else None


def load_keys(issuers: dict[str, Any]) -> dict[tuple[str, str], jwt.PyJWK]:
    """``{iss: {"keys": [JWK, ...]}}`` -> ``{(iss, kid): public key}``; unusable keys skipped
    (no kid, a symmetric or unsupported algorithm)."""
    keys: dict[tuple[str, str], jwt.PyJWK] = {}
    for iss, jwks in issuers.items():
        for jwk in jwks.get("keys", []):
            public = {k: v for k, v in jwk.items() if k not in _PRIVATE_PARTS}
            alg, kid = _algorithm_of(public), public.get("kid")
            try:
                if alg is None or not isinstance(kid, str):
                    raise jwt.InvalidKeyError("no kid, or not an ES384 / RS384 key")
                keys[(iss, kid)] = jwt.PyJWK(public, algorithm=alg)
            except jwt.PyJWTError:
                logger.warning("CDS JWKS: a key is skipped (no kid, or not ES384 / RS384)")
    return keys


@dataclass
class ReplayCache:
    """``jti`` seen per issuer, each kept until its token's ``exp`` (then it could not replay)."""

    max_entries: int = REPLAY_CACHE_MAX
    _seen: set[tuple[str, str]] = field(default_factory=set)
    _expiry: list[tuple[float, tuple[str, str]]] = field(default_factory=list)

    def first_use(self, iss: str, jti: str, exp: float, now: float) -> bool:
        """Record ``jti``; False when it was already seen (a replay) or the cache is full."""
        while self._expiry and self._expiry[0][0] < now - LEEWAY_S:
            self._seen.discard(heapq.heappop(self._expiry)[1])
        key = (iss, jti)
        if key in self._seen or len(self._seen) >= self.max_entries:
            return False
        self._seen.add(key)
        heapq.heappush(self._expiry, (exp, key))
        return True


class TokenVerifier:
    """Checks CDS client tokens against trusted issuers' public keys (none: refuse all)."""

    def __init__(self, keys: dict[tuple[str, str], jwt.PyJWK]) -> None:
        self._keys = keys
        self.replays = ReplayCache()

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        issuers: dict[str, Any] = {}
        if settings.cds_dev_keys and settings.environment != "production":
            issuers.update(json.loads(DEV_JWKS_PATH.read_text()))
        if settings.cds_jwks_file is not None:
            try:
                issuers.update(json.loads(settings.cds_jwks_file.read_text()))
            except (OSError, ValueError):
                logger.error("HP_CDS_JWKS_FILE unreadable: every CDS call is refused")
                return cls({})
        verifier = cls(load_keys(issuers))
        logger.info("CDS clients trusted", extra={"cds_keys": len(verifier._keys)})
        return verifier

    def verify(self, token: str, audience: str) -> dict[str, Any]:
        """The token's claims; `CdsAuthError` (401) for any failure."""
        try:
            claims = self._check(token, audience)
        except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
            logger.info("CDS token refused", extra={"reason": type(exc).__name__})
            raise CdsAuthError(headers={"WWW-Authenticate": "Bearer"}) from None
        return claims

    def _check(self, token: str, audience: str) -> dict[str, Any]:
        # One unverified read for the key's lookup (iss, kid, alg), then the verified decode.
        unverified = _UNVERIFIED.decode_complete(token, options={"verify_signature": False})
        header = unverified["header"]
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise jwt.InvalidAlgorithmError("algorithm not accepted")
        iss = unverified["payload"]["iss"]
        key = self._keys[(str(iss), str(kid))]  # KeyError: unknown issuer or kid
        if key.algorithm_name != alg:
            raise jwt.InvalidAlgorithmError("algorithm does not fit the key")
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[alg],
            audience=audience,
            issuer=iss,
            leeway=LEEWAY_S,
            options={"require": REQUIRED_CLAIMS},
        )
        now = time.time()
        if float(claims["exp"]) - now > MAX_LIFETIME_S:
            raise jwt.InvalidTokenError("lifetime too long")
        if not self.replays.first_use(iss, str(claims["jti"]), float(claims["exp"]), now):
            raise jwt.InvalidTokenError("jti replayed")
        return claims


def audience_of(request: Request, public_base_url: str | None) -> str:
    """The URL the client called, as its token's ``aud`` must name it."""
    if public_base_url:
        return public_base_url.rstrip("/") + request.url.path
    return str(request.url.replace(query="", fragment=""))


async def require_cds_client(request: Request) -> dict[str, Any]:
    """Dependency of every CDS route: the verified claims of the caller's bearer token."""
    state = request.app.state
    verifier: TokenVerifier | None = getattr(state, "cds_verifier", None)
    if verifier is None:
        verifier = state.cds_verifier = TokenVerifier.from_settings(state.settings)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise CdsAuthError(headers={"WWW-Authenticate": "Bearer"})
    return verifier.verify(token.strip(), audience_of(request, state.settings.public_base_url))
