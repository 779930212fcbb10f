"""CDS Hooks §Trusting CDS Clients: each way a token can fail is one 401 with one message."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from app.cds.auth import ReplayCache, TokenVerifier
from app.cds.dev_token import dev_token
from app.settings import Settings
from tests.api.conftest import assert_error, client_for, make_settings
from tests.cds.conftest import BASE, ISSUER, ClientKey, TokenFactory, bearer

DISCOVERY = f"{BASE}/cds-services"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


def _claims(aud: str = DISCOVERY) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": aud, "iat": now, "exp": now + 300, "jti": f"j-{time.time_ns()}"}


def _hmac_with_public_key(key: ClientKey) -> str:
    """The classic confusion: HS384 "signed" with the trusted public key as the secret."""
    secret = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS384", "typ": "JWT", "kid": key.kid}
    unsigned = _unsigned(header, _claims()).rsplit(".", 1)[0]
    signature = hmac.new(secret, unsigned.encode(), hashlib.sha384).digest()
    return f"{unsigned}.{_b64(signature)}"


def _refused(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get("/cds-services", headers=headers)
    error = assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert error["details"] == []
    return error


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_a_trusted_signed_token_is_accepted(
    cds_client: TestClient, make_token: TokenFactory, alg: str
) -> None:
    response = cds_client.get("/cds-services", headers=bearer(make_token(DISCOVERY, alg=alg)))
    assert response.status_code == 200, response.text


def test_aud_may_be_a_list_holding_the_url(
    cds_client: TestClient, make_token: TokenFactory
) -> None:
    token = make_token([DISCOVERY, "https://other.example.org"])
    assert cds_client.get("/cds-services", headers=bearer(token)).status_code == 200


BAD_TOKENS = {
    "no Authorization header": lambda t, k: {},
    "not a bearer": lambda t, k: {"Authorization": f"Basic {t(DISCOVERY)}"},
    "garbage": lambda t, k: bearer("not.a.jwt"),
    "alg none": lambda t, k: bearer(
        _unsigned({"alg": "none", "typ": "JWT", "kid": k["ES384"].kid}, _claims())
    ),
    "HMAC with the public key": lambda t, k: bearer(_hmac_with_public_key(k["ES384"])),
    "unknown kid": lambda t, k: bearer(t(DISCOVERY, headers={"kid": "someone-else"})),
    "unknown iss": lambda t, k: bearer(t(DISCOVERY, iss="https://evil.example.org/")),
    "wrong aud": lambda t, k: bearer(t("https://cds.example.org/cds-services")),
    "aud of another endpoint": lambda t, k: bearer(t(f"{DISCOVERY}/healthpredict-ed-triage")),
    "expired": lambda t, k: bearer(t(DISCOVERY, exp=int(time.time()) - 120)),
    "issued in the future": lambda t, k: bearer(t(DISCOVERY, iat=int(time.time()) + 600)),
    "valid for too long": lambda t, k: bearer(t(DISCOVERY, exp=int(time.time()) + 86400)),
    "signed by an untrusted key with a trusted kid": lambda t, k: bearer(
        t(DISCOVERY, key=k["stranger"])
    ),
    "RS384 kid under an ES384 header": lambda t, k: bearer(
        t(DISCOVERY, alg="RS384", headers={"kid": k["ES384"].kid})
    ),
    **{
        f"missing {claim}": (lambda c: lambda t, k: bearer(t(DISCOVERY, drop=(c,))))(claim)
        for claim in ("iss", "aud", "exp", "iat", "jti")
    },
}


@pytest.mark.parametrize("case", list(BAD_TOKENS), ids=list(BAD_TOKENS))
def test_bad_token_is_401_with_nothing_that_helps_an_attacker(
    cds_client: TestClient, make_token: TokenFactory, keys: dict[str, ClientKey], case: str
) -> None:
    error = _refused(cds_client, BAD_TOKENS[case](make_token, keys))
    assert error["message"] == "A valid signed JWT is required (Authorization: Bearer)"


def test_a_replayed_jti_is_refused(cds_client: TestClient, make_token: TokenFactory) -> None:
    token = make_token(DISCOVERY)
    assert cds_client.get("/cds-services", headers=bearer(token)).status_code == 200
    _refused(cds_client, bearer(token))
    same_jti = make_token(DISCOVERY, jti=json.loads(_payload(token))["jti"])
    _refused(cds_client, bearer(same_jti))


def _payload(token: str) -> bytes:
    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def test_replay_cache_forgets_a_jti_once_its_token_expired() -> None:
    cache = ReplayCache(max_entries=2)
    assert cache.first_use("iss", "a", exp=100.0, now=50.0)
    assert not cache.first_use("iss", "a", exp=100.0, now=60.0)
    assert cache.first_use("other-iss", "a", exp=100.0, now=60.0)
    assert not cache.first_use("iss", "b", exp=100.0, now=60.0)  # full: refuse, never evict
    assert cache.first_use("iss", "b", exp=500.0, now=200.0)  # the old ones expired
    assert len(cache._seen) == 1


def test_every_cds_route_needs_the_token(cds_client: TestClient) -> None:
    routes = [
        ("get", "/cds-services", None),
        ("post", "/cds-services/healthpredict-ed-triage", {}),
        ("post", "/cds-services/healthpredict-ed-triage/feedback", {}),
    ]
    for method, path, body in routes:
        response = (
            getattr(cds_client, method)(path, json=body)
            if body is not None
            else (cds_client.get(path))
        )
        assert_error(response, 401, "unauthorized")
        # An API key is no way in.
        keyed = cds_client.request(method.upper(), path, headers={"X-API-Key": "dev-admin-key"})
        assert_error(keyed, 401, "unauthorized")


def test_without_a_jwks_file_every_call_is_refused(
    tmp_path: Path, make_token: TokenFactory
) -> None:
    for client in client_for(make_settings(tmp_path)):
        _refused(client, bearer(make_token(DISCOVERY)))
        _refused(client, bearer(dev_token(DISCOVERY)))


def test_the_dev_keys_are_trusted_only_when_asked(tmp_path: Path) -> None:
    for client in client_for(make_settings(tmp_path, cds_dev_keys=True)):
        response = client.get("/cds-services", headers=bearer(dev_token(DISCOVERY)))
        assert response.status_code == 200, response.text
    with pytest.raises(ValueError, match="HP_CDS_DEV_KEYS"):
        Settings(environment="production", cds_dev_keys=True, api_keys="k:admin")


def test_behind_a_proxy_aud_is_the_public_url(
    tmp_path: Path, jwks_file: Path, make_token: TokenFactory
) -> None:
    public = "https://cds.example.org/triage"
    settings = make_settings(tmp_path, cds_jwks_file=jwks_file, public_base_url=public + "/")
    for client in client_for(settings):
        ok = client.get("/cds-services", headers=bearer(make_token(f"{public}/cds-services")))
        assert ok.status_code == 200, ok.text
        _refused(client, bearer(make_token(DISCOVERY)))


def test_a_jwks_file_that_cannot_be_read_trusts_nobody(tmp_path: Path) -> None:
    broken = tmp_path / "jwks.json"
    broken.write_text("{not json")
    verifier = TokenVerifier.from_settings(make_settings(tmp_path, cds_jwks_file=broken))
    assert verifier._keys == {}
