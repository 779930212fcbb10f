"""`python -m app.cds.dev_token URL`: a token of the development issuer for local trials.

Signed with the published key pair of `dev_jwks.json`, which the service trusts only with
`HP_CDS_DEV_KEYS=true` outside production. ``URL`` is the exact URL to call (the ``aud``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

import jwt

from app.cds.auth import DEV_ISSUER, DEV_JWKS_PATH


def dev_token(audience: str, lifetime_s: int = 300) -> str:
    """A fresh ES384 token of issuer ``dev`` for ``audience`` (a new ``jti`` each time)."""
    jwk = json.loads(DEV_JWKS_PATH.read_text())[DEV_ISSUER]["keys"][0]
    now = int(time.time())
    claims = {
        "iss": DEV_ISSUER,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime_s,
        "jti": str(uuid.uuid4()),
    }
    key = jwt.PyJWK(jwk, algorithm="ES384")
    return jwt.encode(claims, key.key, algorithm="ES384", headers={"kid": jwk["kid"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "url", help="the exact URL the token is for, e.g. http://127.0.0.1:8000/cds-services"
    )
    parser.add_argument("--lifetime", type=int, default=300, help="seconds (default 300)")
    args = parser.parse_args()
    sys.stdout.write(dev_token(args.url, args.lifetime) + "\n")


if __name__ == "__main__":
    main()
