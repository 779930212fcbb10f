"""Held-out extras of a training run, added to its `Assessment`: bootstrap intervals of the
headline metrics, the calibration before / after (`calibration`), and a binary task's operating
point (`operating_point`)."""

from __future__ import annotations

import pandas as pd

from train_pipeline import calibration as cal
from train_pipeline import evaluate as ev
from train_pipeline import operating_point as opp
from train_pipeline.contract import TaskContract
from train_pipeline.fitting import Assessment, judge_diagnosis
from train_pipeline.model_choice import ModelChoice
from train_pipeline.models.calibrated import base_model
from train_pipeline.selection import SearchBudget, out_of_fold
from train_pipeline.split import encode_labels
from train_pipeline.task_config import TaskConfig


def add_intervals(task: TaskContract, test_df: pd.DataFrame, out: Assessment, seed: int) -> None:
    """``diagnosis_f1_macro_lo/hi`` and ``diagnosis_roc_auc_ovr_lo/hi`` (bootstrap 95 %)."""
    y_test = encode_labels(test_df[task.diagnosis.name], out.diagnosis_classes)
    proba = out.diagnosis_pipeline.predict_proba(test_df)
    intervals = ev.headline_intervals(y_test, proba, len(out.diagnosis_classes), seed)
    out.metrics |= {f"diagnosis_{k}": v for k, v in intervals.items()}


def add_held_out(
    task: TaskContract, test_df: pd.DataFrame, out: Assessment, choice: ModelChoice
) -> None:
    """`add_intervals` and `add_calibration`."""
    add_intervals(task, test_df, out, choice.opts.seed)
    add_calibration(task, test_df, out, choice)


def add_calibration(
    task: TaskContract, test_df: pd.DataFrame, out: Assessment, choice: ModelChoice
) -> None:
    """The held-out calibration error before (the classifier inside the calibrated step, fitted
    on every training row) and after, the out-of-fold comparison, the reliability diagram and
    the card's section. Uncalibrated runs log the same with before == after."""
    decision = choice.calibration
    if decision is None:
        return
    pipe = out.diagnosis_pipeline
    y = encode_labels(test_df[task.diagnosis.name], out.diagnosis_classes)
    keep = y >= 0
    X = pipe[:-1].transform(test_df.loc[keep])
    before = base_model(pipe.named_steps["model"]).predict_proba(X)
    after = pipe.named_steps["model"].predict_proba(X)
    y = y[keep]
    errors = {
        "before": ev.expected_calibration_error(y, before, cal.N_BINS),
        "after": ev.expected_calibration_error(y, after, cal.N_BINS),
        "floor": cal.noise_floor(after, choice.opts.seed),  # a perfect model's, on these rows
        "rows": len(y),
    }
    out.metrics |= {f"diagnosis_{k}": v for k, v in decision.metrics().items()}
    out.metrics["diagnosis_calibration_error_uncalibrated"] = errors["before"]
    out.metrics["diagnosis_calibration_error_noise_floor"] = errors["floor"]
    out.metrics["diagnosis_calibrated"] = float(decision.method is not None)
    curves = {"uncalibrated": before}
    if decision.method is not None:
        curves[f"{decision.method} calibration"] = after
    out.figures["reliability_diagram.png"] = cal.reliability_figure(
        y, curves, f"{task.name}: diagnosis (held-out)"
    )
    out.texts["calibration.md"] = cal.markdown(decision, errors)


def add_operating_point(
    config: TaskConfig,
    task: TaskContract,
    train_df: pd.DataFrame,
    test_df: pd.DataFrame,
    out: Assessment,
    choice: ModelChoice,
    budget: SearchBudget | None,
) -> None:
    """Binary tasks: the threshold from out-of-fold predictions (as served: calibrated when
    the model is; the search's, else a CV of the forced model), its held-out report and curves
    into `out`."""
    spec = config.operating_point
    assert spec is not None
    opts = choice.opts
    if choice.oof is not None:
        y_oof, p_oof = choice.oof
    elif choice.selection is not None:
        y_oof, p_oof = choice.selection.oof_y, choice.selection.oof_proba
    else:
        y_oof, p_oof = out_of_fold(
            task, train_df, opts.model_type, opts.params, budget or SearchBudget(), opts.seed
        )
    op = opp.choose_threshold(y_oof == 1, p_oof[:, 1], spec.sensitivity, spec.metric)
    y = encode_labels(test_df[task.diagnosis.name], out.diagnosis_classes) == 1
    p = out.diagnosis_pipeline.predict_proba(test_df)[:, 1]
    # the decision is the threshold: the baselines and the champion gate judge it
    judge_diagnosis(task, train_df, test_df, out, (p >= op.threshold).astype(int), opts.seed)
    report = opp.held_out_report(y, p, op.threshold, opts.seed)
    out.metrics |= {f"diagnosis_op_{k}": v for k, v in report.items()}
    positive = out.diagnosis_classes[1]
    out.figures |= opp.curve_figures(y, p, op.threshold, f"{task.name}: {positive}")
    out.texts["operating_point.md"] = opp.markdown(op, report, positive)
