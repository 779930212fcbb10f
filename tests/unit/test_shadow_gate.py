"""The shadow queue's bound, the shadow summary on a real SQLite store, and the promotion gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.monitoring import metrics
from app.serving.shadow import ShadowScorer, ThreadBackend
from app.store import db, repository
from app.store.shadow import save_shadow_predictions, shadow_summary
from retrain.config import RetrainConfig
from retrain.shadow_gate import check_shadow_evidence, gate

CHAMPION, CHALLENGER = "run-champion", "run-challenger"


def test_full_queue_drops_and_counts() -> None:
    m = metrics.reset_for_tests()
    scorer = ShadowScorer(2, ThreadBackend(lambda: None, lambda: None))  # type: ignore[arg-type, return-value]
    scorer.info = {"run_id": CHALLENGER}  # loaded, as far as `submit` can tell
    for i in range(5):
        scorer.submit(f"p{i}", {}, CHAMPION, "sepsis")
    scorer.submit("abstained", {}, CHAMPION, None)  # the champion abstained: nothing to compare
    assert len(scorer._pending) == 2
    dropped = m.registry.get_sample_value(
        "healthpredict_shadow_errors_total", {"reason": "queue_full"}
    )
    assert dropped == 3


@pytest.fixture
def session(tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    with db.make_sessionmaker(engine)() as s:
        yield s
    engine.dispose()


def shadowed(
    session: Session,
    pid: str,
    champion: str,
    challenger: str,
    verdict: str | None = None,
    corrected: str | None = None,
    challenger_run: str = CHALLENGER,
) -> None:
    """One prediction answered ``champion``, shadowed ``challenger``, with optional feedback."""
    repository.save_predictions(
        session, [{"id": pid, "inputs": {}, "outputs": {}, "diagnosis_code": champion}]
    )
    save_shadow_predictions(
        session,
        [
            {
                "prediction_id": pid,
                "champion_run_id": CHAMPION,
                "challenger_run_id": challenger_run,
                "challenger_version": "1",
                "champion_diagnosis": champion,
                "challenger_diagnosis": challenger,
                "agree": champion == challenger,
            }
        ],
    )
    if verdict:
        repository.add_feedback(
            session,
            prediction_id=pid,
            verdict=verdict,
            clinician_id="c1",
            corrected_diagnosis=corrected,
        )


def test_summary_per_class_with_feedback(session: Session) -> None:
    shadowed(session, "a", "sepsis", "sepsis", "correct")
    shadowed(session, "b", "sepsis", "pneumonia", "wrong_diagnosis", "pneumonia")
    shadowed(session, "c", "sepsis", "sepsis")
    shadowed(session, "d", "acs", "acs", "wrong_treatment")
    shadowed(session, "e", "acs", "stroke", challenger_run="another-run")  # not this pair
    summary = shadow_summary(session, CHALLENGER, CHAMPION)
    sepsis, acs = summary.classes["sepsis"], summary.classes["acs"]
    assert (sepsis.n, sepsis.agree, sepsis.n_feedback) == (3, 2, 2)
    assert (sepsis.champion_correct, sepsis.challenger_correct) == (1, 2)
    assert (acs.n, acs.agree, acs.champion_correct, acs.challenger_correct) == (1, 1, 1, 1)
    assert summary.total.n == 4


@pytest.mark.parametrize(
    ("minimum", "challenger_right", "ok"),
    [(0, False, True), (10, True, False), (3, True, True), (3, False, False)],
    ids=["gate-off", "too-few", "enough-and-better", "enough-but-worse"],
)
def test_evidence(session: Session, minimum: int, challenger_right: bool, ok: bool) -> None:
    for i in range(4):
        # the champion is wrong on p (pneumonia) and right on q (acs)
        p_answer, q_answer = ("pneumonia", "acs") if challenger_right else ("sepsis", "stroke")
        shadowed(session, f"p{i}", "sepsis", p_answer, "wrong_diagnosis", "pneumonia")
        shadowed(session, f"q{i}", "acs", q_answer, "correct")
    verdict = check_shadow_evidence(session, CHALLENGER, CHAMPION, minimum)
    assert verdict.ok is ok, verdict.reason


def test_gate_holds_back_a_fresh_pair(tmp_path: Path) -> None:
    config = RetrainConfig(tmp_path, "sqlite://", tmp_path, shadow_min_predictions=5)
    assert gate(config, "promoted", None, CHAMPION) == "kept"
    assert gate(config, "kept", None, CHAMPION) == "kept"
    assert (
        gate(RetrainConfig(tmp_path, "sqlite://", tmp_path), "promoted", None, CHAMPION)
        == "promoted"
    )
