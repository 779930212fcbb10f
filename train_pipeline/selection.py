"""Model selection: Optuna (seeded TPE, median pruning) over CatBoost, XGBoost and logistic
regression, each a full pipeline (encoding inside), scored by stratified k-fold CV on the
training rows only (never the held-out rows) on the task's primary metric.

Budget: `SearchBudget` (``--trials`` / ``--time-budget``, ``HP_TRAIN_TRIALS`` /
``HP_TRAIN_TIME_BUDGET_S``). On a large training split the search cross-validates a stratified
sample of at most ``max_rows`` rows, with boosters at a quarter of their rounds and twice the
learning rate (the convention of the CV stage, `model_choice._scaled`); the families that come
within a margin of the best then get a second look at full fidelity (`confirmation`), and the
winner is refitted on the whole split with its full rounds. A split the search reads whole is
cross-validated at full fidelity: what is scored is what is shipped, as no second look follows
(on stroke's 4,088 rows, 5 x 3-fold CV, CatBoost's tuned parameters scored 0.847 ROC-AUC at a
quarter of their rounds and 0.804 with the full rounds they would ship with). A small split is
cross-validated several times and a simpler family within one standard error of the best wins
(`parsimony`). The families' search spaces are `search_space`'s. No MLflow here: `trials` are
logged as nested runs by `register.log_bundle`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import fbeta_score
from sklearn.model_selection import train_test_split

from train_pipeline import evaluate as ev
from train_pipeline.confirmation import second_look
from train_pipeline.contract import TaskContract
from train_pipeline.models import diagnosis
from train_pipeline.models.pipeline import class_weights
from train_pipeline.parsimony import (
    cv_splits,
    one_standard_error,
    repeats_for,
    simplest_trial,
    standard_error,
)
from train_pipeline.search_space import defaults, grid, search_params, suggest
from train_pipeline.split import class_order, encode_labels

logger = logging.getLogger(__name__)

CANDIDATES: tuple[str, ...] = ("catboost", "xgboost", "logreg")
PRIMARY_METRICS: tuple[str, ...] = ("f1_macro", "roc_auc", "f2")


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
    cv_se: float = 0.0  # standard error of cv_mean (`parsimony.standard_error`)


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
    rule: str | None = None  # why the one-standard-error rule preferred a simpler family
    repeats: int = 1  # CV partitions averaged (`parsimony.repeats_for`)

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
        if self.rule:
            return f"{self.rule} ({self.repeats} x stratified CV on {self.n_rows} training rows)"
        others = [c for c in self.candidates if c.family != self.winner]
        versus = ", ".join(f"{c.family} {c.cv_mean:.4f}" for c in others) or "no other candidate"
        return (
            f"{self.winner} won: best cross-validated {self.metric} on the training split "
            f"({self.best.cv_mean:.4f} ± {self.best.cv_se:.4f} standard error) against {versus}"
        )

    def metrics(self) -> dict[str, float]:
        out = {f"selection_{c.family}_cv_{self.metric}": c.cv_mean for c in self.candidates}
        out |= {f"selection_{c.family}_cv_std": c.cv_std for c in self.candidates}
        out |= {f"selection_{c.family}_cv_se": c.cv_se for c in self.candidates}
        out |= {
            f"selection_{k.replace(' (defaults)', '_defaults')}_second_look_{self.metric}": v
            for k, v in self.confirmed.items()
        }
        return out | {"selection_trials": float(len(self.trials))}

    def markdown(self) -> str:
        lines = [
            "## Model selection",
            "",
            f"Optuna TPE, {len(self.trials)} trials, {self.metric} by stratified CV "
            f"({self.repeats} partition(s)) on {self.n_rows} training rows (held-out rows never "
            "seen); ± is the standard error of the mean.",
            "",
            f"| candidate | CV {self.metric} | ± | trials (pruned) |",
            "|---|---|---|---|",
        ]
        for c in sorted(self.candidates, key=lambda c: -c.cv_mean):
            mark = " **(selected)**" if c.family == self.winner else ""
            lines.append(
                f"| {c.family}{mark} | {c.cv_mean:.4f} | {c.cv_se:.4f} | {c.trials} ({c.pruned}) |"
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
    sampled = folds_.sampled
    results: list[CandidateResult] = []
    trials: list[TrialRecord] = []
    oof: dict[str, np.ndarray] = {}
    for family in families:
        # a small split's CV is several partitions: prune only after a whole one
        study = _study(seed, len(folds_.splits) // folds_.repeats - 1 if folds_.repeats > 1 else 0)
        # the defaults first, then logreg's C grid where the search's choice is final (a
        # sampled search only ranks the families for the second look: its budget stays)
        first = [defaults(family, base_params(family)), *([] if sampled else grid(family))]
        for params in first:
            study.enqueue_trial(params)
        probas: dict[int, np.ndarray] = {}

        def objective(
            trial: Any, family: str = family, probas: dict[int, np.ndarray] = probas
        ) -> float:
            final = suggest(trial, family, base_params(family))
            fit = search_params(family, final, not sampled)
            score, std, se, probas[trial.number] = _cv(folds_, family, fit, trial)
            trial.set_user_attr("final_params", final)
            trial.set_user_attr("cv_std", std)
            trial.set_user_attr("cv_se", se)
            return score

        n_trials = max(1, budget.trials, len(first))
        study.optimize(objective, n_trials=n_trials, timeout=budget.time_budget_s)
        result, number = _candidate(family, study)
        results.append(result)
        trials += _records(family, study)
        if number is not None:
            oof[family] = probas[number]
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
    """The best CV score wins, or a simpler family within one standard error of it
    (`parsimony.one_standard_error`); after a search on a sample, the second look's best
    (`confirmation.second_look`)."""
    done = [r for r in results if np.isfinite(r.cv_mean)]
    if not done:
        raise ValueError("model selection: no candidate completed a trial")
    (winner, rule), final, looks = one_standard_error(done), None, {}
    if f.sampled:
        y_all = encode_labels(train[task.diagnosis.name], f.classes)
        score = lambda y, p: fold_score(f.metric, y, p, f.classes)  # noqa: E731
        looks = second_look(task, train, y_all, done, base_params, score, f.seed)
    if looks:
        label = max(looks, key=lambda k: looks[k][0])
        winner, final, rule = label.split(" ")[0], looks[label][1], None
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
        rule,
        f.repeats,
    )


def _study(seed: int, warmup: int = 0) -> Any:
    import optuna  # lazy: only training searches

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup),
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
    repeats: int = 1  # partitions in `splits` (the first one gives the out-of-fold rows)
    sampled: bool = False  # `data` is a sample of the training split, not all of it


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
    repeats = repeats_for(len(data))
    splits = cv_splits(y, folds, seed, repeats)
    return _Folds(task, data, y, classes, splits, seed, metric, repeats, len(rows) < len(train))


def _cv(
    f: _Folds, family: str, params: dict[str, Any], trial: Any
) -> tuple[float, float, float, np.ndarray]:
    """Mean, std and standard error of the fold scores and the out-of-fold probabilities (the
    first partition's); prunes after each fold when the running mean is below the median of
    earlier trials."""
    import optuna

    proba = np.zeros((len(f.y), len(f.classes)))
    scores = []
    for step, (fit_idx, val_idx) in enumerate(f.splits):
        pipe = diagnosis.build_pipeline(f.task, family, params, f.seed)
        yf = f.y[fit_idx]
        pipe.fit(f.data.iloc[fit_idx], yf, model__sample_weight=class_weights(yf))
        part = np.zeros((len(val_idx), len(f.classes)))
        part[:, pipe.named_steps["model"].classes_] = pipe.predict_proba(f.data.iloc[val_idx])
        if step < len(f.splits) // f.repeats:
            proba[val_idx] = part
        scores.append(fold_score(f.metric, f.y[val_idx], part, f.classes))
        if trial is None:
            continue
        trial.report(float(np.mean(scores)), step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return float(np.mean(scores)), float(np.std(scores)), standard_error(scores), proba


def out_of_fold(
    task: TaskContract,
    train: pd.DataFrame,
    family: str,
    params: dict[str, Any],
    budget: SearchBudget,
    seed: int = 42,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) out of fold on the search rows of ``train`` for one family with
    fixed parameters (a forced model's operating point and calibration): at full fidelity
    unless the search rows are a sample, as `select_model` scores."""
    f = _folds(task, train, budget, seed, "f1_macro")
    fit = search_params(family, params, not f.sampled)
    _, _, _, proba = _cv(f, family, fit, None)
    return f.y, proba


def _candidate(family: str, study: Any) -> tuple[CandidateResult, int | None]:
    """The family's chosen trial (`parsimony.simplest_trial`: its best, or for logistic
    regression the strongest regularisation within one standard error of it) and its number."""
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    if not complete:
        return CandidateResult(family, float("-inf"), 0.0, {}, len(study.trials), pruned), None
    best = simplest_trial(family, complete)
    return CandidateResult(
        family,
        float(best.value),
        float(best.user_attrs["cv_std"]),
        dict(best.user_attrs["final_params"]),
        len(study.trials),
        pruned,
        float(best.user_attrs.get("cv_se", 0.0)),
    ), best.number


def _records(family: str, study: Any) -> list[TrialRecord]:
    out = []
    for t in study.trials:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.duration else 0.0
        out.append(TrialRecord(family, t.number, dict(t.params), t.value, t.state.name, seconds))
    return out
