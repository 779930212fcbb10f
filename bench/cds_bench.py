"""Latency of a CDS Hooks call with a full prefetch: p50 / p99, sequential and at 8 connections.

Usage: ``python bench/cds_bench.py [--n 400] [--connections 8]`` (``make bench-cds``). Starts
``python -m app`` (one worker) on the champion of the environment's settings (``make train``
first), trusting a JWKS of an ES384 key made here; each call is a different cohort patient as
FHIR R4 (Patient, a Bundle of Observations in the contract's LOINC codes, SNOMED Conditions),
with its own signed token (a new ``jti``: the replay cache refuses a token twice). The client is
httpx in this process, on the same machine: its own cost is in the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
import pandas as pd
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.settings import Settings  # noqa: E402
from bench.servers import PY, Server, free_port, start, stop  # noqa: E402
from train_pipeline.contract import ED_COHORT, SYMPTOM_SEPARATOR  # noqa: E402
from train_pipeline.fhir_codes import (  # noqa: E402
    LOINC_CODES,
    LOINC_SYSTEM,
    SNOMED_CODES,
    SNOMED_SYSTEM,
    UCUM_SYSTEM,
)

ISSUER = "https://bench-ehr.example.org/"
PATH = "/cds-services/healthpredict-ed-triage"
FIRST_LOINC = {c.feature: c for c in reversed(LOINC_CODES)}  # one code per field, its first unit
SYMPTOM_SNOMED = {value: code for code, _, value, _ in SNOMED_CODES if value}
HISTORY_SNOMED = {feature: code for code, feature, value, _ in SNOMED_CODES if value is None}


def fhir_prefetch(row: dict[str, Any], index: int) -> dict[str, Any]:
    """One cohort row as the prefetch an EHR would send."""
    when = "2026-11-30T09:00:00Z"
    pid = f"bench-{index}"
    birth = f"{2026 - int(row['age']) - 1}-12-31"
    observations = []
    for name, loinc in FIRST_LOINC.items():
        value = row.get(name)
        if value is None or pd.isna(value):
            continue
        observations.append(
            {
                "resourceType": "Observation",
                "id": f"{pid}-{loinc.code}",
                "status": "final",
                "code": {"coding": [{"system": LOINC_SYSTEM, "code": loinc.code}]},
                "subject": {"reference": f"Patient/{pid}"},
                "effectiveDateTime": when,
                "valueQuantity": {
                    "value": float(value),
                    "system": UCUM_SYSTEM,
                    "code": loinc.units[0].code,
                },
            }
        )
    codes = [
        SYMPTOM_SNOMED[s]
        for s in str(row.get("symptoms") or "").split(SYMPTOM_SEPARATOR)
        if s in SYMPTOM_SNOMED
    ]
    codes += [code for feature, code in HISTORY_SNOMED.items() if row.get(feature) in (1, True)]
    conditions = [
        {
            "resourceType": "Condition",
            "id": f"{pid}-{code}",
            "code": {"coding": [{"system": SNOMED_SYSTEM, "code": code}]},
            "subject": {"reference": f"Patient/{pid}"},
        }
        for code in codes
    ]

    def bundle(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in items],
        }

    return {
        "patient": {
            "resourceType": "Patient",
            "id": pid,
            "gender": "male" if row["sex"] == "M" else "female",
            "birthDate": birth,
        },
        "observations": bundle(observations),
        "conditions": bundle(conditions),
    }


def bodies(settings: Settings, n: int) -> list[bytes]:
    frame = pd.read_csv(settings.training_data_path, nrows=n * 2)
    frame = frame[list(ED_COHORT.feature_names)].dropna(subset=["age", "sex"]).head(n)
    rows = frame.to_dict("records")
    return [
        json.dumps(
            {
                "hook": "patient-view",
                "hookInstance": str(uuid.uuid4()),
                "context": {"userId": "Practitioner/bench", "patientId": f"bench-{i}"},
                "prefetch": fhir_prefetch(row, i),
            }
        ).encode()
        for i, row in enumerate(rows)
    ]


def tokens(key: Any, kid: str, audience: str, n: int) -> list[str]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": audience, "iat": now, "exp": now + 900}
    head = {"kid": kid, "typ": "JWT"}
    return [
        jwt.encode(claims | {"jti": str(uuid.uuid4())}, key, algorithm="ES384", headers=head)
        for _ in range(n)
    ]


async def run(url: str, payloads: list[bytes], auth: list[str], connections: int) -> list[float]:
    """Every payload posted once, over ``connections`` keep-alive connections; latencies (s)."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(payloads)):
        queue.put_nowait(i)
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            headers = {"Authorization": f"Bearer {auth[i]}", "Content-Type": "application/json"}
            t0 = time.perf_counter()
            response = await client.post(url, content=payloads[i], headers=headers)
            latencies.append(time.perf_counter() - t0)
            if response.status_code != 200 or not response.json()["cards"]:
                raise RuntimeError(f"CDS call failed: {response.status_code} {response.text[:200]}")

    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(connections)))
    return latencies


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (from /proc; its audit child not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(label: str, latencies: list[float], wall_s: float, cpu: float) -> str:
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    rate = len(ms) / wall_s
    per_call = cpu / len(ms) * 1000
    return (
        f"| {label} | {len(ms)} | {statistics.median(ms):.2f} ms | {p99:.2f} ms | {rate:.0f} "
        f"| {per_call:.2f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=400, help="calls per measurement")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()

    settings = Settings()
    tmp = Path(tempfile.mkdtemp(prefix="cds-bench-"))
    private = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(ECAlgorithm.to_jwk(private.public_key())) | {"kid": "bench", "alg": "ES384"}
    (tmp / "jwks.json").write_text(json.dumps({ISSUER: {"keys": [jwk]}}))
    port = free_port()
    env = {
        "HP_PORT": str(port),
        "HP_HOST": "127.0.0.1",
        "HP_WORKERS": "1",
        "HP_DATABASE_URL": f"sqlite:///{tmp / 'audit.db'}",
        "HP_CDS_JWKS_FILE": str(tmp / "jwks.json"),
        "HP_ACCESS_LOG": "false",
        "HP_LOG_LEVEL": "WARNING",
    }
    server = Server(
        "cds", "HealthPredict CDS", [PY, "-m", "app"], env, "/health/ready", PATH, tmp / "unused"
    )
    url = f"http://127.0.0.1:{port}{PATH}"
    payloads = bodies(settings, args.n)
    auth = tokens(private, "bench", url, args.warmup + 2 * len(payloads))
    start(server, port, tmp)
    try:
        asyncio.run(run(url, payloads[: args.warmup], auth[: args.warmup], 1))
        auth = auth[args.warmup :]
        lines = [
            "| calls | n | p50 | p99 | calls/s | server CPU a call |",
            "|---|---|---|---|---|---|",
        ]
        for connections, chunk in (
            (1, auth[: len(payloads)]),
            (args.connections, auth[len(payloads) :]),
        ):
            assert server.proc is not None
            t0, cpu0 = time.perf_counter(), cpu_s(server.proc.pid)
            latencies = asyncio.run(run(url, payloads, chunk, connections))
            label = "sequential" if connections == 1 else f"{connections} connections"
            cpu = cpu_s(server.proc.pid) - cpu0
            lines.append(summary(label, latencies, time.perf_counter() - t0, cpu))
    finally:
        stop(server)
    load = os.getloadavg()[0]
    sys.stdout.write("\n".join(lines) + f"\n(load average {load:.1f} on {os.cpu_count()} cores)\n")


if __name__ == "__main__":
    main()
