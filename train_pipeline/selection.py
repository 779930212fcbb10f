"""Model selection: Optuna (seeded TPE, median pruning) over CatBoost, XGBoost and logistic
regression, each a full pipeline (encoding inside), scored by stratified k-fold CV on the
training rows only (never the held-out rows) on the task's primary metric.

Budget: `SearchBudget` (``--trials`` / ``--time-budget``, ``HP_TRAIN_TRIALS`` /
``HP_TRAIN_TIME_BUDGET_S``). On a large training split the search cross-validates a stratified
sample of at most ``max_rows`` rows, with boosters at a quarter of their rounds and twice the
learning rate (the convention of the CV stage, `model_choice._scaled`); the families that come
within a margin of the best then get a second look at full fidelity (`confirmation`), and the
winner is refitted on the whole split with its full rounds. No MLflow here: `trials` are logged
as nested runs by `register.log_bundle`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import fbeta_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from train_pipeline import evaluate as ev
from train_pipeline.confirmation import second_look
from train_pipeline.contract import TaskContract
from train_pipeline.models import diagnosis
from train_pipeline.models.pipeline import BOOSTERS, class_weights
from train_pipeline.split import class_order, encode_labels

logger = logging.getLogger(__name__)

CANDIDATES: tuple[str, ...] = ("catboost", "xgboost", "logreg")
PRIMARY_METRICS: tuple[str, ...] = ("f1_macro", "roc_auc", "f2")
SEARCH_ROUNDS = 0.25  # boosters' rounds during the search (x their final rounds) ...
SEARCH_RATE = 2.0  # ... at this multiple of the learning rate (see the module docstring)


@dataclass(frozen=True)
class SearchBudget:
    """How much the search may spend: trials and seconds per candidate family, CV folds, and
    the largest training sample it cross-validates on."""

    trials: int = 4
    time_budget_s: float = 60.0
    folds: int = 3
    max_rows: int = 6000


@dataclass(frozen=True)
class TrialRecord:
    """One Optuna trial (a nested MLflow run): its family, parameters, score and state."""

    family: str
    number: int
    params: dict[str, Any]
    score: float | None
    state: str
    seconds: float


@dataclass(frozen=True)
class CandidateResult:
    """The best trial of one family: mean and spread of its CV score, its final parameters."""

    family: str
    cv_mean: float
    cv_std: float
    params: dict[str, Any]
    trials: int
    pruned: int


@dataclass(frozen=True)
class Selection:
    """The winner, every candidate's best CV score, why, and the winner's out-of-fold
    probabilities on the search rows (for the operating point)."""

    winner: str
    metric: str
    candidates: tuple[CandidateResult, ...]
    trials: tuple[TrialRecord, ...]
    n_rows: int
    oof_y: np.ndarray = field(repr=False)
    oof_proba: np.ndarray = field(repr=False)
    confirmed: dict[str, float] = field(default_factory=dict)  # the second look's scores
    confirmed_params: dict[str, Any] | None = None  # the second look's winning parameters

    @property
    def params(self) -> dict[str, Any]:
        """The winner's final parameters (the second look's choice, else the search's)."""
        return dict(self.confirmed_params or self.best.params)

    @property
    def best(self) -> CandidateResult:
        return next(c for c in self.candidates if c.family == self.winner)

    def reason(self) -> str:
        if self.confirmed:
            looks = ", ".join(f"{f} {v:.4f}" for f, v in self.confirmed.items())
            return (
                f"{self.winner} won the second look at full fidelity on a validation slice "
                f"of the training split ({self.metric}: {looks}) after the search on "
                f"{self.n_rows} sampled rows"
            )
        others = [c for c in self.candidates if c.family != self.winner]
        versus = ", ".join(f"{c.family} {c.cv_mean:.4f}" for c in others) or "no other candidate"
        return (
            f"{self.winner} won: best cross-validated {self.metric} on the training split "
            f"({self.best.cv_mean:.4f} ± {self.best.cv_std:.4f}) against {versus}"
        )

    def metrics(self) -> dict[str, float]:
        out = {f"selection_{c.family}_cv_{self.metric}": c.cv_mean for c in self.candidates}
        out |= {f"selection_{c.family}_cv_std": c.cv_std for c in self.candidates}
        out |= {
            f"selection_{k.replace(' (defaults)', '_defaults')}_second_look_{self.metric}": v
            for k, v in self.confirmed.items()
        }
        return out | {"selection_trials": float(len(self.trials))}

    def markdown(self) -> str:
        lines = [
            "## Model selection",
            "",
            f"Optuna TPE, {len(self.trials)} trials, {self.metric} by stratified CV on "
            f"{self.n_rows} training rows (held-out rows never seen).",
            "",
            f"| candidate | CV {self.metric} | ± | trials (pruned) |",
            "|---|---|---|---|",
        ]
        for c in sorted(self.candidates, key=lambda c: -c.cv_mean):
            mark = " **(selected)**" if c.family == self.winner else ""
            lines.append(
                f"| {c.family}{mark} | {c.cv_mean:.4f} | {c.cv_std:.4f} | {c.trials} ({c.pruned}) |"
            )
        return "\n".join([*lines, "", self.reason() + "."])


