"""Engine and session factories for the audit/feedback store, and Alembic run programmatically.

SQLite (the embedded default) and PostgreSQL (``postgresql+psycopg://``) are both supported.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0  # the defaults of Settings.database_connect_timeout_s
STATEMENT_TIMEOUT_S = 10.0  # and Settings.database_statement_timeout_s
IO_TIMEOUT_S = 15.0  # and Settings.database_io_timeout_s


def _configure_sqlite(engine: Engine) -> None:
    """WAL, foreign keys, busy timeout, and ``BEGIN IMMEDIATE`` transactions.

    pysqlite's own transaction handling breaks SAVEPOINT and lets a read transaction fail with
    SQLITE_BUSY (without waiting) when it later tries to write; taking the write lock at BEGIN
    makes concurrent writers queue on the busy timeout instead (the SQLAlchemy pysqlite recipe,
    and what Rails does by default).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if not is_memory(engine):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_memory(engine: Engine) -> bool:
    """An in-memory SQLite database (private to its process)."""
    if engine.url.get_backend_name() != "sqlite":
        return False
    database = engine.url.database
    return not database or database == ":memory:" or database.startswith("file::memory:")


class JSONText:
    """A JSON column's value already serialised as `dumps_json` would serialise it: stored as
    ``text`` as is (a prediction's response body is serialised once, for the response and for
    the audit)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def dumps_json(value: Any) -> str:
    """JSON column serialiser: orjson (1,000 audit rows: 44 -> 4 ms of `json.dumps`, cProfile),
    keys sorted (the audit chain's canonical form: a batch's records are stored as they are
    sealed, `app.store.prediction_batch`), `json.dumps` for what orjson refuses (non-str keys,
    unknown types). The only JSON columns are the audit's inputs (validated finite numbers) and
    outputs, so orjson's NaN -> null never applies; the stored text is compact but parses to
    the same values."""
    if value.__class__ is JSONText:
        return str(value.text)
    try:
        return orjson.dumps(
            value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_SORT_KEYS
        ).decode()
    except TypeError:
        return json.dumps(value)


def make_engine(
    url: str,
    *,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    statement_timeout_s: float = STATEMENT_TIMEOUT_S,
    io_timeout_s: float = IO_TIMEOUT_S,
    **kwargs: Any,
) -> Engine:
    """Build an engine for ``url`` (SQLite file/memory or PostgreSQL via psycopg 3).

    Bound parameters are never part of an error's text (``hide_parameters``): a failed INSERT
    would otherwise quote a feedback's reason or a clinician id into a log line.

    Args:
        url: SQLAlchemy URL; a SQLite file's parent directory is created when missing.
        connect_timeout_s / statement_timeout_s: PostgreSQL's bounds (`Settings`
            ``database_*_timeout_s``); the pool waits ``connect_timeout_s`` for a connection.
        io_timeout_s: PostgreSQL: the client-side bound on each wait for the server
            (`app.store.bounded_pg`), for a network that stops forwarding packets.
        **kwargs: passed to `sqlalchemy.create_engine` (e.g. ``pool_size``).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, **kwargs)
    options = {
        "pool_pre_ping": True,
        "pool_size": 10,
        "max_overflow": 20,
        "pool_timeout": connect_timeout_s,
        "json_serializer": dumps_json,
        "hide_parameters": True,
        "connect_args": {
            # libpq takes whole seconds (at least 2 are used); the statement timeout in ms.
            "connect_timeout": max(2, math.ceil(connect_timeout_s)),
            "options": _with_statement_timeout(parsed.query.get("options"), statement_timeout_s),
        },
    }
    options.update(kwargs)
    engine = create_engine(parsed, **options)
    _bound_waits(engine, io_timeout_s)
    return engine


