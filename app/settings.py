"""Every setting of HealthPredict, in one place (env prefix ``HP_``); a leaf module (pydantic only).

Each field's description is what the README's settings table shows.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADMIN_KEY = "dev-admin-key"
DEFAULT_CLINICIAN_KEY = "dev-clinician-key"
DEFAULT_AUDIT_HMAC_KEY = "dev-audit-hmac-key"
HASHED_KEY_PREFIXES = ("id=", "sha256=")
"""How a hashed `HP_API_KEYS` entry starts (`app.security.api_keys`); others hold a key in clear."""


class Settings(BaseSettings):
    """HealthPredict settings; read from ``HP_*`` environment variables and ``.env``."""

    model_config = SettingsConfigDict(env_prefix="HP_", env_file=".env", extra="ignore")

    # --- runtime -------------------------------------------------------------------------
    environment: Literal["development", "test", "production"] = Field(
        "development",
        description="Deployment environment; default secrets are refused "
        "outside development and test.",
    )
    host: str = Field("127.0.0.1", description="Interface `python -m app` binds to.")
    port: int = Field(8000, description="Port `python -m app` listens on.")
    workers: int = Field(
        1, ge=1, description="Worker processes (gunicorn + uvicorn workers when > 1)."
    )
    shutdown_drain_s: float = Field(
        0.0,
        ge=0,
        le=20,
        description="On SIGTERM `/health/ready` answers 503 at once and the server keeps "
        "serving this long before it stops listening (set it to what your load balancer needs "
        "to see the 503: probe period x failure threshold); in-flight requests then finish "
        "within the 30 s graceful timeout.",
    )
    log_level: str = Field("INFO", description="Root log level (JSON lines on stderr).")
    access_log: bool = Field(
        True,
        description="One JSON access-log line per request (request "
        "id, route, status, latency, model version).",
    )
    data_dir: Path = Field(PROJECT_ROOT / "data", description="Generated data, SQLite files.")

    # --- models --------------------------------------------------------------------------
    mlflow_tracking_uri: str = Field(
        f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}",
        description="MLflow tracking/registry URI (`MLFLOW_TRACKING_URI` is honoured when "
        "this is unset).",
    )
    mlflow_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Deadline for the whole MLflow "
        "load attempt at startup before falling back to BentoML.",
    )
    bentoml_home: Path = Field(
        PROJECT_ROOT / "bentoml_home",
        description="BentoML model store (`BENTOML_HOME` is honoured when this is unset).",
    )
    diagnosis_model_name: str = Field(
        "healthpredict-diagnosis",
        description="Registered diagnosis model name (MLflow and BentoML).",
    )
    treatment_model_name: str = Field(
        "healthpredict-treatment",
        description="Registered treatment model name (MLflow and BentoML).",
    )
    model_alias: str = Field("champion", description="MLflow alias served.")
    model_retry_interval_s: float = Field(
        15.0, gt=0, description="Background retry period while degraded (no model loaded)."
    )
    model_poll_interval_s: float = Field(
        30.0,
        ge=0,
        description="How often each API process asks the MLflow registry where the served alias "
        "points (two small queries) and hot-swaps the pair when it moved; 0: no polling.",
    )

    # --- bulk scoring (`python -m app.scoring`, `make score`) ----------------------------
    spark_master: str = Field(
        "local[*]",
        description="Spark master of `ENGINE=spark` scoring (`local[*]`, `spark://host:7077`, "
        "`yarn`, `k8s://…`).",
    )
    scoring_chunk_rows: int = Field(
        10_000, ge=1, description="Rows validated and scored per chunk by the pandas engine."
    )

    # --- shadow challenger -----------------------------------------------------------------
    shadow_enabled: bool = Field(
        True,
        description="Load the pair with the MLflow alias `HP_SHADOW_ALIAS` beside the champion "
        "and score live predictions with it after the response (nothing loaded when absent).",
    )
    shadow_alias: str = Field("challenger", description="MLflow alias of the shadow challenger.")
    shadow_process: bool = Field(
        True,
        description="Score with the shadow challenger in a child process at lower CPU priority, "
        "off the serving process's GIL (false: a worker thread; an in-memory SQLite store "
        "always uses the thread).",
    )
    shadow_queue_size: int = Field(
        1000,
        ge=1,
        description="Predictions waiting for the shadow challenger; beyond, new ones are "
        'dropped and counted (`healthpredict_shadow_errors_total{reason="queue_full"}`).',
    )
    shadow_min_predictions: int = Field(
        0,
        ge=0,
        description="Shadow predictions the challenger needs (and no worse accuracy than the "
        "champion on those with feedback) before retraining may promote it; 0: no shadow "
        "evidence required.",
    )

    # --- serving -------------------------------------------------------------------------
    batch_max_size: int = Field(
        5000, ge=1, description="Largest `POST /predict/batch` (413 beyond)."
    )
    top_k: int = Field(3, ge=1, description="Diagnoses listed in `diagnosis.top_k`.")
    microbatch_window_ms: float = Field(
        0.0,
        ge=0,
        description="Longest wait for other requests to share a model call once concurrency is "
        "seen; 0: none, a call takes every request that arrived while the previous one ran.",
    )
    microbatch_max_size: int = Field(64, ge=1, description="Most requests in one model call.")
    gc_gen0_threshold: int = Field(
        100_000,
        ge=0,
        description="Cyclic-GC generation-0 threshold set once the models are loaded (Python's "
        "default 700 collects ~30 times per 1,000-patient batch: ~13 ms of its CPU); 0 keeps "
        "Python's own.",
    )
    audit_queue_size: int = Field(10000, ge=1, description="Write-behind audit queue bound.")
    audit_process: bool = Field(
        True,
        description="Store audit rows from a child process, off the serving process's GIL "
        "(false: a worker thread; an in-memory SQLite store always uses the thread).",
    )
    audit_flush_interval_s: float = Field(
        0.2,
        gt=0,
        description="First delay before retrying a failed audit write (rows are otherwise "
        "written in batches, at most 50 ms after the first one arrives).",
    )

    # --- storage -------------------------------------------------------------------------
    database_url: str = Field(
        f"sqlite:///{PROJECT_ROOT / 'data' / 'healthpredict.db'}",
        description="SQLAlchemy URL of the audit/feedback store (PostgreSQL in production).",
    )
    database_connect_timeout_s: float = Field(
        5.0,
        gt=0,
        description="PostgreSQL: longest wait to open a connection (libpq `connect_timeout`), "
        "and for a free connection of the pool; the request then answers 503.",
    )
    database_statement_timeout_s: float = Field(
        10.0,
        gt=0,
        description="PostgreSQL: longest time one statement may run (`statement_timeout`); "
        "the request then answers 503.",
    )
    database_io_timeout_s: float = Field(
        15.0,
        gt=0,
        description="PostgreSQL: longest client-side wait for any answer of the server (a "
        "statement, commit, pre-ping) on an open connection, for a network partition the "
        "server's `statement_timeout` cannot see; the connection is dropped and the request "
        "answers 503. Must exceed the statement timeout.",
    )
    database_retry_s: float = Field(
        5.0,
        gt=0,
        description="A database down at start-up: the service starts live and not ready and "
        "retries the migration this often until the database answers.",
    )
    database_ready_grace_s: float = Field(
        10.0,
        ge=0,
        description="`/health/ready` turns 503 once the database has failed its checks for "
        "this long (one lost connection does not take a replica out of rotation).",
    )
    auto_migrate: bool = Field(
        True,
        description="Apply the store's Alembic migrations at "
        "startup (turn off when a deploy step runs `make migrate`).",
    )

    # --- security ------------------------------------------------------------------------
    auth_enabled: bool = Field(True, description="Require `X-API-Key` on API routes.")
    api_keys: SecretStr = Field(
        SecretStr(f"{DEFAULT_ADMIN_KEY}:admin,{DEFAULT_CLINICIAN_KEY}:clinician"),
        description="Comma-separated API key entries, each `<key or hashed entry>:<role>` "
        "(roles: clinician, admin). `python -m app keys new --role ROLE [--expires 90d]` prints "
        "a hashed entry (`id=…;salt=…;sha256=…[;expires=…]:role`); a key in clear is accepted "
        "only outside production.",
    )
    api_keys_file: Path | None = Field(
        None,
        description="Optional file of more key entries (one per line, `#` comments), read at "
        "start-up and again when it changes (its mtime is checked at most once a second) or on "
        "SIGHUP: keys are added, rotated or revoked without a restart.",
    )
    audit_hmac_key: SecretStr = Field(
        SecretStr(DEFAULT_AUDIT_HMAC_KEY),
        description="Key of the audit rows' HMAC chain (`python -m app audit verify` needs the "
        "same); keep it out of the database. The default is refused in production.",
    )
    metrics_protected: bool = Field(False, description="Require an API key on `/metrics`.")
    rate_limit_per_minute: int = Field(
        6000, ge=1, description="Requests per minute per key (429 beyond)."
    )

    # --- CDS Hooks (EHR door, `/cds-services`) -------------------------------------------
    cds_jwks_file: Path | None = Field(
        None,
        description="JSON file of the EHRs trusted to call `/cds-services`: "
        '`{"<iss>": {"keys": [<public JWK>, ...]}}` (ES384 / RS384). Unset: every CDS call is '
        "refused (401), unless `HP_CDS_DEV_KEYS` is on.",
    )
    cds_dev_keys: bool = Field(
        False,
        description="Development only (refused in production): also trust issuer `dev`, whose "
        "key pair ships in `app/cds/dev_jwks.json`; `python -m app.cds.dev_token URL` signs a "
        "token with it for local trials.",
    )
    public_base_url: str | None = Field(
        None,
        description="The service's public base URL (e.g. `https://cds.example.org`) when it "
        "runs behind a proxy: CDS tokens' `aud` must be this plus the path called. Unset: the "
        "URL of the request as received.",
    )
    cds_fhir_timeout_s: float = Field(
        2.0,
        gt=0,
        description="Timeout of each FHIR read when a CDS call lacks prefetch and names its "
        "`fhirServer` (connect: half of it).",
    )

    # --- training (`python -m train_pipeline train`) -------------------------------------
    train_trials: int = Field(
        4, ge=0, description="Model search: Optuna trials per candidate family (`--trials`)."
    )
    train_time_budget_s: float = Field(
        60.0,
        gt=0,
        description="Model search: seconds per candidate family at most (`--time-budget`).",
    )

    # --- feedback and retraining ---------------------------------------------------------
    retrain_min_feedback: int = Field(
        50, ge=1, description="Feedback rows needed before retraining is recommended."
    )
    retrain_error_rate: float = Field(
        0.2, ge=0, le=1, description="Error rate in feedback that recommends retraining."
    )
    retrain_metric: str = Field("f1_macro", description="Metric the challenger must improve.")
    retrain_margin: float = Field(0.0, ge=0, description="By how much it must improve.")
    retrain_schedule_cron: str = Field(
        "0 3 * * *", description="Celery Beat schedule (cron: minute hour day month weekday)."
    )
    celery_broker_url: str | None = Field(
        None,
        description="Celery broker (Redis). Unset: the API runs retrain jobs in its own worker.",
    )
    broker_timeout_s: float = Field(
        5.0,
        gt=0,
        description="Celery broker: longest wait to connect, read or write (Redis "
        "`socket_timeout`, AMQP `read_timeout` with confirmed publishes); `POST /retrain` "
        "answers 503 within about 3 times this, `/health/ready`'s check within 2 times.",
    )
    broker_ready_grace_s: float = Field(
        10.0,
        ge=0,
        description="`/health/ready` turns 503 once the configured broker has failed its "
        "checks for this long.",
    )
    training_data_path: Path = Field(
        PROJECT_ROOT / "data" / "clinical_cohort.csv",
        description="Original training data used by retraining.",
    )
    retrain_holdout_path: Path | None = Field(
        None,
        description="Explicit held-out CSV "
        "(e.g. an adjudicated evaluation set) both "
        "models are scored on; unset: the training "
        "data's deterministic test split.",
    )
    retrain_job_timeout_s: float = Field(
        7200.0,
        gt=0,
        description="A queued/running retrain "
        "job older than this is deemed dead (its worker "
        "crashed) and no longer blocks a new one.",
    )
    retrain_notify_url: str | None = Field(
        None,
        description="Celery/CLI retrains POST here "
        "after a promotion (e.g. `http://api:8000/models/"
        "reload`, with the first admin key of "
        "`HP_API_KEYS`) so the API swaps at once.",
    )

    # --- monitoring ----------------------------------------------------------------------
    drift_window_size: int = Field(
        500, ge=10, description="Recent live inputs compared with the training reference."
    )
    drift_refresh_s: float = Field(
        60.0,
        gt=0,
        description="How often the drift report is recomputed in the background (the first "
        "time at most 10 s after start-up); requests only read the last report.",
    )
    drift_min_window: int = Field(
        50,
        ge=2,
        description="Fewer live inputs than this: `GET /monitoring/drift` answers 503 'not "
        "enough data' instead of a drift verdict.",
    )

    @model_validator(mode="after")
    def _honour_tool_env_vars(self) -> Settings:
        # MLflow's and BentoML's own variables apply when the HP_ ones are not given.
        if "mlflow_tracking_uri" not in self.model_fields_set and os.environ.get(
            "MLFLOW_TRACKING_URI"
        ):
            self.mlflow_tracking_uri = os.environ["MLFLOW_TRACKING_URI"]
        if "bentoml_home" not in self.model_fields_set and os.environ.get("BENTOML_HOME"):
            self.bentoml_home = Path(os.environ["BENTOML_HOME"])
        return self

    @model_validator(mode="after")
    def _io_bound_above_statement_timeout(self) -> Settings:
        # A slow statement must be cancelled by the server (a clean error, the connection kept)
        # before the client gives up on the connection.
        if self.database_io_timeout_s <= self.database_statement_timeout_s:
            raise ValueError("HP_DATABASE_IO_TIMEOUT_S must exceed HP_DATABASE_STATEMENT_TIMEOUT_S")
        return self

    @model_validator(mode="after")
    def _enforce_non_default_secrets(self) -> Settings:
        if self.environment == "production" and self.cds_dev_keys:
            raise ValueError("HP_CDS_DEV_KEYS trusts a published key pair; never in production")
        if self.environment == "production":
            keys = self.api_keys.get_secret_value()
            if DEFAULT_ADMIN_KEY in keys or DEFAULT_CLINICIAN_KEY in keys:
                raise ValueError(
                    "HP_API_KEYS still holds the development keys; set real keys in production"
                )
            if clear_key_entries(keys):
                raise ValueError(
                    "HP_API_KEYS holds a key in clear; in production give hashed entries "
                    "(`python -m app keys new --role ROLE` prints one)"
                )
            if self.audit_hmac_key.get_secret_value() == DEFAULT_AUDIT_HMAC_KEY:
                raise ValueError("HP_AUDIT_HMAC_KEY is the development default; set a real key")
        return self


def clear_key_entries(spec: str) -> int:
    """How many entries of a key spec (`HP_API_KEYS`, or a key file's lines) hold a key in
    clear instead of a hash."""
    entries = (item.strip() for line in spec.splitlines() for item in line.split(","))
    return sum(
        1
        for item in entries
        if item and not item.startswith("#") and not item.startswith(HASHED_KEY_PREFIXES)
    )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own `Settings(...)`)."""
    return Settings()
