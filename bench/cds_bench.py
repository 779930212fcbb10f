"""Latency of a CDS Hooks call with a full prefetch: p50 / p99, sequential and at 8 connections.

Usage: ``python bench/cds_bench.py [--n 400] [--connections 8] [--rounds 3] [--compare
LABEL=REV] [--alg RS384] [--workers 1]`` (``make bench-cds``). Starts ``python -m app`` on the
champion of the environment's settings (``make train`` first), trusting a JWKS of a key made
here (ES384 by default; ``--alg RS384``, the other accepted algorithm, checks far faster). Each
call is a different cohort patient as FHIR R4 (Patient, a Bundle of Observations in the
contract's LOINC codes, SNOMED Conditions), with its own token signed beforehand (a new
``jti``: the replay cache refuses a token twice). The client is wrk (one thread, C,
`bench/wrk/cds.lua`) on the same cores: its CPU a call is reported beside the server's. Each
round measures ``n`` calls sequentially, then ``n`` at ``connections``, after a warm-up and a
settle pause (the drift worker's first report runs within 10 s of start-up). Its later
refreshes are parked (``HP_DRIFT_REFRESH_S=3600``): an Evidently report in a child process,
every minute by default, costs seconds of CPU that land inside a measurement or not by chance;
it is no part of a CDS call, and ``--drift-refresh-s 60`` measures with it. ``--compare`` also
serves a git worktree of REV (same venv, models and bodies); the servers are measured in
alternating order, round by round. Writes ``bench/results/<date>-cds.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pandas as pd
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.settings import Settings  # noqa: E402
from bench.run import compared, remove_worktrees  # noqa: E402
from bench.servers import PY, Server, free_port, process_tree, start, stop  # noqa: E402
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


def tokens(key: Any, kid: str, audience: str, n: int, alg: str = "ES384") -> list[str]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": audience, "iat": now, "exp": now + 900}
    head = {"kid": kid, "typ": "JWT"}
    return [
        jwt.encode(claims | {"jti": str(uuid.uuid4())}, key, algorithm=alg, headers=head)
        for _ in range(n)
    ]


LUA = ROOT / "bench" / "wrk" / "cds.lua"


@dataclass
class Target:
    """A server under test, its URL and the figures of its measurements."""

    label: str
    server: Server
    url: str
    runs: dict[int, list[dict[str, float]]] = field(default_factory=dict)
    model: str = "?"


def served_model(port: int) -> str:
    """The models a server answers with, from ``GET /health/ready``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=10) as resp:
        info = json.load(resp)
    return (
        f"{info['source']} run {info['run_id']}, diagnosis v{info['diagnosis_version']}, "
        f"treatment v{info['treatment_version']}"
    )


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its live descendants (audit writer, drift
    worker), from /proc."""
    total = 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def client_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has been waited for
    return usage.ru_utime + usage.ru_stime


def run_wrk(cmd: list[str], marker: Path) -> str:
    """wrk's output; interrupted (SIGINT: it reports and exits) once its script made ``marker``."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        while proc.poll() is None:
            if marker.exists():
                proc.send_signal(signal.SIGINT)
                break
            time.sleep(0.02)
        out, _ = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {out}")
    return out


def measure(target: Target, payloads: list[bytes], auth: list[str], connections: int) -> dict:
    """``len(payloads)`` calls at ``connections`` (wrk, one thread); each token used once."""
    assert target.server.proc is not None
    n = len(payloads)
    pairs = Path(tempfile.mkstemp(prefix="cds-pairs-", suffix=".tsv")[1])
    lines = [f"{auth[i]}\t{payloads[i % n].decode()}" for i in range(n + connections)]
    pairs.write_text("\n".join(lines) + "\n")
    cmd = ["wrk", "-t1", f"-c{connections}", "-d600s", "--timeout", "30s", "-s", str(LUA)]
    marker = pairs.with_suffix(".done")
    cmd += [target.url, "--", str(pairs), PATH, str(n), str(marker)]
    cpu0, client0 = tree_cpu_s(target.server.proc.pid), client_cpu_s()
    out = run_wrk(cmd, marker)
    cpu, client = tree_cpu_s(target.server.proc.pid) - cpu0, client_cpu_s() - client0
    pairs.unlink()
    marker.unlink()
    d = json.loads(next(ln for ln in out.splitlines() if ln.startswith("{")))
    bad = d["failed"] + d["connect"] + d["read"] + d["write"] + d["timeout"]
    if bad or d["requests"] < n:
        raise RuntimeError(f"{target.label}: {bad} failed calls, {d['requests']} of {n}: {d}")
    return {
        "n": d["requests"],
        "p50": d["p50_us"] / 1000,
        "p99": d["p99_us"] / 1000,
        "rate": d["requests"] / (d["duration_us"] / 1e6),
        "server_cpu": cpu / d["requests"] * 1000,
        "client_cpu": client / d["requests"] * 1000,
        "load": os.getloadavg()[0],
    }


def row(label: str, r: dict[str, float]) -> str:
    return (
        f"| {label} | {r['n']:.0f} | {r['p50']:.2f} ms | {r['p99']:.2f} ms | {r['rate']:.0f} | "
        f"{r['server_cpu']:.2f} ms | {r['client_cpu']:.2f} ms | {r['load']:.1f} |"
    )


