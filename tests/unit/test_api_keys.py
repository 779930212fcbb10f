"""API keys: parsing, hashing, constant-time lookup, roles; the token-bucket limiter."""

from __future__ import annotations

import pytest

from app.security.api_keys import ApiKeyStore, Principal, digest
from app.security.rate_limit import TokenBucketLimiter


def test_keys_are_kept_only_as_digests() -> None:
    store = ApiKeyStore.from_spec("s3cret-admin:admin, s3cret-clin:clinician")
    assert len(store) == 2
    assert "s3cret-admin" not in repr(vars(store))
    admin = store.authenticate("s3cret-admin")
    assert admin is not None and admin.role == "admin"
    assert admin.key_id == digest("s3cret-admin")[:12]
    clinician = store.authenticate("s3cret-clin")
    assert clinician is not None and clinician.role == "clinician"


@pytest.mark.parametrize("presented", [None, "", "nope", "s3cret-admin ", "S3CRET-ADMIN"])
def test_unknown_keys_are_refused(presented: str | None) -> None:
    assert ApiKeyStore.from_spec("s3cret-admin:admin").authenticate(presented) is None


def test_digest_entries_authenticate_the_clear_key() -> None:
    store = ApiKeyStore.from_spec(f"sha256={digest('token-1')}:clinician")
    principal = store.authenticate("token-1")
    assert principal is not None and principal.role == "clinician"


def test_key_containing_a_colon_keeps_everything_before_the_role() -> None:
    store = ApiKeyStore.from_spec("a:b:c:admin")
    assert store.authenticate("a:b:c") is not None


@pytest.mark.parametrize(
    "spec", ["justakey", "key:root", ":admin", "sha256=abc:admin", f"sha256={'z' * 64}:admin"]
)
def test_malformed_specs_are_rejected(spec: str) -> None:
    with pytest.raises(ValueError):
        ApiKeyStore.from_spec(spec)


def test_roles_are_ordered() -> None:
    admin, clinician = Principal("a", "admin"), Principal("c", "clinician")
    assert admin.may("admin") and admin.may("clinician")
    assert clinician.may("clinician") and not clinician.may("admin")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_refuses_with_retry_after() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(per_minute=3, clock=clock)
    assert [limiter.acquire("k") for _ in range(3)] == [None, None, None]
    assert limiter.acquire("k") == 20.0  # 3/min: one token every 20 s
    assert limiter.acquire("other") is None  # buckets are per key
    clock.now += 20
    assert limiter.acquire("k") is None
    assert limiter.acquire("k") is not None
