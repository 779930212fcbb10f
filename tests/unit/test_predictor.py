"""Predictor on a real trained bundle: fast path == sklearn, coherence, abstention, shape."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.monitoring import metrics
from app.schemas.patient import PatientRecord
from app.serving.bundle import ModelBundle, class_codes
from app.serving.loader import build_bundle
from app.serving.prediction import ClassScore, Prediction
from app.serving.predictor import Predictor, build_columns
from app.serving.quality import assess, assess_many
from app.serving.sources import load_mlflow
from tests.factories import cohort_payloads, make_patient
from train_pipeline.contract import ED_COHORT, SYMPTOM_SEPARATOR
from train_pipeline.models.treatment import DIAGNOSIS_COLUMN

CRITICAL = ED_COHORT.names_in_tier("critical")
N_ROWS = 1000


@pytest.fixture(scope="module")
def bundle(trained_store: Any) -> ModelBundle:
    b, _ = build_bundle(
        lambda: load_mlflow(
            trained_store.tracking_uri,
            "healthpredict-diagnosis",
            "healthpredict-treatment",
            "champion",
        ),
        top_k=3,
    )
    return b


@pytest.fixture(scope="module")
def records(trained_store: Any) -> list[dict[str, Any]]:
    """Random cohort rows, validated by the API schema exactly as /predict would."""
    payloads = cohort_payloads(trained_store.data_path, N_ROWS, seed=7)
    return [PatientRecord.model_validate(p).to_record() for p in payloads]


def frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The DataFrame the sklearn pipelines were trained on (symptoms `;`-joined, bools 0/1)."""
    cols: dict[str, list[Any]] = {}
    for f in ED_COHORT.features:
        values = [r.get(f.name) for r in records]
        if f.kind == "multilabel":
            values = [SYMPTOM_SEPARATOR.join(v or ()) for v in values]
        elif f.kind == "boolean":
            values = [int(bool(v)) for v in values]
        elif f.kind in ("numeric", "integer"):
            values = [np.nan if v is None else float(v) for v in values]
        cols[f.name] = values
    return pd.DataFrame(cols)


def sklearn_reference(bundle: ModelBundle, records: list[dict[str, Any]]) -> tuple[Any, Any]:
    """(diagnosis proba, raw treatment proba on the predicted diagnosis) via sklearn."""
    df = frame(records)
    dproba = bundle.diagnosis_pipeline.predict_proba(df)
    codes = class_codes(bundle.diagnosis_pipeline.classes_, bundle.meta.diagnosis_classes)
    df[DIAGNOSIS_COLUMN] = np.asarray(codes, dtype=object)[dproba.argmax(axis=1)]
    return dproba, bundle.treatment_pipeline.predict_proba(df)


def scored(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if sum(r.get(n) is None for n in CRITICAL) < 3]


@pytest.mark.parametrize("mode", ["batched", "single"])
def test_fast_path_matches_sklearn_pipelines(
    bundle: ModelBundle, records: list[dict[str, Any]], mode: str
) -> None:
    recs = scored(records)
    assert len(recs) > 0.9 * N_ROWS
    predictor = Predictor(bundle, top_k=3)
    if mode == "batched":
        preds = predictor.predict_many(recs)
    else:
        preds = [p for r in recs for p in predictor.predict_many([r])]
    dproba, traw = sklearn_reference(bundle, recs)
    dclasses = class_codes(bundle.diagnosis_pipeline.classes_, bundle.meta.diagnosis_classes)
    got = np.array([p.diagnosis.probability for p in preds])  # type: ignore[union-attr]
    np.testing.assert_allclose(got, dproba.max(axis=1), atol=1e-6)
    assert [p.diagnosis.code for p in preds] == [  # type: ignore[union-attr]
        dclasses[j] for j in dproba.argmax(axis=1)
    ]
    # the chosen treatment's renormalised probability is its raw one over the allowed mass
    allowed = bundle.meta.allowed_pairs
    tclasses = class_codes(bundle.treatment_pipeline.classes_, bundle.meta.treatment_classes)
    for p, row in zip(preds, traw, strict=True):
        ok = allowed.get(p.diagnosis.code, tclasses)  # type: ignore[union-attr]
        mass = sum(row[tclasses.index(t)] for t in ok if t in tclasses)
        assert p.treatment.probability == pytest.approx(  # type: ignore[union-attr]
            row[tclasses.index(p.treatment.code)] / mass,
            abs=1e-6,  # type: ignore[union-attr]
        )


def test_top_k_sorted_and_labelled(bundle: ModelBundle, records: list[dict[str, Any]]) -> None:
    preds = Predictor(bundle, top_k=4).predict_many(scored(records)[:50])
    for p in preds:
        assert p.diagnosis is not None and p.treatment is not None
        probs = [c.probability for c in p.diagnosis.top_k]
        assert len(probs) == 4 and probs == sorted(probs, reverse=True)
        assert p.diagnosis.top_k[0].code == p.diagnosis.code
        assert p.diagnosis.label == ED_COHORT.diagnosis.label(p.diagnosis.code)
        assert ED_COHORT.treatment is not None
        assert p.treatment.label == ED_COHORT.treatment.label(p.treatment.code)
        assert p.model == bundle.info()


