"""Write a run's files: figures, reports, feature config, Evidently data quality, model card."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from train_pipeline.contract import TaskContract
from train_pipeline.evaluate import BaselineComparison
from train_pipeline.fitting import Assessment

logger = logging.getLogger(__name__)

EVIDENTLY_MAX_ROWS = 5000


def data_quality_report(df: pd.DataFrame, task: TaskContract, path: Path, seed: int = 0) -> Path:
    """Evidently 0.7 `DataSummaryPreset` over the training data (sampled), saved as HTML."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataSummaryPreset

    sample = df.sample(min(len(df), EVIDENTLY_MAX_ROWS), random_state=seed)
    numeric = [n for n in task.names_of("numeric", "integer") if n in sample]
    categorical = [n for n in task.names_of("categorical", "boolean") if n in sample]
    targets = [t.name for t in (task.diagnosis, task.treatment) if t and t.name in sample]
    frame = sample[numeric + categorical + targets].copy()
    for col in numeric:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    for col in categorical + targets:
        frame[col] = frame[col].astype(str).where(frame[col].notna(), None)
    definition = DataDefinition(
        numerical_columns=numeric, categorical_columns=categorical + targets
    )
    dataset = Dataset.from_pandas(frame, data_definition=definition)
    snapshot = Report([DataSummaryPreset()]).run(current_data=dataset, reference_data=None)
    snapshot.save_html(str(path))
    return path


def _verdict(role: str, cmp: BaselineComparison) -> str:
    lo, hi = cmp.majority_margin_ci
    if cmp.beats_majority:
        line = (
            f"The {role} model **beats the majority-class baseline** (balanced accuracy "
            f"margin, 95 % bootstrap interval {lo:+.3f} to {hi:+.3f})."
        )
    else:
        line = (
            f"**WARNING: the {role} model does NOT beat the majority-class baseline** on "
            f"held-out data (balanced accuracy margin {lo:+.3f} to {hi:+.3f} includes 0): "
            "its predictions carry no demonstrable signal (random or noisy labels?). "
            "Do not use it for decisions."
        )
    lo2, hi2 = cmp.logreg_margin_ci
    word = "beats" if cmp.beats_logreg else "does NOT beat"
    line += (
        f" It {word} logistic regression on macro-F1 (margin 95 % interval "
        f"{lo2:+.3f} to {hi2:+.3f})."
    )
    return line


def model_card(
    task: TaskContract, out: Assessment, params: dict[str, Any], data_info: dict[str, Any]
) -> str:
    """The run's `model_card.md`: what, on which data, how good, against which baselines."""
    lines = [
        f"# Model card: HealthPredict `{task.name}`",
        "",
        *_models_section(out, params),
        "",
        "## Data",
        *(f"- {k}: {v}" for k, v in data_info.items()),
        "",
        "## Held-out results",
    ]
    for role in ("diagnosis", "treatment"):
        if f"{role}_f1_macro" in out.metrics:
            lines += _results_section(role, out.metrics, out.baselines[role])
    for section in ("operating_point.md", "calibration.md"):
        if section in out.texts:
            lines += ["", out.texts[section].replace("## ", "### ", 1).rstrip()]
    lines += _importance_and_limits(out.importance)
    return "\n".join(lines) + "\n"


def _models_section(out: Assessment, params: dict[str, Any]) -> list[str]:
    kind = params.get("model_type")
    family = "logistic regression" if kind == "logreg" else "gradient-boosted trees"
    lines = [
        "## Models",
        f"- Diagnosis: `{kind}` pipeline (clinical features, ordered "
        f"target encoding, median imputation, {family}), "
        f"{len(out.diagnosis_classes)} classes.",
    ]
    if out.treatment_pipeline is not None:
        lines.append(
            f"- Treatment: same design with the diagnosis as an extra input, "
            f"{len(out.treatment_classes)} classes; trained on true diagnoses, "
            "evaluated end-to-end on predicted ones, restricted to treatments allowed "
            "for the diagnosis."
        )
    lines.append(f"- Parameters: `{json.dumps(params, sort_keys=True, default=str)}`")
    if "model_selection.md" in out.texts:
        lines += ["", out.texts["model_selection.md"].replace("## ", "### ", 1).rstrip()]
    return lines


