"""`python -m app.scoring INPUT OUTPUT [--engine pandas|spark] [--spark-master URL]`.

What `make score INPUT=… OUTPUT=… [ENGINE=…] [SPARK_MASTER=…]` runs. Exit status 0 when the
files were written (rejected rows are counted on stderr and listed in
``<OUTPUT stem>.rejects.csv``), 2 for unusable arguments or input columns, 1 when no model
could be loaded.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from app.errors import ModelLoadError
from app.log_config import configure_logging
from app.scoring.files import FileFormatError
from app.scoring.job import run
from app.scoring.records import UnknownColumnsError
from app.settings import get_settings

logger = logging.getLogger("app.scoring")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app.scoring",
        description="Score a CSV or Parquet file of patients with the registry's champion pair.",
    )
    parser.add_argument("input", type=Path, help="CSV (symptoms ';'-separated) or Parquet")
    parser.add_argument("output", type=Path, help="output .parquet or .csv")
    parser.add_argument("--engine", choices=("pandas", "spark"), default="pandas")
    parser.add_argument(
        "--spark-master", default=None, help="Spark master URL (default: HP_SPARK_MASTER)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress display")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    try:
        result = run(
            settings,
            args.input,
            args.output,
            args.engine,
            spark_master=args.spark_master,
            show_progress=not args.no_progress,
        )
    except (FileFormatError, UnknownColumnsError, FileNotFoundError) as exc:
        logger.error("cannot score: %s", exc)
        return 2
    except ModelLoadError as exc:
        logger.error("no model to score with: %s", exc)
        return 1
    summary = (
        f"{result.scored:,} rows scored -> {result.output}; {result.rejected:,} rejected -> "
        f"{result.rejects}; {result.patients_per_s:,.0f} patients/s ({args.engine})\n"
    )
    sys.stderr.write(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