def test_coherence_when_raw_top_treatment_is_disallowed(
    bundle: ModelBundle, records: list[dict[str, Any]]
) -> None:
    """Real probabilities; the allowed-pairs table (overridable by the task config) is set so
    that each predicted diagnosis forbids the treatment model's raw favourite."""
    recs = scored(records)[:300]
    dproba, traw = sklearn_reference(bundle, recs)
    dclasses = class_codes(bundle.diagnosis_pipeline.classes_, bundle.meta.diagnosis_classes)
    tclasses = class_codes(bundle.treatment_pipeline.classes_, bundle.meta.treatment_classes)
    raw_top: dict[str, set[str]] = {}
    for drow, trow in zip(dproba, traw, strict=True):
        raw_top.setdefault(dclasses[drow.argmax()], set()).add(tclasses[trow.argmax()])
    allowed = {d: [t for t in tclasses if t not in tops] for d, tops in raw_top.items()}
    assert all(allowed.values())
    forced = dataclasses.replace(
        bundle, meta=dataclasses.replace(bundle.meta, allowed_pairs=allowed)
    )
    preds = Predictor(forced, top_k=3).predict_many(recs)
    for p, trow in zip(preds, traw, strict=True):
        assert p.diagnosis is not None and p.treatment is not None
        assert p.treatment.code in allowed[p.diagnosis.code]
        assert p.treatment.code != tclasses[trow.argmax()]  # the raw argmax was overruled


def test_coherence_with_the_learned_table(
    bundle: ModelBundle, records: list[dict[str, Any]]
) -> None:
    allowed = bundle.meta.allowed_pairs
    for p in Predictor(bundle).predict_many(scored(records)):
        assert p.diagnosis is not None and p.treatment is not None
        if p.diagnosis.code in allowed:
            assert p.treatment.code in allowed[p.diagnosis.code]


def stage_count(stage: str) -> float:
    value = metrics.current().registry.get_sample_value(
        "healthpredict_stage_duration_seconds_count", {"stage": stage}
    )
    return value or 0.0


def test_insufficient_records_skip_the_models(bundle: ModelBundle) -> None:
    poor = {k: v for k, v in make_patient().items() if k not in CRITICAL[:3]}
    before = stage_count("diagnosis")
    preds = Predictor(bundle).predict_many([poor, poor])
    assert stage_count("diagnosis") == before  # no model call at all
    for p in preds:
        assert p.diagnosis is None and p.treatment is None
        assert p.quality == "insufficient"
        assert p.imputed_features == []
        assert "insufficient_data" in [w.code for w in p.warnings]


def test_mixed_batch_keeps_order(bundle: ModelBundle, records: list[dict[str, Any]]) -> None:
    good = scored(records)[:4]
    poor = {k: v for k, v in good[0].items() if k not in CRITICAL[:4]}
    batch = [good[0], poor, good[1], poor, good[2], good[3]]
    before = stage_count("diagnosis")
    preds = Predictor(bundle).predict_many(batch)
    assert stage_count("diagnosis") == before + 1  # one model call for the four scored rows
    alone = [Predictor(bundle).predict_many([r])[0] for r in batch]
    assert [p.quality == "insufficient" for p in preds] == [False, True, False, True, False, False]
    assert [p.to_dict() for p in preds] == [p.to_dict() for p in alone]


def test_to_dict_has_the_design_fields(bundle: ModelBundle) -> None:
    body = Predictor(bundle).predict_many([make_patient()])[0].to_dict()
    assert set(body) == {
        "diagnosis",
        "treatment",
        "prediction_quality",
        "missing_features",
        "imputed_features",
        "news2",
        "warnings",
        "model",
    }
    assert set(body["diagnosis"]) == {"code", "label", "probability", "top_k"}
    assert set(body["treatment"]) == {"code", "label", "probability"}
    assert set(body["model"]) == {"source", "diagnosis_version", "treatment_version", "run_id"}
    assert body["model"]["source"] == "mlflow"


def test_empty_list(bundle: ModelBundle) -> None:
    assert Predictor(bundle).predict_many([]) == []


def test_fallback_paths_give_the_same_bodies(
    bundle: ModelBundle, records: list[dict[str, Any]]
) -> None:
    """Without the shared treatment features (a layout the load-time check refuses) the
    treatment pipeline's own transform gives the very same responses."""
    fast = Predictor(bundle)
    slow = Predictor(bundle)
    slow._shared = None
    insufficient = {k: v for k, v in records[0].items() if k not in CRITICAL}
    for k in (1, 8, 200):
        batch = [*records[:k], insufficient, *records[k : 2 * k]]  # scored rows are a subset
        assert [p.to_dict() for p in slow.predict_many(batch)] == [
            p.to_dict() for p in fast.predict_many(batch)
        ]


