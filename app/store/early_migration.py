"""The store migration `python -m app` starts before it imports the application.

A store's migration runs in a child process (`db.AlembicChild`: about 1 s of interpreter and
Alembic start-up, on a fresh database or an up-to-date one alike). Started by the lifespan, it
was on the path to ready; started first thing by `python -m app`, it runs on another core while
this process imports FastAPI, SQLAlchemy and scikit-learn (about 3 s), and the lifespan finds it
finished. Only `python -m app` with one worker starts one: an application built any other way
(tests, gunicorn workers) migrates from its lifespan as before (`app.main.migrate_if_needed`).
"""

from __future__ import annotations

from app.store import db

_started: dict[str, db.AlembicChild] = {}


def start(url: str) -> None:
    """Start ``alembic upgrade head`` on ``url`` now, for the lifespan to `take`."""
    _started[url] = db.start_upgrade(url)


def take(url: str) -> db.AlembicChild | None:
    """The migration started for ``url``, handed out once (None: none was started)."""
    return _started.pop(url, None)