def _results_section(role: str, m: dict[str, float], cmp: BaselineComparison) -> list[str]:
    """Held-out metrics, CV spread, baselines, verdict and per-class recall of one model."""
    lines = [
        "",
        f"### {role.capitalize()}",
        f"macro-F1 {m[f'{role}_f1_macro']:.3f}, balanced accuracy "
        f"{m[f'{role}_balanced_accuracy']:.3f}, accuracy {m[f'{role}_accuracy']:.3f}, "
        f"ROC-AUC (OvR) {m[f'{role}_roc_auc_ovr']:.3f}, log loss {m[f'{role}_log_loss']:.3f}, "
        f"calibration error {m[f'{role}_calibration_error']:.3f}.",
    ]
    if f"{role}_cv_f1_macro_mean" in m:
        lines.append(
            f"Cross-validated macro-F1 (train split): "
            f"{m[f'{role}_cv_f1_macro_mean']:.3f} ± {m[f'{role}_cv_f1_macro_std']:.3f}."
        )
    lines += ["", "Baselines (same held-out rows):", "", cmp.markdown(), "", _verdict(role, cmp)]
    recalls = {
        k.removeprefix(f"{role}_recall_"): v
        for k, v in m.items()
        if k.startswith(f"{role}_recall_") and k != f"{role}_recall_macro"
    }
    return [
        *lines,
        "",
        "Recall per class: " + ", ".join(f"`{c}` {v:.2f}" for c, v in recalls.items()),
    ]


def _importance_and_limits(importance: dict[str, float]) -> list[str]:
    top = list(importance.items())[:10]
    return [
        "",
        "## What drives the diagnosis (mean |SHAP|)",
        "",
        ", ".join(f"`{k}` {v:.3f}" for k, v in top),
        "",
        "## Limits",
        "",
        "- Trained on the data above only; synthetic cohorts encode textbook rules, not "
        "real practice. A decision aid for clinicians, never a replacement.",
        "- Probabilities come from class-weighted models: read them as scores, and see "
        "the calibration error above.",
    ]


def write_run_files(
    directory: Path,
    task: TaskContract,
    out: Assessment,
    train_df: pd.DataFrame,
    params: dict[str, Any],
    data_info: dict[str, Any],
    seed: int,
) -> Path:
    """Every run artifact except the models and `bundle_meta.json`, into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, fig in out.figures.items():
        fig.savefig(directory / name, dpi=110)
        plt.close(fig)
    for name, text in out.texts.items():
        (directory / name).write_text(text)
    (directory / "feature_config.json").write_text(
        json.dumps(task.to_dict(), indent=2, default=str)
    )
    (directory / "baselines.json").write_text(
        json.dumps({k: v.to_dict() for k, v in out.baselines.items()}, indent=2)
    )
    (directory / "model_card.md").write_text(model_card(task, out, params, data_info))
    try:
        data_quality_report(train_df, task, directory / "data_quality_report.html", seed)
    except Exception:  # Evidently must not sink a training run; the card says it is missing
        logger.exception("Evidently data-quality report failed")
    return directory


def reference_sample(
    df: pd.DataFrame, task: TaskContract, n: int, seed: int
) -> dict[str, list[Any]]:
    """A small JSON-ready training sample per feature (drift reference); NaN -> None."""
    sample = df.sample(min(n, len(df)), random_state=seed)
    out: dict[str, list[Any]] = {}
    for name in task.feature_names:
        values = sample[name].tolist()
        out[name] = [
            None
            if (isinstance(v, float) and np.isnan(v)) or v is pd.NA
            else (v.item() if hasattr(v, "item") else v)
            for v in values
        ]
    return out
