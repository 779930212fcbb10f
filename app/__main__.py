"""`python -m app`: serve with the environment's settings (`HP_HOST`, `HP_PORT`, `HP_WORKERS`);
`python -m app audit verify` and `python -m app keys new --role ROLE` are `app.cli`'s commands.

One worker: uvicorn in this process. Several: gunicorn with uvicorn worker processes (each loads
its own models; no preload, so nothing is forked after a model load), and
`PROMETHEUS_MULTIPROC_DIR` pointing at a fresh directory so `/metrics` sums every worker.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from app.log_config import configure_logging
from app.settings import Settings, get_settings

logger = logging.getLogger("app")
GRACEFUL_TIMEOUT_S = 30


def fresh_multiproc_dir() -> Path:
    """A new (or emptied) `PROMETHEUS_MULTIPROC_DIR`, exported for the workers."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        path = Path(configured)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="healthpredict-prom-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def _exit_cleanly(signum: int, _frame: Any) -> None:
    """After a graceful shutdown uvicorn restores the handlers it found and re-raises the
    signal it caught; finding this one, the process exits 0 (as gunicorn does), not 143.

    The lifespan has already drained and closed everything; the exit skips the interpreter's
    finalisation as the signal's own exit did (with it, a driver's idle thread could crash the
    process at exit: -11 seen on PostgreSQL)."""
    logging.shutdown()
    os._exit(0)


def run_uvicorn(settings: Settings) -> None:
    import uvicorn

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)

    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_config=None,  # our JSON logging, configured by create_app
        access_log=False,  # our middleware writes the access log
        ws="none",  # no WebSocket routes: not importing a protocol saves ~17 ms of startup
        timeout_graceful_shutdown=GRACEFUL_TIMEOUT_S,
    )


def run_gunicorn(settings: Settings) -> None:
    from gunicorn.app.base import BaseApplication

    multiproc_dir = fresh_multiproc_dir()
    # Imported now, not inside the hook: the arbiter calls it from a signal handler, where a
    # slow first import can be re-entered.
    from prometheus_client import multiprocess

    def child_exit(_server: Any, worker: Any) -> None:
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]  # live gauges

    class _Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options = {
                "bind": f"{settings.host}:{settings.port}",
                "workers": settings.workers,
                "worker_class": "uvicorn_worker.UvicornWorker",
                "graceful_timeout": GRACEFUL_TIMEOUT_S,
                "timeout": 120,
                "child_exit": child_exit,
                "accesslog": None,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            from app.main import create_app

            return create_app()

    logger.info(
        "starting gunicorn",
        extra={"workers": settings.workers, "prometheus_multiproc_dir": str(multiproc_dir)},
    )
    try:
        _Gunicorn().run()
    finally:
        shutil.rmtree(multiproc_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv:  # `audit verify`, `keys new`: no server
        from app.cli import run

        sys.exit(run(argv))
    settings = get_settings()
    configure_logging(settings.log_level)
    if settings.workers > 1:
        run_gunicorn(settings)
    else:
        if settings.auto_migrate:
            # Before importing the application: the child migrates while we import (~3 s).
            from app.store import early_migration

            early_migration.start(settings.database_url)
        run_uvicorn(settings)


if __name__ == "__main__":
    main()