def report(targets: list[Target], args: argparse.Namespace, loads: tuple[float, float]) -> str:
    """The markdown report: every round, then the median of the rounds per server."""
    lines = [
        "| server, calls, round | n | p50 | p99 | calls/s | server CPU a call | wrk CPU a call "
        "| load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in targets:
        for conns, runs in t.runs.items():
            for i, r in enumerate(runs, 1):
                lines.append(row(f"{t.label}, {calls(conns)}, round {i}", r))
    lines += ["", "Median of the rounds:", "", *lines[:2]]
    for t in targets:
        for conns, runs in t.runs.items():
            med = {k: sorted(r[k] for r in runs)[len(runs) // 2] for k in runs[0]}
            lines.append(row(f"**{t.label}, {calls(conns)}**", med))
    cmd = " ".join(["python bench/cds_bench.py", *sys.argv[1:]])
    head = (
        f"# CDS Hooks call latency, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"`{cmd}` (`make bench-cds`): {args.n} calls per measurement after {args.warmup} "
        f"warm-up calls, {args.rounds} rounds, `python -m app` with {args.workers} worker(s) per "
        f"server, {args.alg} client tokens, wrk "
        f"(`-t1`, {os.cpu_count()} cores shared with the server and other work); load average "
        f"{loads[0]:.1f} at the start, {loads[1]:.1f} at the end. Server CPU: the server and its "
        "children (audit writer, drift worker); drift report refreshed every "
        f"{args.drift_refresh_s:g} s (its first run is before the rounds).\n\n"
        + "".join(f"- {t.label}: {t.model}\n" for t in targets)
    )
    return head + "\n" + "\n".join(lines) + "\n"


def calls(connections: int) -> str:
    return "sequential" if connections == 1 else f"{connections} connections"


def targets_for(args: argparse.Namespace, settings: Settings, tmp: Path) -> list[Target]:
    """This checkout's server, then one per ``--compare LABEL=REV`` (a worktree of REV)."""
    port = free_port()
    env = {
        "HP_PORT": str(port),
        "HP_HOST": "127.0.0.1",
        "HP_WORKERS": str(args.workers),
        "HP_DATABASE_URL": f"sqlite:///{tmp / 'audit.db'}",
        "HP_CDS_JWKS_FILE": str(tmp / "jwks.json"),
        "HP_ACCESS_LOG": "false",
        "HP_LOG_LEVEL": "WARNING",
        "HP_DRIFT_REFRESH_S": str(args.drift_refresh_s),
    }
    base = Server("cds", "HealthPredict CDS", [PY, "-m", "app"], env, "/health/ready", PATH, tmp)
    targets = [Target("this checkout", base, f"http://127.0.0.1:{port}{PATH}")]
    for spec in args.compare:
        label, _, rev = spec.partition("=")
        port = free_port()
        other = compared(base, label, rev, tmp, settings, port)
        other.env["HP_DATABASE_URL"] = f"sqlite:///{tmp / f'audit-{label}.db'}"
        targets.append(Target(f"{label} ({rev})", other, f"http://127.0.0.1:{port}{PATH}"))
    return targets


def measure_all(
    targets: list[Target], payloads: list[bytes], key: Any, args: argparse.Namespace
) -> None:
    """Warm-up, settle, then ``rounds`` rounds: each server sequential then concurrent, the
    servers' order reversed every round."""
    spare = args.connections

    def signed(t: Target, n: int) -> list[str]:
        return tokens(key, "bench", t.url, n + spare, args.alg)

    for t in targets:
        measure(t, payloads[: args.warmup], signed(t, args.warmup), args.connections)
    time.sleep(args.settle)
    for r in range(args.rounds):
        for t in targets if r % 2 == 0 else targets[::-1]:
            for conns in (1, args.connections):
                result = measure(t, payloads, signed(t, len(payloads)), conns)
                t.runs.setdefault(conns, []).append(result)
                sys.stderr.write(row(f"{t.label}, {calls(conns)}, round {r + 1}", result) + "\n")


def signing_key(alg: str) -> tuple[Any, dict[str, Any]]:
    """A new private key and its public JWK (kid ``bench``)."""
    if alg == "RS384":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = RSAAlgorithm.to_jwk(private.public_key())
    else:
        private = ec.generate_private_key(ec.SECP384R1())
        public = ECAlgorithm.to_jwk(private.public_key())
    return private, json.loads(public) | {"kid": "bench", "alg": alg}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=400, help="calls per measurement")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=100, help="warm-up calls per server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=30.0, help="idle seconds before rounds")
    parser.add_argument("--alg", choices=("ES384", "RS384"), default="ES384")
    parser.add_argument("--workers", type=int, default=1, help="HP_WORKERS of each server")
    parser.add_argument("--drift-refresh-s", type=float, default=3600.0)
    parser.add_argument("--compare", action="append", default=[], metavar="LABEL=REV")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    settings = Settings()
    tmp = Path(tempfile.mkdtemp(prefix="cds-bench-"))
    private, jwk = signing_key(args.alg)
    (tmp / "jwks.json").write_text(json.dumps({ISSUER: {"keys": [jwk]}}))
    payloads = bodies(settings, args.n)
    targets = targets_for(args, settings, tmp)
    loads = [os.getloadavg()[0]]
    try:
        for t in targets:
            start(t.server, int(t.server.env["HP_PORT"]), tmp)
            t.model = served_model(int(t.server.env["HP_PORT"]))
        measure_all(targets, payloads, private, args)
    finally:
        for t in targets:
            stop(t.server)
        remove_worktrees([t.server for t in targets])
    loads.append(os.getloadavg()[0])
    text = report(targets, args, (loads[0], loads[1]))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{datetime.now(UTC):%Y-%m-%d}-cds.md"
    path.write_text(text)
    sys.stdout.write(text + f"\n(written to {path})\n")


if __name__ == "__main__":
    main()
