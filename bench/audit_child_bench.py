"""CPU of the audit writer's child on a 1,000-patient batch, and of the serving process's
encoding of it, for this checkout and (``--compare REV``) another revision, alternating.

Usage: ``python bench/audit_child_bench.py [--reps 25] [--rounds 3] [--compare REV]
[--postgres]``. Rows: 1,000 cohort records validated by `PatientRecord` (as the batch route
hands them over) and ~600-byte response items. Measured in one process per revision and
round (``time.process_time``, medians of ``--reps``): ``encode``, `EncodedRows.of_batch` in
the serving process; ``child``, what the child does with the pickled payload: unpickle, seal
into the chain, INSERT and COMMIT into a SQLite file (or a throwaway PostgreSQL schema).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = {
    "model_source": "mlflow",
    "diagnosis_version": "3",
    "treatment_version": "3",
    "run_id": "0123456789abcdef0123456789abcdef",
}


def body(pid: str, i: int) -> dict[str, Any]:
    """A response item of the batch path's shape."""
    top = [
        {"code": f"dx{j}", "label": f"Diagnosis {j}", "probability": 0.1 + j / 7} for j in range(3)
    ]
    diagnosis = {"code": "pneumonia", "label": "Pneumonia", "probability": 0.6 + i / 1e6}
    model = {"source": "mlflow", "diagnosis_version": "3", "treatment_version": "3", "run_id": "r"}
    return {
        "prediction_id": pid,
        "diagnosis": {**diagnosis, "top_k": top},
        "treatment": {"code": "admit_ward", "label": "Admit to ward", "probability": 0.7},
        "prediction_quality": "high",
        "missing_features": [],
        "imputed_features": ["glucose"],
        "news2": {"score": 5, "band": "medium"},
        "warnings": [{"code": "hypoxia", "severity": "high", "message": "SpO2 88 % < 90 %"}],
        "model": model,
        "explanation": None,
    }


def writer() -> Callable[[Any, list[Any], Any], Any]:
    """How this revision's child writes queued items (the API before the column batches too)."""
    try:
        from app.audit.rows import batches
        from app.store.prediction_batch import save_batches

        return lambda session, items, chain: save_batches(session, batches(items), chain)
    except ImportError:
        from app.audit.rows import expand  # type: ignore[attr-defined]
        from app.store.repository import save_predictions

        return lambda session, items, chain: save_predictions(session, expand(items), chain)


def measure(reps: int, postgres: bool) -> None:
    """In the revision's directory: print ``encode`` and ``child`` medians in ms."""
    import orjson

    from app.audit.rows import EncodedRows
    from app.schemas.patient import PatientRecord
    from app.store import db
    from app.store.chain import Chain
    from app.store.ids import new_ids
    from tests.factories import cohort_payloads

    payloads = cohort_payloads(ROOT / "data" / "clinical_cohort.csv", 1000, seed=1)
    records = [PatientRecord.model_validate(p).to_record() for p in payloads]
    if postgres:
        from tests.pg_schema import empty_pg_schema

        url = empty_pg_schema().__enter__()
    else:
        url = f"sqlite:///{tempfile.mkdtemp()}/audit.db"
    db.upgrade(url)
    engine = db.make_engine(url)
    sessions, chain, write = db.make_sessionmaker(engine), Chain(b"k" * 32), writer()
    encode, child = [], []
    for rep in range(reps + 1):
        ids = new_ids(len(records))
        items = [orjson.dumps(body(pid, i)) for i, pid in enumerate(ids)]
        codes = [("pneumonia", "admit_ward", "high")] * len(ids)
        start = time.process_time()
        rows = EncodedRows.of_batch(datetime.now(UTC), SHARED, ids, codes, records, items)
        encoded = time.process_time() - start
        payload = pickle.dumps([rows], protocol=pickle.HIGHEST_PROTOCOL)
        start = time.process_time()
        with sessions() as session:
            write(session, pickle.loads(payload), chain)
        if rep:  # the first warms the connection and the caches
            encode.append(encoded)
            child.append(time.process_time() - start)
    engine.dispose()
    print(f"{statistics.median(encode) * 1e3:.2f} {statistics.median(child) * 1e3:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", metavar="REV", help="also measure git revision REV")
    parser.add_argument("--postgres", action="store_true", help="HP_TEST_DATABASE_URL's server")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        sys.path.insert(0, os.getcwd())
        logging_off()
        measure(args.reps, args.postgres)
        return
    trees = {"this checkout": ROOT}
    with tempfile.TemporaryDirectory() as tmp:
        if args.compare:
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", args.compare], check=True, capture_output=True
            ).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            trees[args.compare] = Path(tmp)
        print("revision: encode (serving process) / child, ms CPU per 1,000 rows")
        for rnd in range(args.rounds):
            for label, tree in trees.items():
                command = [sys.executable, str(Path(__file__).resolve()), "--measure"]
                command += ["--reps", str(args.reps)] + (["--postgres"] if args.postgres else [])
                env = {**os.environ, "PYTHONPATH": str(tree)}
                out = subprocess.run(command, cwd=tree, env=env, check=True, capture_output=True)
                encode, child = out.stdout.decode().split()
                print(f"round {rnd + 1} {label}: encode {encode} / child {child}")


def logging_off() -> None:
    """The chain logs its head after every write: not what is measured here."""
    import logging

    logging.disable(logging.INFO)


if __name__ == "__main__":
    main()