def _sqlite_engine(parsed: URL, **kwargs: Any) -> Engine:
    """`make_engine` for a SQLite file or memory database."""
    options: dict[str, Any] = {
        "pool_pre_ping": False,
        "json_serializer": dumps_json,
        "hide_parameters": True,
    }
    options.update(kwargs)
    connect_args = dict(options.pop("connect_args", {}))
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    else:
        # One shared connection, or every session would see its own empty memory database.
        from sqlalchemy.pool import StaticPool

        options.setdefault("poolclass", StaticPool)
    if options.get("poolclass") is None:
        # Enough connections for the threadpool that runs sync route handlers.
        options.setdefault("pool_size", 10)
        options.setdefault("max_overflow", 30)
    engine = create_engine(parsed, connect_args=connect_args, **options)
    _configure_sqlite(engine)
    return engine


def _bound_waits(engine: Engine, io_timeout_s: float) -> None:
    """Open the engine's connections as `BoundedConnection`s (psycopg 3 only)."""
    if engine.dialect.driver != "psycopg":
        return
    from app.store.bounded_pg import connect_bounded

    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        return connect_bounded(io_timeout_s, *cargs, **cparams)


def _with_statement_timeout(url_options: Any, timeout_s: float) -> str:
    """libpq ``options`` of the URL (e.g. a ``search_path``) plus the statement timeout: a
    ``connect_args`` entry replaces the URL's, so both are given here."""
    given = " ".join(url_options) if isinstance(url_options, tuple) else (url_options or "")
    return f"{given} -c statement_timeout={int(timeout_s * 1000)}".strip()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Session factory; objects stay readable after commit (``expire_on_commit=False``)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """An Alembic config on the project's ``alembic.ini`` that migrates ``url``.

    The URL travels in ``config.attributes`` rather than the ini, so it is never written to
    disk and ``%`` in passwords needs no escaping.
    """
    from alembic.config import Config  # lazy: ~0.7 s of import, needed only to migrate

    cfg = Config(str(ALEMBIC_INI)) if ALEMBIC_INI.exists() else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["database_url"] = url
    return cfg


class AlembicChild:
    """An Alembic command running in a child process (``python -m app.store.db``).

    Alembic keeps its migration context in module globals (``alembic.context``, ``op``), and
    MLflow runs its own Alembic migrations on a fresh SQLite tracking store: two migrations in
    one process at once (e.g. the API's lifespan migrating the store while the model loader
    opens MLflow) corrupt each other. A child process has globals of its own.
    """

    def __init__(self, command_name: str, url: str, revision: str) -> None:
        self.what = f"alembic {command_name} {revision}"
        env = os.environ | {"HP_DATABASE_URL": url}  # env, not argv: never show a password in ps
        # A file, not a pipe: nothing to drain meanwhile. Closed by wait().
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "app.store.db", command_name, revision],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def wait(self) -> None:
        """Block until the command has finished; raise `RuntimeError` if it failed."""
        try:
            if self._proc.wait() != 0:
                self._stderr.seek(0)
                stderr = self._stderr.read().decode(errors="replace")
                raise RuntimeError(f"{self.what} failed: {stderr[-2000:]}")
        finally:
            self._stderr.close()


def start_upgrade(url: str, revision: str = "head") -> AlembicChild:
    """Start migrating the database at ``url`` up to ``revision``; ``.wait()`` for the end."""
    logger.info("migrating store up", extra={"revision": revision})
    return AlembicChild("upgrade", url, revision)


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (``alembic upgrade head``)."""
    start_upgrade(url, revision).wait()


def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database at ``url`` down to ``revision`` (``base`` drops every table)."""
    logger.info("migrating store down", extra={"revision": revision})
    AlembicChild("downgrade", url, revision).wait()


def main(argv: list[str] | None = None) -> int:
    """``python -m app.store.db upgrade|downgrade [revision]`` on ``HP_DATABASE_URL``."""
    import argparse

    from alembic import command

    from app.log_config import configure_logging
    from app.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m app.store.db", description=main.__doc__)
    parser.add_argument("command", choices=("upgrade", "downgrade"))
    parser.add_argument(
        "revision",
        nargs="?",
        default=None,
        help="target revision (default: head for upgrade, base for downgrade)",
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    revision = args.revision or ("head" if args.command == "upgrade" else "base")
    cfg = alembic_config(settings.database_url)  # in THIS process: the child of AlembicChild
    if args.command == "upgrade":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