def fold_score(metric: str, y: np.ndarray, proba: np.ndarray, classes: list[str]) -> float:
    """The primary metric of one validation fold: ``f1_macro`` (argmax), ``roc_auc`` (OvR),
    ``f2`` (binary: best F2 of the positive class over thresholds)."""
    if metric == "f1_macro":
        return ev.classification_metrics(y, proba, classes)["f1_macro"]
    if metric == "roc_auc":
        return ev.classification_metrics(y, proba, classes)["roc_auc_ovr"]
    if metric == "f2":
        grid = np.unique(np.round(proba[:, 1], 3))
        return float(max(fbeta_score(y, proba[:, 1] >= t, beta=2) for t in grid))
    raise ValueError(f"unknown primary metric {metric!r}; one of {PRIMARY_METRICS}")


def suggest(trial: Any, family: str, final: dict[str, Any]) -> dict[str, Any]:
    """The family's search space; returns the FINAL parameters (full rounds)."""
    if family == "logreg":
        return {**final, "C": trial.suggest_float("C", 1e-3, 10.0, log=True)}
    if family == "catboost":
        tuned = {
            "depth": trial.suggest_int("depth", 4, 8),
            "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
            "l2_leaf_reg": trial.suggest_float("l2_leaf_reg", 1.0, 10.0, log=True),
        }
    else:
        tuned = {
            "max_depth": trial.suggest_int("max_depth", 3, 8),
            "learning_rate": trial.suggest_float("learning_rate", 0.03, 0.3, log=True),
            "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 10.0, log=True),
            "subsample": trial.suggest_float("subsample", 0.6, 1.0),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
        }
    return {**final, **tuned}


def search_params(family: str, final: dict[str, Any], full_rounds: bool) -> dict[str, Any]:
    """What a trial fits: boosters with fewer rounds at a higher rate unless ``full_rounds``."""
    if family not in BOOSTERS or full_rounds:
        return dict(final)
    key = "iterations" if family == "catboost" else "n_estimators"
    rate = float(final.get("learning_rate", 0.1))
    return {
        **final,
        key: max(int(final[key] * SEARCH_ROUNDS), 10),
        "learning_rate": min(0.5, rate * SEARCH_RATE),
    }


def search_rows(train: pd.DataFrame, y: np.ndarray, budget: SearchBudget, seed: int) -> np.ndarray:
    """Row positions the search uses: all, or a stratified sample of ``max_rows``."""
    idx = np.arange(len(train))
    if len(train) <= budget.max_rows:
        return idx
    keep, _ = train_test_split(idx, train_size=budget.max_rows, stratify=y, random_state=seed)
    return np.sort(keep)


BaseParams = Callable[[str], dict[str, Any]]


def select_model(
    task: TaskContract,
    train: pd.DataFrame,
    families: tuple[str, ...],
    base_params: BaseParams,
    budget: SearchBudget,
    metric: str = "f1_macro",
    seed: int = 42,
) -> Selection:
    """Tune each family with Optuna and pick the best mean CV score on ``metric``.

    Args:
        base_params: family -> its final parameters before tuning (rounds, threads).
    """
    folds_ = _folds(task, train, budget, seed, metric)
    full_rounds = len(train) <= budget.max_rows // 3
    results: list[CandidateResult] = []
    trials: list[TrialRecord] = []
    oof: dict[str, np.ndarray] = {}
    for family in families:
        study = _study(seed)
        study.enqueue_trial(_defaults(family, base_params(family)))  # trial 0: the defaults
        best: dict[str, Any] = {"score": -np.inf}

        def objective(trial: Any, family: str = family, best: dict[str, Any] = best) -> float:
            final = suggest(trial, family, base_params(family))
            fit = search_params(family, final, full_rounds)
            score, std, proba = _cv(folds_, family, fit, trial)
            trial.set_user_attr("final_params", final)
            trial.set_user_attr("cv_std", std)
            if score > best["score"]:
                best.update(score=score, proba=proba)
            return score

        study.optimize(objective, n_trials=max(1, budget.trials), timeout=budget.time_budget_s)
        results.append(_candidate(family, study))
        trials += _records(family, study)
        if "proba" in best:
            oof[family] = best["proba"]
    return _winner(task, train, folds_, results, trials, oof, base_params)


