"""A scoring run: load the champion pair once (the API's loader), score, write output and rejects.

`load_predictor` goes through `ModelManager` (MLflow with its deadline, then the BentoML store),
so a job scores with exactly the pair a replica would serve. The pandas engine scores the input
chunk by chunk in this process; the Spark engine (`app.scoring.spark`) hands the same chunk
function to `mapInPandas`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from app.scoring.batch import (
    OUTPUT_COLUMNS,
    output_frame,
    rejects_frame,
    score_chunk,
)
from app.scoring.files import file_format, read_chunks, rejects_path, write_table
from app.scoring.records import PATIENT_ID, check_columns
from app.serving.loader import ModelManager
from app.serving.predictor import Predictor
from app.settings import Settings

logger = logging.getLogger(__name__)
Engine = Literal["pandas", "spark"]
ScoredRows = tuple[list[dict[str, Any]], list[dict[str, Any]]]


@dataclass(frozen=True)
class ScoreResult:
    """What a run wrote and how fast.

    Attributes:
        scored / rejected: output rows, and input rows refused by validation.
        seconds: wall time of scoring and writing (model loading excluded).
        startup_seconds: the engine's own start-up (Spark session), 0 for pandas.
    """

    output: Path
    rejects: Path
    scored: int
    rejected: int
    seconds: float
    startup_seconds: float = 0.0

    @property
    def patients_per_s(self) -> float:
        return (self.scored + self.rejected) / self.seconds if self.seconds else 0.0


def load_predictor(settings: Settings) -> Predictor:
    """The champion pair through the API's loader, as the predictor `/predict/batch` uses.

    Raises:
        ModelLoadError: neither MLflow nor the BentoML store gave a usable pair.
    """
    manager = ModelManager(settings)

    async def load() -> Predictor:
        try:
            await manager.reload()
            return manager.current()
        finally:
            await manager.stop()

    return asyncio.run(load())


def progress_bar(console: Console | None = None) -> Progress:
    """The rows-scored display (stderr; animated only on a terminal)."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} {task.fields[unit]}"),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )


def score_pandas(predictor: Predictor, source: Path, chunk_rows: int) -> Iterator[ScoredRows]:
    """Score ``source`` chunk by chunk in this process; yields each chunk's (rows, rejects)."""
    first = 0
    for chunk in read_chunks(source, chunk_rows):
        yield score_chunk(predictor, chunk, first)
        first += len(chunk)


def has_patient_id(source: Path) -> bool:
    """Whether the input carries `patient_id` (read from its header or schema only); also
    refuses unknown columns before anything is scored."""
    if file_format(source) == ".csv":
        columns = list(pd.read_csv(source, nrows=0).columns)
    else:
        import pyarrow.parquet as pq

        columns = list(pq.read_schema(source).names)
    check_columns(columns)
    return PATIENT_ID in columns


def collect(
    chunks: Iterator[ScoredRows], progress: Progress | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Gather every chunk's rows, advancing the display by the rows read."""
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    task = progress.add_task("scoring", total=None, unit="rows") if progress else None
    for chunk_rows, chunk_rejects in chunks:
        rows.extend(chunk_rows)
        rejects.extend(chunk_rejects)
        if progress is not None and task is not None:
            progress.update(task, completed=len(rows) + len({r["row"] for r in rejects}))
    return rows, rejects


def write_outputs(
    rows: list[dict[str, Any]], rejects: list[dict[str, Any]], output: Path, with_id: bool
) -> tuple[int, int]:
    """Write the output (input order) and the rejects file; (scored, rejected rows)."""
    rows.sort(key=lambda r: int(r["row"]))
    rejects.sort(key=lambda r: int(r["row"]))  # stable: a row's problems keep their order
    write_table(output_frame(rows, with_id), output)
    write_table(rejects_frame(rejects), rejects_path(output))
    return len(rows), len({r["row"] for r in rejects})


def run(
    settings: Settings,
    source: Path,
    output: Path,
    engine: Engine = "pandas",
    *,
    spark_master: str | None = None,
    spark_session: Any = None,
    predictor: Predictor | None = None,
    show_progress: bool = True,
) -> ScoreResult:
    """Score ``source`` into ``output`` and ``<stem>.rejects.csv``; the same input and models
    always write the same files.

    Args:
        spark_session: an active `SparkSession` to reuse (it is left running); without one the
            Spark engine starts a session on ``spark_master`` and stops it at the end.
        predictor: an already loaded predictor (tests, benchmarks); else the champion is loaded.
    """
    file_format(output)  # refuse a bad output name before any work
    with_id = has_patient_id(source)
    predictor = predictor or load_predictor(settings)
    progress = progress_bar() if show_progress else None
    t0 = time.perf_counter()
    startup, own_session = 0.0, None
    chunks: Iterator[ScoredRows]
    if engine == "spark":
        from app.scoring import spark  # lazy: pyspark and a JVM only for this engine

        if spark_session is None:
            own_session, startup = spark.start_session(spark_master or settings.spark_master)
        t0 = time.perf_counter()
        chunks = spark.score(spark_session or own_session, predictor, source, progress)
    else:
        chunks = score_pandas(predictor, source, settings.scoring_chunk_rows)
    try:
        with progress or contextlib.nullcontext():
            rows, rejects = collect(chunks, progress)
    finally:
        if own_session is not None:
            own_session.stop()
    scored, rejected = write_outputs(rows, rejects, output, with_id)
    seconds = time.perf_counter() - t0
    logger.info("scoring done", extra={"engine": engine, "scored": scored, "rejected": rejected})
    return ScoreResult(output, rejects_path(output), scored, rejected, seconds, startup)


__all__ = ["OUTPUT_COLUMNS", "Engine", "ScoreResult", "load_predictor", "run"]
