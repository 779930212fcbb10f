"""`run_retrain`: the one retraining implementation (CLI, API thread and Celery task call it).

Original cohort + corrected feedback rows -> challenger pipelines (H2's fitting code), logged to
MLflow as their own run and registered WITHOUT the alias -> champion and challenger scored on
the same held-out rows (the original data's deterministic test split; feedback rows only ever
go to training) -> promoted only if better on the metric by the margin.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from retrain import promote as pr
from retrain import shadow_gate
from retrain.challenger import Prepared, ProgressFn, Trained, prepare, train_challenger
from retrain.config import RetrainConfig as RetrainConfig  # also importable from here
from train_pipeline import register
from train_pipeline.artifacts import reference_sample, write_run_files
from train_pipeline.bundle_meta import BundleMeta
from train_pipeline.fast_path.pipeline import FastPipeline
from train_pipeline.fitting import Assessment
from train_pipeline.gate import GateVerdict
from train_pipeline.models.treatment import DIAGNOSIS_COLUMN

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainResult:
    """What one retrain decided, with both models' held-out scores."""

    decision: str  # "promoted" | "kept"
    metric: str
    margin: float
    champion_scores: dict[str, float | None]
    challenger_scores: dict[str, float | None]
    champion_run_id: str
    champion_versions: tuple[str, str | None]
    challenger_run_id: str
    challenger_versions: tuple[str, str | None]
    n_train: int
    n_feedback: int
    n_test: int
    duration_s: float
    reason: str = ""  # why it was promoted or kept (the gate's and the comparison's verdicts)
    gate_passed: bool = True  # False: the challenger shows no signal over the majority class

    @property
    def promoted(self) -> bool:
        return self.decision == "promoted"

    def scores(self) -> dict[str, Any]:
        """JSON summary stored on the job row and returned by `GET /retrain/{id}`."""
        return {
            "metric": self.metric,
            "margin": self.margin,
            "champion": self.champion_scores,
            "challenger": self.challenger_scores,
            "champion_run_id": self.champion_run_id,
            "champion_versions": list(self.champion_versions),
            "challenger_versions": list(self.challenger_versions),
            "n_train": self.n_train,
            "n_feedback": self.n_feedback,
            "n_test": self.n_test,
            "duration_s": round(self.duration_s, 2),
            "reason": self.reason,
            "gate_passed": self.gate_passed,
        }


def _noop(stage: str) -> None:
    return None


def challenger_meta(
    p: Prepared, out: Assessment, model_type: str, metrics: dict[str, float]
) -> BundleMeta:
    sample = p.test.head(200)
    importance = out.importance or FastPipeline.from_pipeline(
        out.diagnosis_pipeline, forest=False
    ).global_importance({c: sample[c].to_numpy() for c in sample})
    return BundleMeta(
        task=p.task.name,
        contract_fingerprint=p.task.fingerprint(),
        run_id="",
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        model_type=model_type,
        diagnosis_classes=out.diagnosis_classes,
        treatment_classes=out.treatment_classes,
        allowed_pairs=out.allowed_pairs,
        metrics=metrics,
        feature_importance=importance,
        reference_stats=reference_sample(p.train, p.task, 300, p.seed),
    )


def write_files(
    directory: Path,
    p: Prepared,
    out: Assessment,
    report: dict[str, Any],
    run_params: dict[str, Any],
    data_info: dict[str, Any],
    full: bool,
) -> None:
    """Run artifacts: `make train`'s set when ``full``, else the feature config; always
    ``retrain_report.json`` (both scores and the decision)."""
    directory.mkdir(parents=True, exist_ok=True)
    if full:
        write_run_files(directory, p.task, out, p.train, run_params, data_info, p.seed)
    else:
        (directory / "feature_config.json").write_text(
            json.dumps(p.task.to_dict(), indent=2, default=str)
        )
    (directory / "retrain_report.json").write_text(json.dumps(report, indent=2, default=str))


def log_challenger(
    config: RetrainConfig,
    p: Prepared,
    out: Assessment,
    meta: BundleMeta,
    run_params: dict[str, Any],
    files: Path,
) -> register.RegisteredBundle:
    """One MLflow run for the challenger, both models registered WITHOUT the alias."""
    features = list(p.task.feature_names)
    pipelines = {"diagnosis": (out.diagnosis_pipeline, p.test[features].head(5))}
    if out.treatment_pipeline is not None:
        diag = np.asarray(out.diagnosis_classes, dtype=object)[
            out.diagnosis_pipeline.predict_proba(p.test.head(5)).argmax(axis=1)
        ]
        pipelines["treatment"] = (
            out.treatment_pipeline,
            p.test[features].head(5).assign(**{DIAGNOSIS_COLUMN: diag}),
        )
    bundle, _ = register.log_bundle(
        config.tracking_uri,
        register.experiment_name(p.task.name),
        pipelines,
        meta,
        config.names,
        run_params,
        meta.metrics,
        files,
        run_name=f"retrain-{meta.model_type}",
    )
    return bundle