def _winner(
    task: TaskContract,
    train: pd.DataFrame,
    f: _Folds,
    results: list[CandidateResult],
    trials: list[TrialRecord],
    oof: dict[str, np.ndarray],
    base_params: BaseParams,
) -> Selection:
    """The best CV score wins; after a search on a sample, the second look's best
    (`confirmation.second_look`)."""
    done = [r for r in results if np.isfinite(r.cv_mean)]
    if not done:
        raise ValueError("model selection: no candidate completed a trial")
    winner, final, looks = max(done, key=lambda r: r.cv_mean).family, None, {}
    if len(f.data) < len(train):
        y_all = encode_labels(train[task.diagnosis.name], f.classes)
        score = lambda y, p: fold_score(f.metric, y, p, f.classes)  # noqa: E731
        looks = second_look(task, train, y_all, done, base_params, score, f.seed)
    if looks:
        label = max(looks, key=lambda k: looks[k][0])
        winner, final = label.split(" ")[0], looks[label][1]
    scores = {k: v[0] for k, v in looks.items()}
    return Selection(
        winner,
        f.metric,
        tuple(results),
        tuple(trials),
        len(f.data),
        f.y,
        oof[winner],
        scores,
        final,
    )


def _defaults(family: str, base: dict[str, Any]) -> dict[str, Any]:
    """The family's default parameters within its search space: the first trial, so a tuned
    model is chosen only when it beats the defaults on CV."""
    names = {
        "logreg": ("C",),
        "catboost": ("depth", "learning_rate", "l2_leaf_reg"),
        "xgboost": (
            "max_depth",
            "learning_rate",
            "min_child_weight",
            "subsample",
            "colsample_bytree",
        ),
    }[family]
    return {k: base[k] for k in names if k in base}


def _study(seed: int) -> Any:
    import optuna  # lazy: only training searches

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )


@dataclass(frozen=True)
class _Folds:
    """The search's rows, labels and CV splits, shared by every trial."""

    task: TaskContract
    data: pd.DataFrame
    y: np.ndarray
    classes: list[str]
    splits: list[tuple[np.ndarray, np.ndarray]]
    seed: int
    metric: str


def _folds(
    task: TaskContract, train: pd.DataFrame, budget: SearchBudget, seed: int, metric: str
) -> _Folds:
    """The search rows of ``train`` (`search_rows`), their labels and stratified splits."""
    target = task.diagnosis.name
    classes = class_order(task.diagnosis.codes, train[target].astype(str).unique())
    y_all = encode_labels(train[target], classes)
    rows = search_rows(train, y_all, budget, seed)
    data, y = train.iloc[rows], y_all[rows]
    folds = max(2, min(budget.folds, int(np.bincount(y).min())))
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(data, y))
    return _Folds(task, data, y, classes, splits, seed, metric)


def _cv(
    f: _Folds, family: str, params: dict[str, Any], trial: Any
) -> tuple[float, float, np.ndarray]:
    """Mean and std of the fold scores and the out-of-fold probabilities; prunes after each
    fold when the running mean is below the median of earlier trials."""
    import optuna

    proba = np.zeros((len(f.y), len(f.classes)))
    scores = []
    for step, (fit_idx, val_idx) in enumerate(f.splits):
        pipe = diagnosis.build_pipeline(f.task, family, params, f.seed)
        yf = f.y[fit_idx]
        pipe.fit(f.data.iloc[fit_idx], yf, model__sample_weight=class_weights(yf))
        part = pipe.predict_proba(f.data.iloc[val_idx])
        proba[np.ix_(val_idx, pipe.named_steps["model"].classes_)] = part
        scores.append(fold_score(f.metric, f.y[val_idx], proba[val_idx], f.classes))
        if trial is None:
            continue
        trial.report(float(np.mean(scores)), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return float(np.mean(scores)), float(np.std(scores)), proba


def out_of_fold(
    task: TaskContract,
    train: pd.DataFrame,
    family: str,
    params: dict[str, Any],
    budget: SearchBudget,
    seed: int = 42,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) out of fold on the search rows of ``train`` for one family with
    fixed parameters (a forced model's operating point)."""
    f = _folds(task, train, budget, seed, "f1_macro")
    fit = search_params(family, params, len(train) <= budget.max_rows // 3)
    _, _, proba = _cv(f, family, fit, None)
    return f.y, proba


def _candidate(family: str, study: Any) -> CandidateResult:
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    if not complete:
        return CandidateResult(family, float("-inf"), 0.0, {}, len(study.trials), pruned)
    best = max(complete, key=lambda t: t.value)
    return CandidateResult(
        family,
        float(best.value),
        float(best.user_attrs["cv_std"]),
        dict(best.user_attrs["final_params"]),
        len(study.trials),
        pruned,
    )


def _records(family: str, study: Any) -> list[TrialRecord]:
    out = []
    for t in study.trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.duration else 0.0
        out.append(TrialRecord(family, t.number, dict(t.params), t.value, t.state.name, seconds))
    return out
