"""Shadow evidence before a promotion (`HP_SHADOW_MIN_PREDICTIONS`; 0 turns it off).

A challenger may become champion only when it has scored at least that many live predictions
in shadow, and, on those clinicians gave feedback on, is not less accurate than the champion.
A freshly retrained pair has scored nothing yet: with the gate on, a retrain that wins is kept
as the shadow challenger (alias ``challenger``) instead of promoted, and

    python -m retrain.shadow_gate [--promote]

checks the registered challenger against the champion (exit 0: enough evidence, 1: not yet)
and, with ``--promote``, moves the champion alias to it and saves it to BentoML.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.settings import get_settings
from app.store import db
from app.store.shadow import shadow_summary
from retrain.config import RetrainConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowEvidence:
    """The verdict of `check_shadow_evidence` and the figures behind it."""

    ok: bool
    reason: str
    n_predictions: int = 0
    n_feedback: int = 0
    champion_correct: int = 0
    challenger_correct: int = 0


def check_shadow_evidence(
    session: Session | None, challenger_run_id: str | None, champion_run_id: str, minimum: int
) -> ShadowEvidence:
    """Whether the challenger's shadow record allows promoting it over the champion.

    Args:
        session: the store (None, or no ``challenger_run_id``: nothing was shadowed).
        minimum: shadow predictions needed (`Settings.shadow_min_predictions`); 0: always ok.
    """
    if minimum <= 0:
        return ShadowEvidence(True, "no shadow evidence required (HP_SHADOW_MIN_PREDICTIONS=0)")
    if session is None or challenger_run_id is None:
        return ShadowEvidence(False, f"0 shadow predictions < HP_SHADOW_MIN_PREDICTIONS={minimum}")
    t = shadow_summary(session, challenger_run_id, champion_run_id).total
    figures = {
        "n_predictions": t.n,
        "n_feedback": t.n_feedback,
        "champion_correct": t.champion_correct,
        "challenger_correct": t.challenger_correct,
    }
    if t.n < minimum:
        why = f"{t.n} shadow predictions < HP_SHADOW_MIN_PREDICTIONS={minimum}"
        return ShadowEvidence(False, why, **figures)
    if t.challenger_correct < t.champion_correct:  # same predictions: counts compare accuracies
        why = (
            f"worse than the champion on {t.n_feedback} predictions with feedback "
            f"({t.challenger_correct} vs {t.champion_correct} correct)"
        )
        return ShadowEvidence(False, why, **figures)
    why = f"{t.n} shadow predictions, {t.challenger_correct}/{t.n_feedback} vs champion's"
    return ShadowEvidence(True, f"{why} {t.champion_correct}/{t.n_feedback} on feedback", **figures)


def evidence(
    config: RetrainConfig, challenger_run_id: str | None, champion_run_id: str
) -> ShadowEvidence:
    """`check_shadow_evidence` on the store of ``config.database_url``."""
    if config.shadow_min_predictions <= 0 or not config.database_url or not challenger_run_id:
        return check_shadow_evidence(
            None, challenger_run_id, champion_run_id, config.shadow_min_predictions
        )
    engine = db.make_engine(config.database_url)
    try:
        with db.make_sessionmaker(engine)() as session:
            return check_shadow_evidence(
                session, challenger_run_id, champion_run_id, config.shadow_min_predictions
            )
    finally:
        engine.dispose()


def gate(
    config: RetrainConfig, decision: str, challenger_run_id: str | None, champion_run_id: str
) -> str:
    """What retraining calls: ``promoted`` stays so only with enough shadow evidence, else
    ``kept`` (the pair is then registered as the shadow challenger)."""
    if decision != "promoted":
        return decision
    verdict = evidence(config, challenger_run_id, champion_run_id)
    if verdict.ok:
        return decision
    logger.info("promotion held back for shadow evidence: %s", verdict.reason)
    return "kept"


def _aliased_run(config: RetrainConfig, alias: str) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=config.tracking_uri, registry_uri=config.tracking_uri)
    try:
        return str(client.get_model_version_by_alias(config.names["diagnosis"], alias).run_id)
    except MlflowException:
        return None


def main(argv: list[str] | None = None) -> int:
    """`python -m retrain.shadow_gate [--promote]`: exit 0 when the challenger may be (or was)
    promoted, 1 when its shadow evidence is not enough, 2 when there is no challenger."""
    from retrain import promote as pr

    parser = argparse.ArgumentParser(prog="python -m retrain.shadow_gate", description=__doc__)
    parser.add_argument("--promote", action="store_true", help="promote it when the check passes")
    args = parser.parse_args(argv)
    config = RetrainConfig.from_settings(get_settings())
    challenger = _aliased_run(config, config.shadow_alias)
    champion = _aliased_run(config, config.alias)
    if challenger is None or champion is None:
        sys.stderr.write(f"no '{config.shadow_alias}' or '{config.alias}' pair registered\n")
        return 2
    verdict = evidence(config, challenger, champion)
    sys.stdout.write(f"{'ok' if verdict.ok else 'not yet'}: {verdict.reason}\n")
    if not verdict.ok:
        return 1
    if args.promote:
        bundle = pr.promote_shadow_challenger(config)
        sys.stdout.write(f"promoted run {bundle.run_id} (v{bundle.diagnosis_version})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