def log_run(
    config: RetrainConfig, p: Prepared, t: Trained, decision: str, key: str, tmp: Path
) -> tuple[register.RegisteredBundle, BundleMeta]:
    """The challenger's MLflow run (params, metrics, files, both models; no alias)."""
    metrics = t.out.metrics if config.full_report else t.challenger_scores
    meta = challenger_meta(p, t.out, t.opts.model_type, metrics)
    run_params = {
        "model_type": t.opts.model_type,
        "seed": p.seed,
        "test_size": p.test_size,
        "task": p.task.name,
        "n_train": t.n_train,
        "n_test": len(p.test),
        "n_feedback": t.n_feedback,
        "data_path": str(config.data_path),
        "retrain_of": p.champion.run_id,
        "calibration": t.opts.calibration or "none",
        **{f"model_{k}": v for k, v in t.opts.params.items()},
        **{f"treatment_model_{k}": v for k, v in t.treatment_params.items()},
    }
    report = {
        "decision": decision,
        "metric": key,
        "margin": config.margin,
        "champion_run_id": p.champion.run_id,
        "champion": t.champion_scores,
        "challenger": t.challenger_scores,
    }
    data_info = {
        "source": f"{config.data_path} + {t.n_feedback} corrected feedback rows",
        "train rows": t.n_train,
        "held-out rows": len(p.test),
        "diagnosis classes": len(t.out.diagnosis_classes),
    }
    files = tmp / "run"
    write_files(files, p, t.out, report, run_params, data_info, config.full_report)
    bundle = log_challenger(config, p, t.out, meta, run_params, files)
    return bundle, replace(meta, run_id=bundle.run_id)


@dataclass(frozen=True)
class Decision:
    """``promoted`` or ``kept``, why, and the champion gate's verdict."""

    decision: str
    reason: str
    gate: GateVerdict


def decide(config: RetrainConfig, key: str, t: Trained, p: Prepared) -> Decision:
    """``promoted`` when the challenger passes the champion gate (signal over the majority
    class, `train_pipeline.gate`) and beats the champion on ``key`` by the margin.

    Raises:
        ValueError: ``key`` is not one of the scores.
    """
    if key not in t.challenger_scores:
        raise ValueError(
            f"unknown retrain metric {config.metric!r}; one of {sorted(t.challenger_scores)}"
        )
    champ, chall = t.champion_scores[key], t.challenger_scores[key]
    gate = pr.signal_verdict(
        p.task,
        p.train,
        p.test,
        (t.out.diagnosis_pipeline, t.out.diagnosis_classes),
        p.seed,
        config.allow_no_signal,
    )
    wins = pr.challenger_wins(champ, chall, key, config.margin)
    versus = f"{key}: challenger {chall:.4f} vs champion {champ:.4f}, margin {config.margin}"
    if not gate.passed:
        return Decision("kept", f"challenger has {gate.reason}", gate)
    if not wins:
        return Decision("kept", f"challenger does not win ({versus})", gate)
    return Decision("promoted", f"challenger wins ({versus}); {gate.reason}", gate)


def promote_challenger(
    config: RetrainConfig, t: Trained, meta: BundleMeta, bundle: register.RegisteredBundle
) -> None:
    """Move the alias to the challenger's versions and save both pipelines to BentoML."""
    pipes = {"diagnosis": t.out.diagnosis_pipeline}
    if t.out.treatment_pipeline is not None:
        pipes["treatment"] = t.out.treatment_pipeline
    pr.promote(config, pipes, meta, bundle)


def summarize(
    config: RetrainConfig,
    key: str,
    decision: str,
    p: Prepared,
    t: Trained,
    bundle: register.RegisteredBundle,
    duration_s: float,
) -> RetrainResult:
    """The `RetrainResult` of one retrain (headline scores only), logged."""
    result = RetrainResult(
        decision=decision,
        metric=key,
        margin=config.margin,
        champion_scores=pr.headline(t.champion_scores, key),
        challenger_scores=pr.headline(t.challenger_scores, key),
        champion_run_id=p.champion.run_id,
        champion_versions=(p.champion.diagnosis_version, p.champion.treatment_version),
        challenger_run_id=bundle.run_id,
        challenger_versions=(bundle.diagnosis_version, bundle.treatment_version),
        n_train=t.n_train,
        n_feedback=t.n_feedback,
        n_test=len(p.test),
        duration_s=duration_s,
    )
    logger.info(
        "retrain finished",
        extra={
            "decision": decision,
            "metric": key,
            "champion": result.champion_scores.get(key),
            "challenger": result.challenger_scores.get(key),
        },
    )
    return result


def run_retrain(
    config: RetrainConfig,
    feedback_rows: Sequence[dict[str, Any]],
    progress: ProgressFn | None = None,
    extra_tags: dict[str, str] | None = None,
) -> RetrainResult:
    """Retrain on original data + feedback, compare with the champion, promote or keep.

    Args:
        feedback_rows: `app.store.repository.corrected_rows` output (training encoding).
        progress: called with each stage name (CLI progress).
        extra_tags: added to the challenger's MLflow run (e.g. the job id).

    Raises:
        promote.NoChampionError: nothing to compare with.
        ValueError / DataError: unusable data, metric or a champion of another contract.
    """
    say = progress or _noop
    start = time.perf_counter()
    say("load champion and data")
    p = prepare(config)
    key = pr.decision_key(config.metric)
    with tempfile.TemporaryDirectory(prefix="hp-retrain-") as tmp:
        t = train_challenger(config, p, feedback_rows, Path(tmp), say)
        verdict = decide(config, key, t, p)
        decision = shadow_gate.gate(config, verdict.decision, None, p.champion.run_id)
        say("log challenger to MLflow")
        bundle, meta = log_run(config, p, t, decision, key, Path(tmp))
    pr.record_decision(
        config,
        bundle.run_id,
        p.champion,
        t.champion_scores,
        t.challenger_scores,
        decision,
        {
            "retrain.feedback_rows": str(t.n_feedback),
            "retrain.reason": verdict.reason[:500],
            **verdict.gate.tags(),
            **(extra_tags or {}),
        },
    )
    if decision == "promoted":
        say("promote: move the alias, save to BentoML")
        promote_challenger(config, t, meta, bundle)
    else:
        pr.mark_challenger(config, bundle)  # served as the shadow challenger
    result = summarize(config, key, decision, p, t, bundle, time.perf_counter() - start)
    return replace(result, reason=verdict.reason, gate_passed=verdict.gate.passed)
