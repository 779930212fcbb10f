"""Predictions over the tiny trained bundle (H2's ``trained_store``), loaded from MLflow."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.schemas.patient import PatientRecord
from app.schemas.prediction import PredictionResponse
from app.serving.predictor import Predictor
from app.settings import Settings
from app.store.repository import get_prediction
from tests.api.conftest import CLINICIAN, assert_error, client_for, make_settings
from tests.factories import DROP, cohort_payloads, make_patient, renamed
from tests.pg_schema import empty_pg_schema
from train_pipeline.contract import ED_COHORT

DESIGN_KEYS = {
    "prediction_id", "diagnosis", "treatment", "prediction_quality", "missing_features",
    "imputed_features", "news2", "warnings", "model", "explanation",
}  # fmt: skip


def predict(client: TestClient, payload: dict[str, Any], **params: Any) -> dict[str, Any]:
    response = client.post("/predict", json=payload, headers=CLINICIAN, params=params)
    assert response.status_code == 200, response.text
    assert response.headers.get("x-request-id")
    return response.json()  # type: ignore[no-any-return]


def flush_audit(client: TestClient) -> None:
    client.portal.call(client.app.state.audit.flush)  # type: ignore[union-attr, attr-defined]


@pytest.fixture(scope="module")
def pg_client(
    trained_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The served app over the real PostgreSQL (an empty schema of its own)."""
    with empty_pg_schema() as url:
        settings = trained_settings.model_copy(
            update={"database_url": url, "data_dir": tmp_path_factory.mktemp("predict-pg")}
        )
        yield from client_for(settings)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_client(request: pytest.FixtureRequest) -> TestClient:
    """The served app on each store: the tests where the store matters run on both."""
    name = "client" if request.param == "sqlite" else "pg_client"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def test_response_is_design_section_4(client: TestClient, trained_store: Any) -> None:
    body = predict(client, make_patient())
    assert set(body) == DESIGN_KEYS
    parsed = PredictionResponse.model_validate(body)
    assert parsed.prediction_quality == "high"
    assert parsed.diagnosis is not None and parsed.treatment is not None
    assert parsed.diagnosis.code in ED_COHORT.diagnosis.codes
    assert parsed.diagnosis.label == ED_COHORT.diagnosis.label(parsed.diagnosis.code)
    assert parsed.diagnosis.top_k[0].code == parsed.diagnosis.code
    assert parsed.model.source == "mlflow"
    assert parsed.model.run_id == trained_store.run_id
    assert parsed.model.diagnosis_version == str(trained_store.diagnosis_version)
    assert parsed.news2.score is not None
    assert any(w.code for w in parsed.warnings)  # the example patient is hypoxic
    assert parsed.explanation is None


@pytest.mark.parametrize("style", ["camel", "french"])
def test_renamed_payloads_give_the_same_prediction(client: TestClient, style: str) -> None:
    canonical = predict(client, make_patient())
    other = predict(client, renamed(make_patient(), style))
    for body in (canonical, other):
        body.pop("prediction_id")
    if style == "french":  # glucose sent as glycemie in g/L: converted, equal up to rounding
        assert "glycemie" in renamed(make_patient(), style)
    assert other["diagnosis"]["code"] == canonical["diagnosis"]["code"]
    assert other["treatment"]["code"] == canonical["treatment"]["code"]
    assert other["diagnosis"]["probability"] == pytest.approx(canonical["diagnosis"]["probability"])
    assert {k: v for k, v in other.items() if k not in ("diagnosis", "treatment")} == {
        k: v for k, v in canonical.items() if k not in ("diagnosis", "treatment")
    }


def test_insufficient_record_abstains(client: TestClient) -> None:
    required = ED_COHORT.names_in_tier("required")
    body = predict(client, {k: v for k, v in make_patient().items() if k in required})
    assert body["prediction_quality"] == "insufficient"
    assert body["diagnosis"] is None and body["treatment"] is None
    assert body["warnings"], "an abstention says why"
    assert set(ED_COHORT.names_in_tier("critical")) <= set(body["missing_features"])


def test_missing_important_field_lowers_quality(client: TestClient) -> None:
    important = ED_COHORT.names_in_tier("important")
    body = predict(client, make_patient(**dict.fromkeys(important, DROP)))
    assert body["prediction_quality"] == "medium"
    assert set(important) <= set(body["missing_features"])


