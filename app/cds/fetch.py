"""The FHIR data of a hook call: from ``prefetch``, else read from the EHR's ``fhirServer``.

CDS Hooks §Prefetch: a key the client could not satisfy is absent (or an OperationOutcome);
``null`` means it has no such data. What is needed and can be had neither way is a 412.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from app.cds.definition import PATIENT_TOKEN, PREFETCH, REQUIRED_PREFETCH
from app.cds.errors import PrefetchUnavailableError

logger = logging.getLogger(__name__)

EXPECTED_TYPE = {"patient": "Patient", "observations": "Bundle", "conditions": "Bundle"}
MAX_PAGES = 5
FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class FhirServer:
    """Where to read what prefetch lacks: base URL and the bearer token the EHR granted."""

    base_url: str
    access_token: str | None
    timeout_s: float


def _given(prefetch: dict[str, Any], key: str) -> tuple[bool, Any]:
    """(whether the client answered ``key``, its resource or None for "no data")."""
    if key not in prefetch:
        return False, None
    value = prefetch[key]
    if value is None:
        return True, None
    if isinstance(value, dict) and value.get("resourceType") == EXPECTED_TYPE[key]:
        return True, value
    return False, None  # an OperationOutcome, or anything else: not satisfied


async def gather(
    prefetch: dict[str, Any], patient_id: str, server: FhirServer | None
) -> dict[str, Any]:
    """Every prefetch key's resource (None: no data); 412 when a needed one cannot be had."""
    out: dict[str, Any] = {}
    missing = []
    for key in PREFETCH:
        answered, value = _given(prefetch, key)
        if answered:
            out[key] = value
        else:
            missing.append(key)
    if missing and server is not None:
        async with _client(server) as client:
            for key in missing:
                value = await _read(client, server, key, patient_id)
                if value is not None or key not in REQUIRED_PREFETCH:
                    out[key] = value
    out.setdefault("conditions", None)  # optional: without it, no symptoms from Conditions
    lacking = [k for k in REQUIRED_PREFETCH if k not in out or (k == "patient" and not out[k])]
    if lacking:
        raise PrefetchUnavailableError(details=[_detail(k) for k in lacking])
    if out["patient"].get("id", patient_id) != patient_id:  # never predict for another patient
        raise PrefetchUnavailableError(
            details=[{"field": "prefetch.patient", "value": None, "reason": _OTHER_PATIENT}]
        )
    return out


_OTHER_PATIENT = "Patient.id is not context.patientId"


def _detail(key: str) -> dict[str, Any]:
    return {"field": f"prefetch.{key}", "value": None, "reason": "neither given nor fetchable"}


def _client(server: FhirServer) -> httpx.AsyncClient:
    headers = {"Accept": FHIR_JSON}
    if server.access_token:
        headers["Authorization"] = f"Bearer {server.access_token}"
    timeout = httpx.Timeout(server.timeout_s, connect=server.timeout_s / 2)
    return httpx.AsyncClient(headers=headers, timeout=timeout, follow_redirects=False)


async def _read(
    client: httpx.AsyncClient, server: FhirServer, key: str, patient_id: str
) -> dict[str, Any] | None:
    """The resource of prefetch ``key`` read from the server (a search: its pages joined);
    None when the first read fails (a later page failing keeps the pages read)."""
    base = server.base_url.rstrip("/") + "/"
    url: str | None = base + PREFETCH[key].replace(PATIENT_TOKEN, patient_id)
    found: dict[str, Any] | None = None
    for _ in range(MAX_PAGES):
        if url is None:
            break
        try:
            response = await client.get(url)
            body = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning(
                "FHIR read failed", extra={"prefetch_key": key, "error": type(exc).__name__}
            )
            return found
        if not isinstance(body, dict) or body.get("resourceType") != EXPECTED_TYPE[key]:
            logger.warning(
                "FHIR read refused", extra={"prefetch_key": key, "status": response.status_code}
            )
            return found
        if found is None:
            found = body
        else:
            found.setdefault("entry", []).extend(body.get("entry") or [])
        url = _next_page(body, base)
    return found


def _next_page(bundle: dict[str, Any], base: str) -> str | None:
    """The Bundle's ``next`` link, followed only on the same server."""
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url.startswith(base):
                return url
    return None
