"""The CDS door's fixtures: client key pairs made here (ES384, RS384), their JWKS file, a token
factory, and an app serving the session's tiny trained bundle with that JWKS trusted."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from app.settings import Settings
from tests.api.conftest import client_for, make_settings

ISSUER = "https://ehr.example.org/"
BASE = "http://testserver"
SERVICE_URL = f"{BASE}/cds-services/healthpredict-ed-triage"


@dataclass(frozen=True)
class ClientKey:
    alg: str
    kid: str
    private: Any
    public_jwk: dict[str, Any]


def _ec_key(kid: str) -> ClientKey:
    private = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    return ClientKey("ES384", kid, private, {**jwk, "kid": kid, "use": "sig", "alg": "ES384"})


def _rsa_key(kid: str) -> ClientKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    return ClientKey("RS384", kid, private, {**jwk, "kid": kid, "use": "sig", "alg": "RS384"})


@pytest.fixture(scope="session")
def keys() -> dict[str, ClientKey]:
    """Trusted keys (ES384, RS384) and a key nobody trusts (same kid as the trusted ES384)."""
    return {
        "ES384": _ec_key("ehr-es384"),
        "RS384": _rsa_key("ehr-rs384"),
        "stranger": _ec_key("ehr-es384"),
    }


@pytest.fixture(scope="session")
def jwks_file(tmp_path_factory: pytest.TempPathFactory, keys: dict[str, ClientKey]) -> Path:
    path = tmp_path_factory.mktemp("cds") / "jwks.json"
    trusted = [keys["ES384"].public_jwk, keys["RS384"].public_jwk]
    path.write_text(json.dumps({ISSUER: {"keys": trusted}}))
    return path


TokenFactory = Callable[..., str]


@pytest.fixture(scope="session")
def make_token(keys: dict[str, ClientKey]) -> TokenFactory:
    """``make_token(aud, alg="ES384", drop=(), headers={}, key=None, **claims)``: a signed
    client token with fresh ``jti``, ``iat`` now and ``exp`` in 5 minutes."""

    def _make(
        aud: str | list[str] = SERVICE_URL,
        alg: str = "ES384",
        drop: tuple[str, ...] = (),
        headers: dict[str, Any] | None = None,
        key: ClientKey | None = None,
        **claims: Any,
    ) -> str:
        signer = key or keys[alg]
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": aud, "iat": now, "exp": now + 300}
        payload |= {"jti": str(uuid.uuid4())} | claims
        for name in drop:
            payload.pop(name)
        head = {"kid": signer.kid, "typ": "JWT"} | (headers or {})
        return jwt.encode(payload, signer.private, algorithm=signer.alg, headers=head)

    return _make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def cds_settings(
    tmp_path_factory: pytest.TempPathFactory, trained_store: Any, jwks_file: Path
) -> Settings:
    return make_settings(
        tmp_path_factory.mktemp("cds-served"),
        mlflow_tracking_uri=trained_store.tracking_uri,
        bentoml_home=Path(trained_store.bentoml_home),
        mlflow_timeout_s=30.0,
        cds_jwks_file=jwks_file,
    )


@pytest.fixture(scope="session")
def cds_client(cds_settings: Settings) -> Iterator[TestClient]:
    yield from client_for(cds_settings)


@pytest.fixture
def call(cds_client: TestClient, make_token: TokenFactory) -> Callable[..., Any]:
    """``call(body)``: POST a hook request to the service with a fresh valid token."""

    def _call(body: dict[str, Any]) -> Any:
        headers = bearer(make_token(SERVICE_URL))
        return cds_client.post("/cds-services/healthpredict-ed-triage", json=body, headers=headers)

    return _call