def test_every_prediction_is_audited(store_client: TestClient, trained_store: Any) -> None:
    body = predict(store_client, make_patient())
    flush_audit(store_client)
    with store_client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        row = get_prediction(session, body["prediction_id"])
    assert row is not None
    assert row.outputs == body
    assert row.inputs["age"] == make_patient()["age"]
    assert row.diagnosis_code == body["diagnosis"]["code"]
    assert row.run_id == trained_store.run_id and row.quality == "high"


def test_batch_keeps_order_and_audits_every_item(store_client: TestClient) -> None:
    required = ED_COHORT.names_in_tier("required")
    records = [make_patient(), {k: make_patient()[k] for k in required}, make_patient(age=30)]
    response = store_client.post("/predict/batch", json={"records": records}, headers=CLINICIAN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["count"] == 3 and len(body["predictions"]) == 3
    qualities = [p["prediction_quality"] for p in body["predictions"]]
    assert qualities[1] == "insufficient" and qualities[0] == "high"
    flush_audit(store_client)
    with store_client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        assert all(get_prediction(session, p["prediction_id"]) for p in body["predictions"])


def test_batch_of_camel_case_records_gives_what_canonical_names_give(
    client: TestClient, trained_store: Any
) -> None:
    """The same records under canonical and camelCase names: the same predictions and the same
    (canonical) audit inputs."""
    payloads = cohort_payloads(trained_store.data_path, 200, seed=11)
    camel = [renamed(p, "camel") for p in payloads]
    bodies = []
    for records in (payloads, camel):
        response = client.post("/predict/batch", json={"records": records}, headers=CLINICIAN)
        assert response.status_code == 200, response.text
        bodies.append(response.json()["predictions"])
    canonical, camel_bodies = bodies
    ids = (
        [p.pop("prediction_id") for p in canonical],
        [p.pop("prediction_id") for p in camel_bodies],
    )
    assert canonical == camel_bodies
    flush_audit(client)
    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        for a, b in zip(*ids, strict=True):
            assert get_prediction(session, a).inputs == get_prediction(session, b).inputs


def test_batch_audit_rows_are_the_same_from_the_child_and_from_a_thread(
    client: TestClient, trained_store: Any, tmp_path: Path
) -> None:
    """The default app writes its audit from a child process (the store is a SQLite file);
    an app with ``audit_process=False`` writes from a thread: either way each stored output is
    the response item, byte for byte, and each stored input the canonical record (the same
    text from both)."""
    import orjson
    from sqlalchemy import text

    assert client.app.state.audit._process is not None  # type: ignore[attr-defined]
    payloads = cohort_payloads(trained_store.data_path, 60, seed=5)
    settings = make_settings(
        tmp_path,
        mlflow_tracking_uri=trained_store.tracking_uri,
        bentoml_home=Path(trained_store.bentoml_home),
        mlflow_timeout_s=30.0,
        audit_process=False,
    )
    stored = []
    for app_client in (client, next(threaded := client_for(settings))):
        response = app_client.post("/predict/batch", json={"records": payloads}, headers=CLINICIAN)
        assert response.status_code == 200, response.text
        items = response.json()["predictions"]
        flush_audit(app_client)
        with app_client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
            rows = {
                r.id: r
                for r in session.execute(
                    text("SELECT id, inputs, outputs, quality FROM predictions")
                )
            }
        for item, record in zip(
            items, [PatientRecord.model_validate(p).to_record() for p in payloads], strict=True
        ):
            row = rows[item["prediction_id"]]
            assert row.outputs == orjson.dumps(item).decode()
            assert orjson.loads(row.inputs) == record
            assert row.quality == item["prediction_quality"]
        stored.append([rows[item["prediction_id"]].inputs for item in items])
    threaded.close()
    assert stored[0] == stored[1]


def test_batch_over_a_lowered_limit_is_413(client: TestClient) -> None:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    limit = settings.batch_max_size
    try:
        settings.batch_max_size = 2
        response = client.post(
            "/predict/batch", json={"records": [make_patient()] * 3}, headers=CLINICIAN
        )
        assert_error(response, 413, "batch_too_large")
    finally:
        settings.batch_max_size = limit


def test_explain_adds_contributions(client: TestClient) -> None:
    body = predict(client, make_patient(), explain="true")
    explanation = body["explanation"]
    assert explanation is not None
    assert 0 < len(explanation) <= 5
    assert {"feature", "value", "contribution"} <= set(explanation[0])


def test_models_and_readiness(client: TestClient, trained_store: Any) -> None:
    ready = client.get("/health/ready").json()
    assert ready["status"] == "ready" and ready["source"] == "mlflow"
    models = client.get("/models", headers=CLINICIAN).json()
    assert models["run_id"] == trained_store.run_id
    assert models["alias"] == "champion"
    assert [m["role"] for m in models["models"]] == ["diagnosis", "treatment"]
    assert models["models"][0]["version"] == str(trained_store.diagnosis_version)
    assert all(c["label"] for c in models["models"][0]["classes"])
    assert models["contract_fingerprint"] == ED_COHORT.fingerprint()
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["fast_paths"] == dict.fromkeys(  # every fast path serves the trained bundle
        ("diagnosis_forest", "treatment_forest", "shared_features"), True
    )


def test_no_incoherent_pair_on_1000_cohort_rows(client: TestClient, trained_store: Any) -> None:
    payloads = cohort_payloads(trained_store.data_path, 1000, seed=7)
    assert len(payloads) >= 950
    response = client.post("/predict/batch", json={"records": payloads}, headers=CLINICIAN)
    assert response.status_code == 200, response.text
    allowed = client.get("/models", headers=CLINICIAN).json()["allowed_pairs"]
    pairs = [
        (p["diagnosis"]["code"], p["treatment"]["code"])
        for p in response.json()["predictions"]
        if p["diagnosis"] is not None
    ]
    assert len(pairs) >= 900
    incoherent = [(d, t) for d, t in pairs if t not in allowed[d]]
    assert incoherent == []


def test_coherence_holds_when_the_raw_top_treatment_is_not_allowed(
    client: TestClient, trained_store: Any
) -> None:
    """Narrow every diagnosis' allowed set to exclude the treatment model's raw favourite:
    the chosen treatment must still come from the (narrowed) allowed set."""
    bundle = client.app.state.models.bundle  # type: ignore[attr-defined]
    records = [
        r | {"symptoms": r.get("symptoms", [])}
        for r in cohort_payloads(trained_store.data_path, 200, seed=11)
    ]
    from app.schemas.patient import PatientRecord

    canonical = [PatientRecord.model_validate(r).to_record() for r in records]  # type: ignore[attr-defined]
    baseline = Predictor(bundle).predict_many(canonical)
    favourite: dict[str, str] = {}
    for p in baseline:
        if p.diagnosis is not None and p.treatment is not None:
            favourite.setdefault(p.diagnosis.code, p.treatment.code)
    narrowed = {
        d: [t for t in ts if t != favourite.get(d)] or ts
        for d, ts in bundle.meta.allowed_pairs.items()
    }
    meta = dataclasses.replace(bundle.meta, allowed_pairs=narrowed)
    strict = Predictor(dataclasses.replace(bundle, meta=meta)).predict_many(canonical)
    changed = 0
    for before, after in zip(baseline, strict, strict=True):
        if after.diagnosis is None or after.treatment is None:
            continue
        assert after.treatment.code in narrowed[after.diagnosis.code]
        changed += before.treatment is not None and before.treatment.code != after.treatment.code
    assert changed > 0, "the narrowed table must have overridden some raw favourites"


def test_http_stages_are_timed(client: TestClient) -> None:
    predict(client, make_patient())
    text = client.get("/metrics").text
    for stage in ("parse_validate", "audit_enqueue"):
        assert f'healthpredict_stage_duration_seconds_count{{stage="{stage}"}}' in text


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_integers_beyond_64_bits_are_a_422_naming_the_field(client: TestClient, path: str) -> None:
    """An integer past 64 bits reads as the nearest float (`app.api.json_route`): the 422 names
    the field with that value, never a 500."""
    huge = 10**30
    patient = {**make_patient(), "age": huge, "symptoms": ["fever", huge]}
    body = {"records": [patient]} if path.endswith("batch") else patient
    response = client.post(path, json=body, headers=CLINICIAN)
    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert any(d["field"].endswith("age") and d["value"] == float(huge) for d in details), details
