"""Audit insert cost as the table grows: random (version-4) vs time-ordered (version-7) ids.

Usage: ``python bench/audit_growth.py [--batches 300] [--postgres]``. Real audit rows (one
in-process ``POST /predict/batch`` of 1,000 cohort patients, as `bench/audit_bench.py` reads
them) are written 1,000 per transaction by `save_predictions` into two fresh stores, one batch
each in turn: under version-4 ids (what prediction ids were) and version-7 ids (`app.store.ids`).
Reported: the median wall and thread CPU of a batch in each band of table sizes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.audit_bench import N_ROWS, audit_rows, store, timed


def v4_ids(n: int) -> list[str]:
    return [str(uuid.UUID(bytes=os.urandom(16), version=4)) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=300, help="1,000-row batches per variant")
    parser.add_argument("--bands", type=int, default=6, help="table-size bands reported")
    parser.add_argument("--postgres", action="store_true", help="HP_TEST_DATABASE_URL's server")
    args = parser.parse_args()

    rows = audit_rows(N_ROWS)
    from app.store import db, repository
    from app.store.ids import new_ids

    variants = {"version 4 (random)": v4_ids, "version 7 (time-ordered)": new_ids}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    with store(args.postgres) as url_4, store(args.postgres) as url_7:
        engines = [db.make_engine(u) for u in (url_4, url_7)]
        sessions = [db.make_sessionmaker(e) for e in engines]
        for b in range(args.batches):
            for (name, ids), made in zip(variants.items(), sessions, strict=True):
                batch: list[dict[str, Any]] = [
                    {**r, "id": i} for r, i in zip(rows, ids(len(rows)), strict=True)
                ]
                samples[name].append(timed(repository.save_predictions, made, [batch]))
            if (b + 1) % 50 == 0:
                print(f"  {b + 1:,} / {args.batches:,} batches", file=sys.stderr, flush=True)
        for e in engines:
            e.dispose()

    backend = "PostgreSQL" if args.postgres else "SQLite file (WAL)"
    band = max(1, args.batches // args.bands)
    print(f"\n{backend}: {N_ROWS:,}-row transactions, medians per band of table size")
    print(f"{'rows in table':>17} " + " ".join(f"{n:>26}" for n in variants))
    print(f"{'':>17} " + " ".join(f"{'wall ms':>13}{'CPU ms':>13}" for _ in variants))
    for start in range(0, args.batches, band):
        cells = []
        for name in variants:
            chunk = samples[name][start : start + band]
            cpu = statistics.median(s[0] for s in chunk) * 1e3
            wall = statistics.median(s[1] for s in chunk) * 1e3
            cells.append(f"{wall:13.1f}{cpu:13.1f}")
        span = f"{start * N_ROWS // 1000}k-{(start + len(chunk)) * N_ROWS // 1000}k"
        print(f"{span:>17} " + " ".join(cells))


if __name__ == "__main__":
    main()