def test_prediction_attributes_read_its_body(
    bundle: ModelBundle, records: list[dict[str, Any]]
) -> None:
    poor = {k: v for k, v in records[0].items() if k not in CRITICAL[:3]}
    preds = Predictor(bundle).predict_many([*records[:20], poor])
    for p in preds:
        body = p.to_dict()
        rebuilt = Prediction(
            p.diagnosis,
            p.treatment,
            p.quality,
            p.missing_features,
            p.imputed_features,
            p.news2,
            p.warnings,
            p.model,
        )
        assert rebuilt == p and rebuilt.to_dict() == body
        assert body["prediction_quality"] == p.quality
        assert body["news2"] == {"score": p.news2.score, "band": p.news2.band}
        assert body["warnings"] == [dataclasses.asdict(w) for w in p.warnings]
        if p.diagnosis is not None and p.treatment is not None:
            assert body["diagnosis"]["top_k"] == [
                {"code": c.code, "label": c.label, "probability": c.probability}
                for c in p.diagnosis.top_k
            ]
            assert body["treatment"]["code"] == p.treatment.code
            assert hash(p.treatment) == hash(ClassScore(*body["treatment"].values()))
        body["diagnosis"] = "changed"  # a new top-level dict each call
        assert p.to_dict() != body
    assert preds[-1].diagnosis is None and preds[-1].quality == "insufficient"


def test_large_batches_equal_one_record_at_a_time(
    bundle: ModelBundle, records: list[dict[str, Any]]
) -> None:
    """Every body of a 400-record batch equals the one the same record gets alone (missing
    vitals, labs and insufficient records mixed in)."""
    rng = np.random.default_rng(3)
    batch = []
    for r in records[:400]:
        r = dict(r)
        for name in rng.choice(list(r), size=int(rng.integers(0, 6)), replace=False):
            if ED_COHORT.feature(str(name)).tier != "required":
                r[str(name)] = None  # booleans too: None means absent
        batch.append(r)
    predictor = Predictor(bundle)
    preds = predictor.predict_many(batch)
    qualities = {p.quality for p in preds}
    assert {"high", "medium", "low", "insufficient"} <= qualities, qualities
    alone = [predictor.predict_many([r])[0] for r in batch]
    # the trees' sums in a batch of 1 vs 400 may differ in the last bit (so they did before)
    assert [rounded(p.to_dict()) for p in preds] == [rounded(p.to_dict()) for p in alone]


def rounded(body: Any) -> Any:
    """``body`` with every float rounded to 12 digits."""
    if isinstance(body, dict):
        return {k: rounded(v) for k, v in body.items()}
    if isinstance(body, list):
        return [rounded(v) for v in body]
    return round(body, 12) if isinstance(body, float) else body


def test_assess_many_equals_assess(records: list[dict[str, Any]]) -> None:
    batch = [{k: v for k, v in r.items() if hash((k, i)) % 4} for i, r in enumerate(records)]
    batch += [{**records[0], "spo2": float("nan")}]
    cols = build_columns(batch, ED_COHORT.features)
    assert assess_many(batch, cols) == [assess(r) for r in batch]


def test_a_fast_path_a_bundle_cannot_use_is_counted_and_listed(
    bundle: ModelBundle, caplog: pytest.LogCaptureFixture
) -> None:
    """A CatBoost model whose NumPy forest could not be verified is served by CatBoost itself,
    never silently: the predictor lists it as off, logs it and counts it (once per bundle)."""

    def disabled() -> float:
        value = metrics.current().registry.get_sample_value(
            "healthpredict_fast_path_disabled_total", {"path": "diagnosis_forest"}
        )
        return value or 0.0

    assert Predictor(bundle).fast_paths == dict.fromkeys(
        ("diagnosis_forest", "treatment_forest", "shared_features"), True
    )
    before = disabled()
    no_forest = dataclasses.replace(
        bundle, diagnosis=dataclasses.replace(bundle.diagnosis, forest=None)
    )
    Predictor(no_forest, observe=False)  # warm-up predictors report nothing
    assert disabled() == before
    with caplog.at_level("WARNING", logger="app.serving.predictor"):
        predictor = Predictor(no_forest)
    assert predictor.fast_paths["diagnosis_forest"] is False
    assert disabled() == before + 1
    assert [r.__dict__.get("path") for r in caplog.records] == ["diagnosis_forest"]


def test_without_the_forest_catboost_gives_the_same_bodies(
    bundle: ModelBundle, records: list[dict[str, Any]]
) -> None:
    """The forest's plain path (CatBoost itself) answers the same (probabilities to 1e-12)."""
    no_forest = dataclasses.replace(
        bundle,
        diagnosis=dataclasses.replace(bundle.diagnosis, forest=None),
        treatment=dataclasses.replace(bundle.treatment, forest=None),
    )
    batch = records[:50]
    plain = Predictor(no_forest, observe=False).predict_many(batch)
    fast = Predictor(bundle, observe=False).predict_many(batch)
    assert [rounded(p.to_dict()) for p in plain] == [rounded(p.to_dict()) for p in fast]
