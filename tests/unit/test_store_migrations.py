"""Alembic migrations on SQLite: empty -> head matches the ORM tables -> base drops them."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.store import db
from app.store.tables import Base

TABLES = {"predictions", "feedback", "retrain_jobs"}


def test_upgrade_matches_the_orm_and_downgrade_removes_everything(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'store.db'}"  # the parent dir is created
    db.upgrade(url)
    engine = db.make_engine(url)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= TABLES
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
            assert diff == []
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        db.upgrade(url)  # idempotent at head
        db.downgrade(url, "base")
        with engine.connect() as conn:
            assert not TABLES & set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_alembic_cli_config_points_at_the_project_migrations() -> None:
    cfg = db.alembic_config("sqlite://")
    assert Path(cfg.get_main_option("script_location") or "") == db.MIGRATIONS_DIR
    assert db.ALEMBIC_INI.exists()


def test_migrations_run_alongside_mlflow_initialising_its_own_store(tmp_path: Path) -> None:
    """The API lifespan migrates the store while the loader opens MLflow (which runs its own
    Alembic migrations on a fresh SQLite store): neither may corrupt the other."""
    from concurrent.futures import ThreadPoolExecutor

    from mlflow import MlflowClient

    def mlflow_store() -> int:
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        return len(MlflowClient(tracking_uri=uri).search_experiments())

    urls = [f"sqlite:///{tmp_path / f'store{i}.db'}" for i in range(3)]
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(db.upgrade, url) for url in urls]
        experiments = pool.submit(mlflow_store)
        for future in futures:
            future.result()
        assert experiments.result() >= 1
    for url in urls:
        engine = db.make_engine(url)
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= TABLES
        engine.dispose()
