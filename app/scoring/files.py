"""Input and output files of bulk scoring: CSV or Parquet, chosen by the file extension.

Inputs are read in chunks (bounded memory); CSV cells are read as text and converted by the
contract (`records.convert_frame`), so a bad cell rejects its row instead of retyping its column.
Outputs are written to a temporary file and renamed: a crashed run never leaves half a file, and a
rerun replaces the previous output whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

FORMATS = (".csv", ".parquet")


class FileFormatError(ValueError):
    """A path whose extension is neither ``.csv`` nor ``.parquet``."""


def file_format(path: Path) -> str:
    """``.csv`` or ``.parquet`` (``.pq`` too)."""
    suffix = path.suffix.lower()
    if suffix == ".pq":
        return ".parquet"
    if suffix not in FORMATS:
        raise FileFormatError(f"{path}: use a .csv or .parquet file (got {suffix or 'none'!r})")
    return suffix


def rejects_path(output: Path) -> Path:
    """``<OUTPUT stem>.rejects.csv`` next to the output."""
    return output.with_name(f"{output.stem}.rejects.csv")


def read_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The input's rows in order, ``chunk_rows`` at a time (CSV cells as text, empty -> NaN)."""
    if file_format(path) == ".csv":
        yield from pd.read_csv(
            path, dtype=str, keep_default_na=False, na_values=[""], chunksize=chunk_rows
        )
        return
    parquet = pq.ParquetFile(path)
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        yield batch.to_pandas()


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` (format by extension) atomically."""
    fmt = file_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if fmt == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False, engine="pyarrow")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
