"""Read a champion from MLflow's local SQLite registry without importing MLflow.

``import mlflow`` plus ``MlflowClient`` on a SQLite store cost about 1.9 s of a 5.7 s startup
(0.9 s of imports, 0.9 s of store set-up with SQLAlchemy and Alembic), for three SELECTs and two
pickles. `LocalRegistry` does only those: it opens the registry database read-only, resolves
``name@alias`` with the same rules as MLflow's ``SqlAlchemyStore`` (default workspace, deleted
versions excluded, same "not found" messages) and unpickles the ``sklearn`` flavour in place.

It serves only what it can read exactly as MLflow would. Anything else raises `NotApplicable`
and the caller uses the MLflow client instead, which then behaves as it always did: a non-SQLite
URI (tracking server), a missing database file (MLflow would create one), a schema revision
other than the installed MLflow's migration head (MLflow refuses an out-of-date one),
workspaces, the ``latest`` alias, artifacts not on the local filesystem, a model with extra
``code`` paths or a serialization format other than pickle/cloudpickle, pickle loading turned
off by ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION``, or any SQLite error.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
import sqlite3
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

DEFAULT_WORKSPACE = "default"
"""MLflow's single-tenant workspace (``mlflow.utils.workspace_utils.DEFAULT_WORKSPACE_NAME``)."""
STAGE_DELETED_INTERNAL = "Deleted_Internal"
"""Stage MLflow gives a deleted version (``model_version_stages.STAGE_DELETED_INTERNAL``)."""
_WORKSPACE_ENV = ("MLFLOW_ENABLE_WORKSPACES", "MLFLOW_WORKSPACE", "MLFLOW_WORKSPACE_STORE_URI")
_REVISION = re.compile(r"^(down_)?revision\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"""["']([0-9A-Za-z_]+)["']""")


class NotApplicable(Exception):
    """This registry is not one `LocalRegistry` reads exactly as MLflow does; use MLflow."""


class RegistryLookupError(LookupError):
    """The registry answered: no such registered model, alias or version (MLflow's wording)."""


@dataclass(frozen=True)
class RegisteredVersion:
    """One model version as the registry holds it."""

    version: str
    run_id: str
    tags: Mapping[str, str]


@lru_cache(maxsize=1)
def mlflow_schema_head() -> str:
    """The installed MLflow's migration head, read from its migration scripts (no import).

    Raises:
        NotApplicable: MLflow is not installed or its scripts do not have exactly one head.
    """
    spec = importlib.util.find_spec("mlflow")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise NotApplicable("mlflow is not installed")
    versions = Path(next(iter(spec.submodule_search_locations))) / "store/db_migrations/versions"
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in versions.glob("*.py"):
        for down, value in _REVISION.findall(script.read_text(encoding="utf-8")):
            (parents if down else revisions).update(_QUOTED.findall(value))
    heads = revisions - parents
    if len(heads) != 1:
        raise NotApplicable(f"MLflow migration scripts have {len(heads)} heads")
    return heads.pop()


def sqlite_registry_path(uri: str) -> Path:
    """The database file of a plain ``sqlite:///path`` URI (relative paths: to the cwd).

    Raises:
        NotApplicable: another scheme or driver, URL options, an in-memory database, or a
            file that does not exist yet.
    """
    from sqlalchemy.engine import make_url

    if not uri.startswith("sqlite:"):
        raise NotApplicable("not a SQLite URI")
    url = make_url(uri)
    database = url.database
    if url.drivername != "sqlite" or url.query or not database or database == ":memory:":
        raise NotApplicable("SQLite URI with options or an in-memory database")
    if database.startswith("file:"):
        raise NotApplicable("SQLite URI filename")
    path = Path(database)
    if not path.is_file():
        raise NotApplicable(f"{path} does not exist (MLflow would create it)")
    return path


def local_path(uri: str) -> Path:
    """A ``file:`` URI or an absolute path as a local path.

    Raises:
        NotApplicable: any other artifact location (a tracking server's proxy, a bucket).
    """
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        return Path(urllib.request.url2pathname(parsed.path))
    if not parsed.scheme and os.path.isabs(uri):
        return Path(uri)
    raise NotApplicable(f"artifacts at {uri!r} are not local")


def _check_environment(env: Mapping[str, str]) -> None:
    if any(env.get(key, "").strip() for key in _WORKSPACE_ENV):
        raise NotApplicable("MLflow workspaces are configured")
    allow = env.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").strip().lower()
    if allow not in ("true", "1"):
        raise NotApplicable("MLFLOW_ALLOW_PICKLE_DESERIALIZATION does not allow pickles")


class LocalRegistry:
    """Read-only view of one SQLite MLflow registry; a connection per instance.

    Raises:
        NotApplicable: from the constructor or any method (see the module docstring).
        RegistryLookupError: the registered model, the alias or the version does not exist.
    """

    def __init__(self, tracking_uri: str, env: Mapping[str, str] | None = None) -> None:
        _check_environment(os.environ if env is None else env)
        path = sqlite_registry_path(tracking_uri)
        head = mlflow_schema_head()
        self._locations: dict[tuple[str, str], str] = {}
        quoted = urllib.parse.quote(str(path.resolve()))
        try:
            self._db = sqlite3.connect(f"file:{quoted}?mode=ro", uri=True)
            rows = self._db.execute("SELECT version_num FROM alembic_version").fetchall()
        except sqlite3.Error as exc:
            raise NotApplicable(f"registry database: {exc}") from exc
        if [row[0] for row in rows] != [head]:
            self.close()
            raise NotApplicable(f"schema revision {rows} is not MLflow's head {head}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> LocalRegistry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as exc:  # a schema this reader does not know, a locked file
            raise NotApplicable(f"registry query failed: {exc}") from exc

    def _one(self, missing: str, sql: str, *params: object) -> tuple[Any, ...]:
        """The single row MLflow expects (it raises on several too; we leave that to it)."""
        rows = self._rows(sql, *params)
        if len(rows) > 1:
            raise NotApplicable(f"{len(rows)} rows where MLflow expects one ({missing})")
        if not rows:
            raise RegistryLookupError(missing)
        return rows[0]

    def version_by_alias(self, name: str, alias: str) -> RegisteredVersion:
        """``MlflowClient.get_model_version_by_alias(name, alias)``."""
        if alias.lower() == "latest":
            raise NotApplicable("the 'latest' alias follows MLflow's stage rules")
        ws = DEFAULT_WORKSPACE
        self._one(
            f"Registered Model with name={name} not found",
            "SELECT 1 FROM registered_models WHERE name = ? AND workspace = ?",
            name,
            ws,
        )
        (version,) = self._one(
            f"Registered model alias {alias} not found.",
            "SELECT version FROM registered_model_aliases"
            " WHERE name = ? AND alias = ? AND workspace = ? LIMIT 1",
            name,
            alias,
            ws,
        )
        run_id, storage_location, source = self._one(
            f"Model Version (name={name}, version={version}) not found",
            "SELECT run_id, storage_location, source FROM model_versions"
            " WHERE name = ? AND version = ? AND current_stage != ? AND workspace = ?",
            name,
            version,
            STAGE_DELETED_INTERNAL,
            ws,
        )
        tags = self._rows(
            "SELECT key, value FROM model_version_tags"
            " WHERE name = ? AND version = ? AND workspace = ?",
            name,
            version,
            ws,
        )
        # `get_model_version_download_uri`: the storage location, else the source.
        self._locations[(name, str(version))] = str(storage_location or source or "")
        return RegisteredVersion(str(version), str(run_id or ""), dict(tags))

    def run_artifact(self, run_id: str, artifact_path: str) -> Path:
        """The local file of a run artifact (MLflow would copy this same file)."""
        runs = self._rows("SELECT artifact_uri FROM runs WHERE run_uuid = ?", run_id)
        if len(runs) != 1 or not runs[0][0]:
            raise NotApplicable(f"run {run_id} not readable here")
        return local_path(str(runs[0][0])) / artifact_path

    def model_dir(self, name: str, version: str) -> Path:
        """The local artifact directory of a version `version_by_alias` returned."""
        return local_path(self._locations[(name, version)])

    def load_sklearn(self, name: str, version: str) -> Any:
        """``mlflow.sklearn.load_model`` of the version's artifacts, read in place."""
        return load_sklearn_flavor(self.model_dir(name, version))


def load_sklearn_flavor(model_dir: Path) -> Any:
    """Unpickle the ``sklearn`` flavour of an MLflow model directory as MLflow does.

    Raises:
        NotApplicable: no readable ``MLmodel``/``sklearn`` flavour, ``code`` paths to add, or a
            serialization format other than pickle/cloudpickle (skops).
    """
    import yaml

    try:
        conf = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8"))
        flavor = conf["flavors"]["sklearn"]
        pickled = model_dir / str(flavor["pickled_model"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise NotApplicable(f"{model_dir}: no readable sklearn flavour ({exc!r})") from exc
    if flavor.get("code"):
        raise NotApplicable("the model adds code paths to sys.path")
    serialization = flavor.get("serialization_format", "pickle")
    if serialization not in ("pickle", "cloudpickle"):
        raise NotApplicable(f"serialization format {serialization!r}")
    with pickled.open("rb") as handle:
        if serialization == "cloudpickle":
            import cloudpickle

            return cloudpickle.load(handle)
        return pickle.load(handle)  # the registry is trusted, as MLflow trusts it
