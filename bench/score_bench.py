"""Bulk scoring side by side, in one run: patients/s of `make score ENGINE=pandas`,
`ENGINE=spark` and `POST /predict/batch`, and Spark's start-up cost.

The same champion (the project's registry; trained unless one exists) and the same cohort
sample for the three paths. The file engines are timed from reading the input to the written
output (model loading excluded: done once, as in a run); Spark's session start is reported on
its own and with the run. The API is one `python -m app` process (HP_WORKERS=1) taking batches
of ``--batch`` patients one after the other from one client, audit included. The pandas and
Spark outputs are also compared row for row (input order at a size where Spark splits the file).

Usage: ``python bench/score_bench.py [--rows 200000] [--api-rows 50000] [--batch 1000]
[--spark-master local[*]]``; appends a table to ``bench/results/<date>-scoring.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.scoring import job  # noqa: E402
from app.settings import Settings  # noqa: E402
from bench.bodies import cohort_rows  # noqa: E402
from bench.run import API_KEY, ensure_models, servers  # noqa: E402
from bench.servers import free_port, start, stop  # noqa: E402

console = Console(stderr=True)
LABELS = ("diagnosis", "treatment")


def write_input(cohort: Path, rows: int, out: Path) -> Path:
    """``rows`` cohort rows (sampled with replacement, labels dropped, a patient id) as CSV."""
    frame = pd.read_csv(cohort, dtype=str, keep_default_na=False)
    frame = frame.sample(n=rows, replace=True, random_state=0).drop(columns=list(LABELS))
    frame.insert(0, "patient_id", [f"P{i:07d}" for i in range(rows)])
    frame.to_csv(out, index=False)
    return out


def bench_files(settings: Settings, source: Path, tmp: Path, master: str) -> dict[str, float]:
    from app.scoring import spark

    predictor = job.load_predictor(settings)
    by_pandas = job.run(settings, source, tmp / "pandas.parquet", predictor=predictor)
    console.log(f"pandas: {by_pandas.patients_per_s:,.0f} patients/s")
    session, startup = spark.start_session(master)
    try:
        by_spark = job.run(
            settings, source, tmp / "spark.parquet", "spark",
            spark_session=session, predictor=predictor,
        )  # fmt: skip
    finally:
        session.stop()
    console.log(f"spark: {by_spark.patients_per_s:,.0f} patients/s, start-up {startup:.1f} s")
    same = pd.read_parquet(by_pandas.output).equals(pd.read_parquet(by_spark.output))
    rows = by_pandas.scored + by_pandas.rejected
    return {
        "pandas": by_pandas.patients_per_s,
        "spark": by_spark.patients_per_s,
        "spark_with_startup": rows / (by_spark.seconds + startup),
        "spark_startup_s": startup,
        "rejected": by_pandas.rejected,
        "same": float(same),
    }


def bench_api(settings: Settings, rows: int, batch: int, tmp: Path) -> float:
    """Patients/s of `POST /predict/batch` (one process, sequential batches, audit on)."""
    payloads = cohort_rows(settings.training_data_path, rows)
    port = free_port()
    unused = dict.fromkeys(("canonical", "mlflow", "bentoml"), tmp / "unused.json")
    server = servers(settings, unused, tmp, dict.fromkeys("abcdf", port))
    api = server[0]
    start(api, port, tmp)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            headers = {"X-API-Key": API_KEY}
            client.post("/predict/batch", json={"records": payloads[:batch]}, headers=headers)
            t0 = time.perf_counter()
            for i in range(0, rows, batch):
                chunk = payloads[i : i + batch]
                r = client.post("/predict/batch", json={"records": chunk}, headers=headers)
                r.raise_for_status()
            seconds = time.perf_counter() - t0
    finally:
        stop(api)
    console.log(f"api batch: {rows / seconds:,.0f} patients/s")
    return rows / seconds


def report(args: argparse.Namespace, files: dict[str, float], api: float) -> str:
    table = Table(title=f"bulk scoring, {args.rows:,} patients ({args.api_rows:,} for the API)")
    for col in ("path", "patients/s", "note"):
        table.add_column(col)
    rows = [
        ("make score ENGINE=pandas", files["pandas"], "one process, chunks of 10,000"),
        ("make score ENGINE=spark", files["spark"], f"{args.spark_master}, session running"),
        ("  … with Spark start-up", files["spark_with_startup"],
         f"start-up {files['spark_startup_s']:.1f} s"),
        ("POST /predict/batch", api, f"1 process, batches of {args.batch}, audit on"),
    ]  # fmt: skip
    lines = ["| path | patients/s | note |", "|---|---:|---|"]
    for name, value, note in rows:
        table.add_row(name, f"{value:,.0f}", note)
        lines.append(f"| {name} | {value:,.0f} | {note} |")
    console.print(table)
    same = "identical" if files["same"] else "DIFFERENT"
    lines.append(
        f"\npandas and Spark outputs: {same}; {files['rejected']:,.0f} rows rejected "
        "(the cohort's outliers)."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--api-rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--spark-master", default="local[*]")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    # A generous MLflow deadline: on a loaded machine the 10 s default falls back to BentoML.
    settings = Settings(log_level="WARNING", mlflow_timeout_s=60)
    ensure_models(settings)
    with tempfile.TemporaryDirectory(prefix="hp-score-bench-") as name:
        tmp = Path(name)
        source = write_input(settings.training_data_path, args.rows, tmp / "intake.csv")
        files = bench_files(settings, source, tmp, args.spark_master)
        api = bench_api(settings, args.api_rows, args.batch, tmp)
    text = report(args, files, api)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{datetime.now(UTC):%Y-%m-%d}-scoring.md"
    path.write_text(f"# Bulk scoring ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n{text}\n")
    console.log(f"wrote {path}")


if __name__ == "__main__":
    main()
