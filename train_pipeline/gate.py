"""The gate on the champion alias: a model is aliased only when it demonstrably carries signal.

Training (`train.py`) and retraining (`retrain/promote.py`) both ask `signal_gate`: the diagnosis
model must beat the majority class on the held-out rows with the lower end of a 95 % bootstrap
interval of the balanced-accuracy margin above zero. A model that fails is still logged and
registered, without the alias; ``allow_no_signal`` (CLI ``--allow-no-signal``) is the explicit
override. Retraining also requires the champion to be beaten by the configured margin
(`retrain.promote.challenger_wins`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# exit code of `python -m train_pipeline train` / `python -m retrain` when the gate refused
NO_SIGNAL_EXIT = 3


@dataclass(frozen=True)
class GateVerdict:
    """Whether the alias may move, and why (a sentence for the CLI, the log and the run)."""

    passed: bool
    reason: str
    margin_ci: tuple[float, float]
    overridden: bool = False

    def tags(self) -> dict[str, str]:
        """MLflow run tags recording the verdict."""
        return {
            "gate.passed": str(self.passed).lower(),
            "gate.overridden": str(self.overridden).lower(),
            "gate.reason": self.reason[:500],
        }


def signal_gate(margin_ci: tuple[float, float], allow_no_signal: bool = False) -> GateVerdict:
    """The verdict for a 95 % bootstrap interval of (model - majority) balanced accuracy.

    A non-finite bound never passes.
    """
    lo, hi = margin_ci
    span = f"[{lo:+.3f}, {hi:+.3f}]"
    if math.isfinite(lo) and lo > 0:
        reason = f"beats the majority class: balanced-accuracy margin 95 % CI {span}"
        return GateVerdict(True, reason, margin_ci)
    reason = (
        "no demonstrable signal: the 95 % bootstrap CI of the held-out balanced-accuracy margin "
        f"over the majority class is {span} (its lower bound must be above 0)"
    )
    if allow_no_signal:
        return GateVerdict(True, reason + "; aliased anyway (--allow-no-signal)", margin_ci, True)
    return GateVerdict(False, reason, margin_ci)
