"""ModelManager: MLflow (one deadline for the whole attempt) -> BentoML -> degraded + retries.

The served `ModelBundle` (and its `Predictor`) is replaced by one reference assignment, so a
request that already holds the old predictor finishes on it while new requests get the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from app.errors import ModelLoadError, ModelNotReadyError
from app.monitoring import metrics
from app.serving.bundle import ModelBundle, check_compatible
from app.serving.predictor import Predictor, probe_records
from app.serving.sources import LoadedPair, limit_mlflow_http, load_bentoml, load_mlflow
from app.settings import Settings
from train_pipeline.fast_path.pipeline import FastPipeline

logger = logging.getLogger(__name__)
T = TypeVar("T")

BENTOML_HEAD_START = 0.5
"""Share of the MLflow deadline after which the BentoML fallback starts loading alongside."""
EXPLAINER_WARMUP_DELAY_S = 1.0
"""Seconds between a swap and the served bundle's explainer warm-up (`ModelManager`). Started at
once, its CPU (it holds the GIL in turns with the server's startup) put the first 200 of
/health/ready 145 ms after the load instead of 23 ms (medians of 6 starts); after a second the
server is answering."""


async def run_in_daemon_thread(fn: Callable[[], T]) -> T:
    """Run blocking `fn` in a daemon thread; an abandoned one never blocks interpreter exit.

    (`asyncio.to_thread` uses the default executor, which `asyncio.run` joins at shutdown: a
    thread stuck on a black-hole server would hold the process for MLflow's HTTP timeout.)
    """
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not fut.done():
            fut.set_result(value) if ok else fut.set_exception(value)

    def work() -> None:
        value: Any
        try:
            ok, value = True, fn()
        except BaseException as exc:  # handed to the awaiting coroutine
            ok, value = False, exc
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
            loop.call_soon_threadsafe(settle, ok, value)

    threading.Thread(target=work, name="hp-model-load", daemon=True).start()
    return await fut


def warmup_record() -> dict[str, Any]:
    """A valid mid-range record built from the contract (warms both fast paths at load)."""
    return probe_records()[0]


def build_bundle(load: Callable[[], LoadedPair], top_k: int) -> tuple[ModelBundle, Predictor]:
    """Blocking: load a pair, refuse it if incompatible, wrap it in fast paths, warm it up.

    Raises:
        IncompatibleModelError: see `bundle.check_compatible`; any loading error propagates.
    """
    t0 = time.perf_counter()
    pair = load()
    check_compatible(
        pair.meta,
        pair.diagnosis_pipeline,
        pair.treatment_pipeline,
        diagnosis_run_id=pair.diagnosis_run_id or None,
        treatment_run_id=pair.treatment_run_id or None,
    )
    bundle = ModelBundle(
        diagnosis=FastPipeline.from_pipeline(pair.diagnosis_pipeline),
        treatment=FastPipeline.from_pipeline(pair.treatment_pipeline),
        diagnosis_pipeline=pair.diagnosis_pipeline,
        treatment_pipeline=pair.treatment_pipeline,
        meta=pair.meta,
        source="mlflow" if pair.source == "mlflow" else "bentoml",
        diagnosis_version=pair.diagnosis_version,
        treatment_version=pair.treatment_version,
        run_id=pair.diagnosis_run_id or pair.meta.run_id,
        loaded_at=datetime.now(UTC),
        load_seconds=0.0,
    )
    # The first call pays CatBoost's lazy initialisation; not counted as a prediction.
    Predictor(bundle, 1, observe=False).predict_many([warmup_record()])
    bundle = replace(bundle, load_seconds=time.perf_counter() - t0)
    return bundle, Predictor(bundle, top_k)


def _prepare_explainer(bundle_ref: weakref.ref[ModelBundle]) -> None:
    from app.serving import explain  # lazy: not needed to become ready

    bundle = bundle_ref()
    if bundle is None:
        return
    try:
        explain.prepare(bundle)
    except Exception:  # a failure here only means explanations are built on first use
        logger.warning("explainer warm-up failed", exc_info=True)


class ModelManager:
    """Loads, serves, retries and hot-swaps the model bundle.

    Args:
        settings: tracking URI, BentoML home, names, alias, timeout, retry period, top-k and
            micro-batching settings are read from here.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._bundle: ModelBundle | None = None
        self._predictor: Predictor | None = None
        self._state = "starting"
        self._last_error: str | None = None
        self._failures: dict[str, str] = {}
        self._attempts = 0
        self._retry_task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._warmup: threading.Timer | None = None
        limit_mlflow_http(settings.mlflow_timeout_s)

    # --- state -----------------------------------------------------------------------------
    @property
    def bundle(self) -> ModelBundle | None:
        return self._bundle

    @property
    def predictor(self) -> Predictor | None:
        return self._predictor

    @property
    def ready(self) -> bool:
        return self._predictor is not None

    def status(self) -> dict[str, Any]:
        """State, source, versions, run, load time and the last failure (for /health, /models)."""
        b = self._bundle
        return {
            "state": self._state,
            "ready": self.ready,
            "source": b.source if b else None,
            "diagnosis_version": b.diagnosis_version if b else None,
            "treatment_version": b.treatment_version if b else None,
            "run_id": b.run_id if b else None,
            "loaded_at": b.loaded_at.isoformat() if b else None,
            "load_seconds": round(b.load_seconds, 3) if b else None,
            "attempts": self._attempts,
            "reason": self._last_error,
            "source_errors": dict(self._failures),
        }

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """First load; on failure go degraded and keep retrying in the background."""
        try:
            await self._load_and_swap()
        except ModelLoadError:
            self._state = "degraded"
            logger.error(
                "no model source usable; serving degraded, retrying in background",
                extra={
                    "retry_interval_s": self.settings.model_retry_interval_s,
                    "source_errors": dict(self._failures),
                },
            )
            self._retry_task = asyncio.create_task(self._retry_forever(), name="hp-model-retry")

    async def reload(self) -> ModelBundle:
        """Load the current champion fully, then swap; on failure keep the old bundle and raise."""
        bundle = await self._load_and_swap()
        if self._retry_task is not None:
            self._retry_task.cancel()
            self._retry_task = None
        return bundle

    async def stop(self) -> None:
        self._cancel_explainer_warmup()
        if self._retry_task is not None:
            self._retry_task.cancel()
            await asyncio.gather(self._retry_task, return_exceptions=True)
            self._retry_task = None

    async def _retry_forever(self) -> None:
        while self._predictor is None:
            await asyncio.sleep(self.settings.model_retry_interval_s)
            try:
                await self._load_and_swap()
            except ModelLoadError:
                logger.info("background model retry failed", extra={"attempts": self._attempts})
        self._retry_task = None

    # --- predicting --------------------------------------------------------------------------
    def current(self) -> Predictor:
        """The predictor being served; `ModelNotReadyError` (503, with the reason) while
        degraded. Read it once per request: a reload swaps it for the next caller."""
        predictor = self._predictor
        if predictor is None:
            reason = self._last_error
            raise ModelNotReadyError(
                f"No model is loaded yet ({reason}); retrying in the background" if reason else None
            )
        return predictor

    # --- loading -----------------------------------------------------------------------------
    async def _load_and_swap(self) -> ModelBundle:
        async with self._lock:
            self._attempts += 1
            # No warm-up starts during a load: it would pin the bundle being replaced.
            self._cancel_explainer_warmup()
            try:
                bundle, predictor = await self._load_any()
            except ModelLoadError:
                if self._bundle is not None:
                    self._warm_explainer_later(self._bundle)  # still served: warm it after all
                raise
            replaced = self._bundle is not None
            self._bundle, self._predictor = bundle, predictor  # the atomic swap
            self._warm_explainer_later(bundle)
            _freeze_heap(collect=replaced, gen0_threshold=self.settings.gc_gen0_threshold)
            self._state, self._last_error = "ready", None
            for name, version in (
                (self.settings.diagnosis_model_name, bundle.diagnosis_version),
                (self.settings.treatment_model_name, bundle.treatment_version),
            ):
                metrics.set_model_info(name, version, bundle.source)
            return bundle

    def _warm_explainer_later(self, bundle: ModelBundle) -> None:
        """Build the served bundle's SHAP explainer (0.5-2 s) in the background, so the first
        `explain=true` request does not pay it (a request racing it waits for the same build),
        and `EXPLAINER_WARMUP_DELAY_S` later, so it does not slow the last steps to ready. The
        timer holds a weak reference: a bundle replaced before it fires is freed, not warmed."""
        warmup = threading.Timer(
            EXPLAINER_WARMUP_DELAY_S, _prepare_explainer, args=(weakref.ref(bundle),)
        )
        warmup.name, warmup.daemon = "explainer-warmup", True
        warmup.start()
        self._warmup = warmup

    def _cancel_explainer_warmup(self) -> None:
        if self._warmup is not None:
            self._warmup.cancel()  # a warm-up already running finishes on its own
            self._warmup = None

    async def _load_any(self) -> tuple[ModelBundle, Predictor]:
        s = self.settings
        self._failures = {}

        def from_mlflow() -> tuple[ModelBundle, Predictor]:
            return build_bundle(
                lambda: load_mlflow(
                    s.mlflow_tracking_uri,
                    s.diagnosis_model_name,
                    s.treatment_model_name,
                    s.model_alias,
                ),
                s.top_k,
            )

        def from_bentoml() -> tuple[ModelBundle, Predictor]:
            return build_bundle(
                lambda: load_bentoml(
                    s.bentoml_home, s.diagnosis_model_name, s.treatment_model_name
                ),
                s.top_k,
            )

        t0 = time.perf_counter()
        mlflow_fut = asyncio.ensure_future(run_in_daemon_thread(from_mlflow))
        bento_fut: asyncio.Future[tuple[ModelBundle, Predictor]] | None = None
        try:
            # Past half the deadline, start loading the fallback next to the MLflow attempt so
            # a black-hole tracking server costs the deadline, not deadline + BentoML load.
            head_start = s.mlflow_timeout_s * BENTOML_HEAD_START
            done, _ = await asyncio.wait({mlflow_fut}, timeout=head_start)
            if not done:
                bento_fut = asyncio.ensure_future(run_in_daemon_thread(from_bentoml))
            remaining = max(0.0, s.mlflow_timeout_s - (time.perf_counter() - t0))
            result = await asyncio.wait_for(mlflow_fut, remaining)
            if bento_fut is not None:
                bento_fut.cancel()  # its thread finishes on its own; the result is dropped
            self._won(result[0], "mlflow champion loaded")
            return result
        except TimeoutError:
            self._failed(
                "mlflow",
                f"timed out after {s.mlflow_timeout_s:g} s "
                f"({time.perf_counter() - t0:.1f} s elapsed)",
                "mlflow_timeout",
            )
        except Exception as exc:
            self._failed("mlflow", _reason(exc), "mlflow_error")
        try:
            result = await (bento_fut or run_in_daemon_thread(from_bentoml))
            self._won(result[0], "fell back to the BentoML store")
            return result
        except Exception as exc:
            self._failed("bentoml", _reason(exc), "bentoml_error")
        self._last_error = "; ".join(f"{k}: {v}" for k, v in self._failures.items())
        raise ModelLoadError(f"no usable model: {self._last_error}")

    def _won(self, bundle: ModelBundle, why: str) -> None:
        metrics.observe_model_load(bundle.source, bundle.load_seconds)
        logger.info(
            "model source selected: %s",
            bundle.source,
            extra={
                "source": bundle.source,
                "reason": why,
                "run_id": bundle.run_id,
                "diagnosis_version": bundle.diagnosis_version,
                "treatment_version": bundle.treatment_version,
                "load_seconds": round(bundle.load_seconds, 3),
                "source_errors": dict(self._failures),
            },
        )

    def _failed(self, source: str, reason: str, metric_reason: str) -> None:
        self._failures[source] = reason
        metrics.count_fallback(metric_reason)
        logger.warning(
            "model source %s failed: %s", source, reason, extra={"source": source, "reason": reason}
        )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _freeze_heap(collect: bool, gen0_threshold: int = 0) -> None:
    """Move every object alive now (libraries, models) out of the cyclic GC's reach, and make
    generation-0 collections rarer (``gen0_threshold``; 0 leaves Python's).

    Only the cyclic collector is affected (reference counting still frees objects). Without the
    freeze each collection re-scans the ~360k objects of the loaded libraries: a 1,000-patient
    batch spent 74-76 ms of its 171 ms process CPU in GC, 16-23 ms of 113-132 ms frozen
    (in-process harness, 10 batches, gc.callbacks timing). With the default threshold of 700 a
    batch still triggered ~30 collections (13-14 ms of GC per batch over HTTP); a request's
    objects are freed by reference counting when it ends, so with 100,000 the collector runs
    about once per 40 batches (0.4 ms a batch), and cyclic garbage waits at most that long.
    After a reload, the previous bundle is first given back to the collector (``collect``) so it
    can be freed.
    """
    if collect:
        gc.unfreeze()
        gc.collect()
    gc.freeze()
    if gen0_threshold > 0:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(gen0_threshold, gen1, gen2)
