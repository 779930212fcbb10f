"""The Spark engine: the input read by Spark, each partition scored by `mapInPandas`.

The champion bundle is loaded once on the driver and broadcast; each Python worker builds its
`Predictor` from it once (cached by broadcast id) and calls the same chunk function as the
pandas engine (`batch.score_columns`). Row numbers follow the input order: a pass that counts
the rows of each input partition (JVM only) gives each partition its first row number.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from rich.progress import Progress

from app.scoring.batch import OUTPUT_COLUMNS, REJECT_COLUMNS, score_chunk
from app.scoring.files import file_format
from app.serving.bundle import ModelBundle
from app.serving.predictor import Predictor

logger = logging.getLogger(__name__)
REJECT_FLAG = "is_reject"
SCHEMA = (
    "row long, patient_id string, diagnosis_code string, diagnosis_probability double, "
    "treatment_code string, treatment_probability double, prediction_quality string, "
    "news2_score long, run_id string, diagnosis_version string, treatment_version string, "
    f"field string, value string, reason string, {REJECT_FLAG} boolean"
)
_COLUMNS = list(dict.fromkeys((*OUTPUT_COLUMNS, *REJECT_COLUMNS, REJECT_FLAG)))
_TEXT_COLUMNS = [name.split()[0] for name in SCHEMA.split(", ") if name.split()[1] == "string"]
_PREDICTORS: dict[str, Predictor] = {}  # per Python worker: bundle key -> predictor


def start_session(master: str) -> tuple[Any, float]:
    """A `SparkSession` on ``master`` (``local[*]``, ``spark://…``, ``yarn``…) and its start-up
    seconds. Local masters bind to the loopback; executors run this interpreter."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its INFO lines at exit hit closed streams
    t0 = time.perf_counter()
    builder = (
        SparkSession.builder.master(master)
        .appName("healthpredict-scoring")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")  # ours is on the driver's stderr
    )
    if master.startswith("local"):
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.ui.enabled", "false")
        )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session, time.perf_counter() - t0


def read_input(session: Any, source: Path) -> Any:
    """The input as a Spark DataFrame (CSV cells as text, empty -> null)."""
    if file_format(source) == ".csv":
        return session.read.csv(str(source), header=True, inferSchema=False)
    return session.read.parquet(str(source))


def partition_offsets(frame: Any) -> dict[int, int]:
    """Input partition -> number of its first row (rows of the partitions before it)."""
    from pyspark.sql.functions import spark_partition_id

    counts = dict(frame.groupBy(spark_partition_id().alias("p")).count().collect())
    offsets, total = {}, 0
    for part in range(frame.rdd.getNumPartitions()):
        offsets[part] = total
        total += int(counts.get(part, 0))
    return offsets


def bundle_key(bundle: ModelBundle, top_k: int) -> str:
    """Identifies a loaded bundle (and top-k) across the driver and the Python workers."""
    return f"{bundle.run_id}/{bundle.diagnosis_version}/{bundle.treatment_version}/" + (
        f"{bundle.loaded_at.isoformat()}/{top_k}"
    )


def predictor_for(broadcast: Any, key: str, top_k: int) -> Predictor:
    """The worker's predictor of the broadcast bundle (built on first use, then reused by the
    tasks this Python worker runs)."""
    predictor = _PREDICTORS.get(key)
    if predictor is None:
        _PREDICTORS.clear()  # one bundle at a time per worker
        bundle: ModelBundle = broadcast.value
        predictor = _PREDICTORS[key] = Predictor(bundle, top_k, observe=False)
    return predictor


def score_partition(
    batches: Iterator[pd.DataFrame], broadcast: Any, top_k: int, offsets: dict[int, int]
) -> Iterator[pd.DataFrame]:
    """`mapInPandas` body: output rows and reject rows of one partition, flagged."""
    from pyspark import TaskContext

    context = TaskContext.get()
    first = offsets[context.partitionId()] if context is not None else 0
    bundle: ModelBundle = broadcast.value
    predictor = predictor_for(broadcast, bundle_key(bundle, top_k), top_k)
    for batch in batches:
        rows, rejects = score_chunk(predictor, batch, first)
        first += len(batch)
        merged = [{**r, REJECT_FLAG: False} for r in rows]
        merged += [{**r, REJECT_FLAG: True} for r in rejects]
        yield _typed(pd.DataFrame(merged, columns=_COLUMNS))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as objects holding str or None: an all-missing column would otherwise be
    float NaN, which Arrow cannot turn into one string array."""
    for name in _TEXT_COLUMNS:
        column = frame[name].astype(object)
        frame[name] = column.where(column.notna(), None)
    return frame.astype({"news2_score": "Int64", REJECT_FLAG: bool})


def score(
    session: Any, predictor: Predictor, source: Path, progress: Progress | None = None
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Score ``source`` on Spark; yields one (output rows, reject rows) pair for the whole run."""
    frame = read_input(session, source)
    offsets = partition_offsets(frame)
    broadcast = session.sparkContext.broadcast(predictor.bundle)
    top_k = predictor.top_k

    def body(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return score_partition(batches, broadcast, top_k, offsets)

    watcher = _watch(session, progress, len(offsets))
    try:
        result = frame.mapInPandas(body, SCHEMA).toPandas()
    finally:
        watcher.set()
        broadcast.unpersist()
    yield _split(result)


def _split(result: pd.DataFrame) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    flags = result[REJECT_FLAG].astype(bool)
    rows = result.loc[~flags, list(OUTPUT_COLUMNS)].astype(object)
    rejects = result.loc[flags, list(REJECT_COLUMNS)].astype(object)
    return _records(rows), _records(rejects)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.where(frame.notna(), None).to_dict("records")  # type: ignore[no-any-return]


def _watch(session: Any, progress: Progress | None, partitions: int) -> threading.Event:
    """Show finished partitions (tasks of the running stages) until the event is set."""
    stop = threading.Event()
    if progress is None:
        return stop
    task = progress.add_task("spark", total=partitions, unit=f"of {partitions} partitions")
    tracker = session.sparkContext.statusTracker()

    def poll() -> None:
        while not stop.wait(0.5):
            stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
            done = sum(s.numCompletedTasks for s in stages if s is not None)
            progress.update(task, completed=min(done, partitions))
        progress.update(task, completed=partitions)

    threading.Thread(target=poll, name="spark-progress", daemon=True).start()
    return stop
