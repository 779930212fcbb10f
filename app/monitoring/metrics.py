"""Prometheus metrics of the service (`healthpredict_<what>_<unit>`), multiprocess-safe.

One `Metrics` object holds every metric; the module-level recording helpers are what the rest of
the service calls. Under several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set before
prometheus-client is imported, as `python -m app` does for gunicorn) every worker writes its
values to mmap files in that directory and `GET /metrics` merges them with `MultiProcessCollector`,
so counters sum across workers whichever worker answers the scrape. Gauges declare how they merge
(`livesum`, `livemax`, `mostrecent`); `Info` metrics do not work in that mode, hence the
`healthpredict_model_info` gauge set to 1.

A leaf of the service (prometheus-client only), so serving, audit and feedback code import it
freely; the FastAPI wiring (middleware, `GET /metrics`, drift refresher) is in `wiring`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "<unmatched>"
# Request latencies of this service are in the millisecond range: resolve 1 ms .. 10 s.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
)  # fmt: skip
STAGE_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
)  # fmt: skip
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)


@dataclass(frozen=True)
class Metrics:
    """Every metric of the service, registered on one registry."""

    registry: CollectorRegistry
    http_requests: Counter
    http_duration: Histogram
    http_in_flight: Gauge
    predictions: Counter
    prediction_quality: Counter
    stage_duration: Histogram
    fast_path_disabled: Counter
    model_info: Gauge
    model_load_duration: Histogram
    model_fallbacks: Counter
    feedback: Counter
    audit_queue_depth: Gauge
    drift_share: Gauge
    drifted_features: Gauge
    shadow_predictions: Counter
    shadow_errors: Counter


def _http_metrics(registry: CollectorRegistry) -> dict[str, Any]:
    return {
        "http_requests": Counter(
            "healthpredict_http_requests_total",
            "HTTP requests by method, route template and status code.",
            ("method", "route", "status"),
            registry=registry,
        ),
        "http_duration": Histogram(
            "healthpredict_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ("method", "route"),
            registry=registry,
            buckets=LATENCY_BUCKETS,
        ),
        "http_in_flight": Gauge(
            "healthpredict_http_requests_in_flight",
            "HTTP requests being served.",
            (),
            registry=registry,
            multiprocess_mode="livesum",
        ),
    }


def _prediction_metrics(registry: CollectorRegistry) -> dict[str, Any]:
    return {
        "predictions": Counter(
            "healthpredict_predictions_total",
            "Predictions by diagnosis model version, diagnosis and treatment code "
            "('none' when the service abstained).",
            ("model_version", "diagnosis", "treatment"),
            registry=registry,
        ),
        "prediction_quality": Counter(
            "healthpredict_prediction_quality_total",
            "Predictions by input quality tier (high, medium, low, insufficient).",
            ("quality",),
            registry=registry,
        ),
        "stage_duration": Histogram(
            "healthpredict_stage_duration_seconds",
            "Time spent in one serving stage (validate, predict, explain, audit...).",
            ("stage",),
            registry=registry,
            buckets=STAGE_BUCKETS,
        ),
        "fast_path_disabled": Counter(
            "healthpredict_fast_path_disabled_total",
            "Times a fast serving path was turned off (the general path answers instead), by path.",
            ("path",),
            registry=registry,
        ),
    }


def _model_metrics(registry: CollectorRegistry) -> dict[str, Any]:
    return {
        "model_info": Gauge(
            "healthpredict_model_info",
            "1 for the model version and source each worker serves (0 for replaced ones).",
            ("name", "version", "source"),
            registry=registry,
            multiprocess_mode="livemax",
        ),
        "model_load_duration": Histogram(
            "healthpredict_model_load_duration_seconds",
            "Time to load both pipelines, by source (mlflow, bentoml).",
            ("source",),
            registry=registry,
            buckets=LOAD_BUCKETS,
        ),
        "model_fallbacks": Counter(
            "healthpredict_model_fallbacks_total",
            "Times a model source was given up for the next one, by reason.",
            ("reason",),
            registry=registry,
        ),
    }


def _feedback_metrics(registry: CollectorRegistry) -> dict[str, Any]:
    """Feedback, the audit queue and drift: what the store and the monitor report."""
    return {
        "feedback": Counter(
            "healthpredict_feedback_total",
            "Clinician feedback by verdict.",
            ("verdict",),
            registry=registry,
        ),
        "audit_queue_depth": Gauge(
            "healthpredict_audit_queue_depth",
            "Prediction audit records waiting to be written (summed over workers).",
            (),
            registry=registry,
            multiprocess_mode="livesum",
        ),
        "drift_share": Gauge(
            "healthpredict_drift_share",
            "Share of features drifted between the live window and the training reference.",
            (),
            registry=registry,
            multiprocess_mode="mostrecent",
        ),
        "drifted_features": Gauge(
            "healthpredict_drifted_features",
            "Number of drifted features in the latest drift report.",
            (),
            registry=registry,
            multiprocess_mode="mostrecent",
        ),
    }


def _shadow_metrics(registry: CollectorRegistry) -> dict[str, Any]:
    """The shadow challenger: how often it agrees with the champion, and what went wrong."""
    return {
        "shadow_predictions": Counter(
            "healthpredict_shadow_predictions_total",
            "Predictions the shadow challenger scored, by outcome (agree, disagree with the "
            "champion's diagnosis): agreement = agree / (agree + disagree).",
            ("outcome",),
            registry=registry,
        ),
        "shadow_errors": Counter(
            "healthpredict_shadow_errors_total",
            "Shadow predictions lost, by reason (queue_full, score, store); never a failed "
            "request.",
            ("reason",),
            registry=registry,
        ),
    }


def _build(registry: CollectorRegistry) -> Metrics:
    return Metrics(
        registry=registry,
        **_http_metrics(registry),
        **_prediction_metrics(registry),
        **_model_metrics(registry),
        **_feedback_metrics(registry),
        **_shadow_metrics(registry),
    )


def multiprocess_enabled() -> bool:
    """Whether prometheus-client writes values to mmap files (chosen when it was imported)."""
    return bool(getattr(values.ValueClass, "_multiprocess", False))


def _new_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    if not multiprocess_enabled():
        ProcessCollector(registry=registry)  # process_* metrics are per-process only
    return registry


_lock = threading.Lock()
_metrics = _build(_new_registry())
_served_models: dict[str, tuple[str, str]] = {}


def current() -> Metrics:
    """The live metrics object (replaced by `reset_for_tests`)."""
    return _metrics


def reset_for_tests() -> Metrics:
    """Fresh registry and zeroed metrics (MLServer-style fixture). Single-process mode only:

    in multiprocess mode values live in the mmap files, so tests use a fresh directory instead.
    """
    global _metrics
    with _lock:
        _metrics = _build(_new_registry())
        _children.clear()
        _served_models.clear()
    return _metrics


def render() -> tuple[bytes, str]:
    """The text exposition of all metrics (merged over workers in multiprocess mode)."""
    if multiprocess_enabled():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    if os.environ.get(MULTIPROC_ENV):
        logger.warning(
            "%s set after prometheus_client was imported: single-process metrics", MULTIPROC_ENV
        )
    return generate_latest(_metrics.registry), CONTENT_TYPE_LATEST


def worker_exit(pid: int) -> None:
    """Gunicorn `child_exit` hook body: drop the live gauges of a dead worker."""
    if multiprocess_enabled():
        mark_process_dead(pid)  # type: ignore[no-untyped-call]


# --- recording helpers (called by serving, audit, feedback, drift) ---------------------------


def observe_prediction(
    diagnosis: str | None, treatment: str | None, quality: str, model_version: str
) -> None:
    """Count one prediction (``None`` codes = abstention, labelled ``none``)."""
    observe_predictions([(diagnosis, treatment, quality)], model_version)


def observe_predictions(
    outcomes: Iterable[tuple[str | None, str | None, str]], model_version: str
) -> None:
    """Count many predictions at once: ``outcomes`` are (diagnosis, treatment, quality).

    The one implementation of the prediction counters: one ``inc(n)`` per label combination
    (a 1,000-record batch: ~7 ms of per-record ``labels().inc()`` -> well under 1 ms).
    """
    m = _metrics
    version = model_version or "none"
    combos: Tally[tuple[str, str]] = Tally()
    qualities: Tally[str] = Tally()
    for diagnosis, treatment, quality in outcomes:
        combos[(diagnosis or "none", treatment or "none")] += 1
        qualities[quality] += 1
    for (diagnosis, treatment), n in combos.items():
        child(m.predictions, version, diagnosis, treatment).inc(n)
    for quality, n in qualities.items():
        child(m.prediction_quality, quality).inc(n)


_children: dict[tuple[Any, ...], Any] = {}  # emptied by reset_for_tests


def child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, looked up once: `labels()` takes a lock and validates its
    arguments, costing more than the ``inc()``/``observe()`` that follows, and the hot path
    calls it several times a request. The label sets are bounded (routes, codes, stages)."""
    key = (id(metric), *labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def observe_stage(stage: str, seconds: float) -> None:
    """Record the duration of one serving stage."""
    child(_metrics.stage_duration, stage).observe(seconds)


@contextmanager
def time_stage(stage: str) -> Iterator[None]:
    """``with time_stage("predict"): ...`` records the block's duration."""
    start = perf_counter()
    try:
        yield
    finally:
        observe_stage(stage, perf_counter() - start)


def set_model_info(name: str, version: str, source: str) -> None:
    """Mark ``name`` as served at ``version`` from ``source`` (the previous label set goes to 0)."""
    with _lock:
        previous = _served_models.get(name)
        if previous is not None and previous != (version, source):
            _metrics.model_info.labels(name, *previous).set(0)
        _metrics.model_info.labels(name, version, source).set(1)
        _served_models[name] = (version, source)


def observe_model_load(source: str, seconds: float) -> None:
    """Record how long loading both pipelines from ``source`` took."""
    _metrics.model_load_duration.labels(source).observe(seconds)


def count_fallback(reason: str) -> None:
    """Count a fallback to the next model source (``reason``: a short fixed code)."""
    _metrics.model_fallbacks.labels(reason).inc()


def fast_path_disabled(path: str) -> None:
    """Count one switch-off of the fast serving path ``path`` (a short fixed name)."""
    child(_metrics.fast_path_disabled, path).inc()


def count_feedback(verdict: str) -> None:
    """Count one feedback record by verdict."""
    _metrics.feedback.labels(verdict).inc()


def set_audit_queue_depth(n: int) -> None:
    """Audit records waiting in this worker's write-behind queue."""
    _metrics.audit_queue_depth.set(n)


def set_drift(share: float, n_drifted: int) -> None:
    """Publish the latest drift report's share of drifted features and their count."""
    _metrics.drift_share.set(share)
    _metrics.drifted_features.set(n_drifted)


def count_shadow(agree: int, disagree: int) -> None:
    """Count shadow answers that agreed / disagreed with the champion's diagnosis."""
    if agree:
        child(_metrics.shadow_predictions, "agree").inc(agree)
    if disagree:
        child(_metrics.shadow_predictions, "disagree").inc(disagree)


def count_shadow_error(reason: str, n: int = 1) -> None:
    """Count ``n`` shadow predictions lost (``reason``: queue_full, score or store)."""
    child(_metrics.shadow_errors, reason).inc(n)
