"""Latency of SHAP explanations: `explain()` alone and `POST /predict?explain=true` end to end.

Usage: ``python bench/explain_bench.py [--n 300]`` with the environment's settings (`HP_*`):
the MLflow champion (BentoML fallback) is served by an in-process app (TestClient, real
lifespan, audit to a temporary SQLite file); patients are rows of the training CSV.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.factories


def quantiles(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples)
    pick = lambda q: ms[min(len(ms) - 1, int(q * len(ms)))]  # noqa: E731
    return {"p50": statistics.median(ms), "p95": pick(0.95), "p99": pick(0.99), "n": len(ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=300, help="patients timed per case")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="explain-bench-"))
    os.environ.setdefault("HP_DATABASE_URL", f"sqlite:///{tmp / 'bench.db'}")
    os.environ.setdefault("HP_RATE_LIMIT_PER_MINUTE", "1000000")
    os.environ.setdefault("HP_ACCESS_LOG", "false")
    os.environ.setdefault("HP_LOG_LEVEL", "WARNING")

    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.serving.explain import explain
    from app.serving.predictor import build_columns
    from app.settings import DEFAULT_CLINICIAN_KEY, get_settings
    from tests.factories import cohort_payloads

    settings = get_settings()
    payloads = cohort_payloads(settings.training_data_path, args.n, seed=1)
    headers = {"X-API-Key": DEFAULT_CLINICIAN_KEY}
    with TestClient(create_app(settings)) as client:
        manager = client.app.state.models  # type: ignore[attr-defined]
        bundle = manager.bundle
        if bundle is None:
            raise SystemExit(f"no model loaded: {manager.status()}")
        console.print(
            f"model: {bundle.source} v{bundle.diagnosis_version} ({bundle.meta.model_type}, "
            f"{bundle.diagnosis.model.tree_count_ if bundle.meta.model_type == 'catboost' else '?'}"
            " trees)"
        )
        features = bundle.diagnosis.features.features
        records = [client.post("/predict", json=p, headers=headers).json() for p in payloads[:1]]
        assert records[0]["diagnosis"], records
        cols = [build_columns([p], features) for p in payloads]
        results: dict[str, list[float]] = {
            "explain() alone": [],
            "POST /predict": [],
            "POST /predict?explain=true": [],
        }
        cases = {
            "explain() alone": lambda i: explain(bundle, cols[i], 5),
            "POST /predict": lambda i: client.post("/predict", json=payloads[i], headers=headers),
            "POST /predict?explain=true": lambda i: client.post(
                "/predict?explain=true", json=payloads[i], headers=headers
            ),
        }
        for call in cases.values():  # warm-up (builds the fast explainer)
            for i in range(min(20, len(payloads))):
                call(i)
        for i in range(len(payloads)):  # interleaved, so a load change hits every case alike
            for name, call in cases.items():
                t0 = time.perf_counter()
                call(i)
                results[name].append(time.perf_counter() - t0)
    table = Table(title="explanation latency (ms)")
    for col in ("case", "n", "p50", "p95", "p99"):
        table.add_column(col)
    for name, samples in results.items():
        q = quantiles(samples)
        table.add_row(name, str(q["n"]), f"{q['p50']:.2f}", f"{q['p95']:.2f}", f"{q['p99']:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
