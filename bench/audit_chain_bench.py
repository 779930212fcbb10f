"""Cost of the audit's HMAC chain on a 1,000-row batch insert: `save_predictions` without and
with a `Chain`, alternating, each into a fresh store (SQLite file, or with ``--postgres`` a
throwaway schema on HP_TEST_DATABASE_URL's server).

Usage: ``python bench/audit_chain_bench.py [--reps 9] [--postgres]``. Rows: canonical records
of `tests.factories.make_patient` and a ~1.4 KB stored response (as `JSONText`, as the batch
path hands them over). Reported: medians of the writing thread's CPU and of wall time, and the
chain's own cost (sealing alone, no database).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.*

from app.store import db
from app.store.chain import Chain
from app.store.ids import new_ids
from app.store.prediction_batch import PREDICTIONS_TABLE
from app.store.repository import save_predictions
from tests.factories import make_patient

N_ROWS = 1000
OUTPUT = {
    "diagnosis": {
        "code": "pneumonia",
        "label": "Community-acquired pneumonia",
        "probability": 0.61234,
        "top_k": [
            {"code": f"dx{i}", "label": f"Diagnosis {i}", "probability": 0.1} for i in range(3)
        ],
    },
    "treatment": {"code": "admit_ward", "label": "Admit to ward", "probability": 0.7},
    "prediction_quality": {"tier": "high", "missing": [], "imputed": []},
    "news2": {"score": 5, "band": "medium", "parts": {f"p{i}": i % 3 for i in range(7)}},
    "warnings": ["sepsis screen advised", "review oxygen prescription"],
    "explanation": [{"feature": f"f{i}", "contribution": 0.01 * i} for i in range(10)],
}


def rows() -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    text = orjson.dumps(OUTPUT).decode()
    return [
        {
            "id": pid,
            "created_at": now,
            "model_source": "mlflow",
            "diagnosis_version": "3",
            "treatment_version": "3",
            "run_id": "0123456789abcdef",
            "inputs": make_patient(age=20 + i % 70),
            "outputs": db.JSONText(text),
            "diagnosis_code": "pneumonia",
            "treatment_code": "admit_ward",
            "quality": "high",
        }
        for i, pid in enumerate(new_ids(N_ROWS))
    ]


@contextmanager
def fresh_store(postgres: bool) -> Iterator[str]:
    with ExitStack() as stack:
        if postgres:
            from tests.pg_schema import empty_pg_schema

            url = stack.enter_context(empty_pg_schema())
        else:
            url = f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory())}/bench.db"
        db.upgrade(url)
        yield url


def one(url: str, chained: bool) -> tuple[float, float]:
    engine = db.make_engine(url)
    sessions = db.make_sessionmaker(engine)
    batch, chain = rows(), Chain(b"bench-key") if chained else None
    try:
        with sessions() as session:  # warm the connection
            save_predictions(session, rows()[:1], chain)
        cpu, wall = time.thread_time(), time.perf_counter()
        with sessions() as session:
            save_predictions(session, batch, chain)
        return time.thread_time() - cpu, time.perf_counter() - wall
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for rep in range(args.reps):
        for chained in (rep % 2 == 0, rep % 2 != 0):
            with fresh_store(args.postgres) as url:
                results[chained].append(one(url, chained))
    for chained, runs in results.items():
        cpu = statistics.median(r[0] for r in runs) * 1000
        wall = statistics.median(r[1] for r in runs) * 1000
        print(
            f"{'chained  ' if chained else 'unchained'} 1,000 rows: "
            f"CPU {cpu:.1f} ms, wall {wall:.1f} ms"
        )
    seal = []
    for _ in range(args.reps):
        batch = [{k: v for k, v in r.items()} for r in rows()]
        start = time.thread_time()
        Chain(b"bench-key").seal(PREDICTIONS_TABLE, batch)
        seal.append(time.thread_time() - start)
    print(
        "sealing alone (canonical JSON + HMAC of 1,000 rows): "
        f"{statistics.median(seal) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
