"""The shadow challenger end to end: real MLflow (SQLite store), real tiny trained pairs.

The champion learned pneumonia; the challenger was trained on the same patients with every
pneumonia labelled viral URI, so it can never answer pneumonia: on the predictions the champion
called pneumonia, agreement is exactly 0, and where clinicians confirmed pneumonia the champion
is right and the challenger wrong. With the champion's own versions as challenger, agreement is
exactly 1 on every class.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from app.main import create_app
from app.monitoring import metrics
from app.settings import Settings
from app.store import db, repository
from tests.api.conftest import ADMIN, CLINICIAN, make_settings
from tests.factories import _payload
from tests.integration._promotion import NAMES, aliased, register_champion
from tests.integration.test_gunicorn_workers import child_pids
from train_pipeline.data.generate import generate_cohort

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass(frozen=True)
class ShadowStore:
    uri: str
    home: Path
    champion: tuple[str, str]  # (version, run id)
    challenger: tuple[str, str]
    pneumonias: list[dict[str, Any]]
    others: list[dict[str, Any]]


@pytest.fixture(scope="module")
def shadow_store(tmp_path_factory: pytest.TempPathFactory) -> ShadowStore:
    """Registry: v1 = the biased pair (alias `challenger`), v2 = the right one (`champion`)."""
    root = tmp_path_factory.mktemp("shadow")
    uri, home = f"sqlite:///{root / 'mlflow.db'}", root / "bentoml"
    cohort = generate_cohort(700, 11)
    biased = cohort.copy()
    biased.loc[biased["diagnosis"] == "pneumonia", "diagnosis"] = "viral_uri"
    biased.to_csv(root / "biased.csv", index=False)
    cohort.to_csv(root / "right.csv", index=False)
    register_champion(uri, home, root / "biased.csv")
    challenger = aliased(uri)
    register_champion(uri, home, root / "right.csv")
    champion = aliased(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for name in NAMES.values():
        client.set_registered_model_alias(name, "challenger", challenger[0])
    live = generate_cohort(1500, 12)
    rows = [(r["diagnosis"], _payload(r)) for r in live.to_dict(orient="records")]
    pneumonias = [p for d, p in rows if p and d == "pneumonia"][:25]
    others = [p for d, p in rows if p and d not in ("pneumonia", "viral_uri")][:40]
    return ShadowStore(uri, home, champion, challenger, pneumonias, others)


def shadow_settings(root: Path, store: ShadowStore, **overrides: Any) -> Settings:
    return make_settings(
        root,
        mlflow_tracking_uri=store.uri,
        bentoml_home=store.home,
        mlflow_timeout_s=60.0,
        audit_process=False,
        **overrides,
    )


@pytest.fixture
def app_client(tmp_path: Path, shadow_store: ShadowStore) -> Iterator[TestClient]:
    with TestClient(create_app(shadow_settings(tmp_path, shadow_store))) as client:
        wait_until(lambda: client.get("/health").json()["shadow"]["loaded"], "challenger loaded")
        yield client


def wait_until(check: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not {what} within {timeout_s} s")


def shadow_children() -> list[str]:
    """Pids of this process's shadow challenger children."""
    return child_pids(os.getpid(), "app.serving.shadow_process")


def predict_all(client: TestClient, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    bodies = []
    for payload in payloads:
        response = client.post("/predict", json=payload, headers=CLINICIAN)
        assert response.status_code == 200, response.text
        bodies.append(response.json())
    return bodies


def shadow_report(client: TestClient, n: int) -> dict[str, Any]:
    """`GET /models/shadow` once the challenger has scored ``n`` predictions."""
    wait_until(
        lambda: client.get("/models/shadow", headers=CLINICIAN).json()["overall"]["n"] >= n,
        f"{n} shadow predictions stored",
    )
    response = client.get("/models/shadow", headers=CLINICIAN)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def confirm(client: TestClient, url: str, bodies: list[dict[str, Any]]) -> None:
    """Clinicians confirm each diagnosis (verdict ``correct``) once its audit row is stored."""
    engine = db.make_engine(url)
    sessions = db.make_sessionmaker(engine)
    ids = [b["prediction_id"] for b in bodies]

    def audited() -> bool:
        # A session per look: on SQLite every transaction begins IMMEDIATE (the write lock), so
        # one session held across the polling would keep the audit writer out.
        with sessions() as session:
            return all(repository.get_prediction(session, i) for i in ids)

    try:
        wait_until(audited, "audited")
    finally:
        engine.dispose()
    for body in bodies:
        response = client.post(
            "/feedback",
            json={
                "prediction_id": body["prediction_id"],
                "verdict": "correct",
                "clinician_id": "c1",
            },
            headers=CLINICIAN,
        )
        assert response.status_code == 201, response.text


def test_known_disagreement_shows_per_class(
    app_client: TestClient, shadow_store: ShadowStore
) -> None:
    health = app_client.get("/health").json()["shadow"]
    assert len(shadow_children()) == 1  # the challenger is scored in its child process
    assert health["challenger"]["run_id"] == shadow_store.challenger[1]
    bodies = predict_all(app_client, shadow_store.pneumonias + shadow_store.others)
    pneumonia = [b for b in bodies if b["diagnosis"] and b["diagnosis"]["code"] == "pneumonia"]
    assert len(pneumonia) >= 10, "the champion should recognise most pneumonias"
    answered = [b for b in bodies if b["diagnosis"]]
    confirm(app_client, str(app_client.app.state.settings.database_url), pneumonia)  # type: ignore[attr-defined]
    report = shadow_report(app_client, len(answered))
    assert report["champion"]["run_id"] == shadow_store.champion[1]
    assert report["challenger"]["run_id"] == shadow_store.challenger[1]
    by_code = {c["code"]: c for c in report["classes"]}
    assert by_code["pneumonia"]["n"] == len(pneumonia)
    assert by_code["pneumonia"]["agree"] == 0 and by_code["pneumonia"]["agreement"] == 0.0
    assert by_code["pneumonia"]["feedback"] == {
        "n": len(pneumonia),
        "champion_accuracy": 1.0,
        "challenger_accuracy": 0.0,
    }
    others = [c for code, c in by_code.items() if code != "pneumonia"]
    agree, n = sum(c["agree"] for c in others), sum(c["n"] for c in others)
    assert n and agree / n >= 0.7, f"the other classes were learnt alike: {agree}/{n}"
    assert report["overall"]["n"] == len(answered)
    assert report["overall"]["agree"] == agree
    values = metrics.current().registry.get_sample_value
    assert values("healthpredict_shadow_predictions_total", {"outcome": "disagree"}) >= len(
        pneumonia
    )


def test_same_pair_as_challenger_agrees_everywhere(
    app_client: TestClient, shadow_store: ShadowStore
) -> None:
    client = MlflowClient(tracking_uri=shadow_store.uri, registry_uri=shadow_store.uri)
    for name in NAMES.values():
        client.set_registered_model_alias(name, "challenger", shadow_store.champion[0])
    try:
        assert app_client.post("/models/reload", headers=ADMIN).status_code == 200
        bodies = predict_all(app_client, shadow_store.others[:20])
        report = shadow_report(app_client, sum(1 for b in bodies if b["diagnosis"]))
    finally:
        for name in NAMES.values():
            client.set_registered_model_alias(name, "challenger", shadow_store.challenger[0])
    assert report["challenger"]["run_id"] == shadow_store.champion[1]
    assert report["classes"] and all(c["agreement"] == 1.0 for c in report["classes"])


def test_shadow_never_changes_a_response(
    tmp_path: Path, app_client: TestClient, shadow_store: ShadowStore
) -> None:
    settings = shadow_settings(tmp_path / "plain", shadow_store, shadow_enabled=False)
    (tmp_path / "plain").mkdir()
    with TestClient(create_app(settings)) as plain:
        assert plain.get("/health").json()["shadow"]["loaded"] is False
        for payload in shadow_store.pneumonias[:5] + shadow_store.others[:5]:
            with_shadow = app_client.post("/predict", json=payload, headers=CLINICIAN).content
            without = plain.post("/predict", json=payload, headers=CLINICIAN).content
            ids = [r["prediction_id"].encode() for r in map(orjson_loads, (with_shadow, without))]
            assert with_shadow.replace(ids[0], b"") == without.replace(ids[1], b"")
        missing = plain.get("/models/shadow", headers=CLINICIAN)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "challenger_not_loaded"


def orjson_loads(content: bytes) -> dict[str, Any]:
    import orjson

    return orjson.loads(content)  # type: ignore[no-any-return]


class _Broken:
    """A challenger whose every call fails (stands in for a model that breaks at predict)."""

    def __init__(self, real: Any) -> None:
        self.bundle = real.bundle

    def predict_many(self, records: Any) -> Any:
        raise RuntimeError("challenger exploded")


def test_failing_challenger_never_fails_a_request(
    tmp_path: Path, shadow_store: ShadowStore
) -> None:
    """In the thread backend (the child runs the same `score_and_store`), a challenger that
    raises on every call: every request answered, every lost answer counted."""
    settings = shadow_settings(tmp_path, shadow_store, shadow_process=False)
    with TestClient(create_app(settings)) as client:
        wait_until(lambda: client.get("/health").json()["shadow"]["loaded"], "challenger loaded")
        backend = client.app.state.shadow.backend  # type: ignore[attr-defined]
        values = metrics.current().registry.get_sample_value
        before = values("healthpredict_shadow_errors_total", {"reason": "score"}) or 0.0
        backend.challenger = _Broken(backend.challenger)
        bodies = predict_all(client, shadow_store.others[:10])
        answered = sum(1 for b in bodies if b["diagnosis"])
        wait_until(
            lambda: (
                (values("healthpredict_shadow_errors_total", {"reason": "score"}) or 0) - before
                >= answered
            ),
            "shadow errors counted",
        )


def test_pair_not_promoted_becomes_the_challenger(shadow_store: ShadowStore) -> None:
    """What retraining does with a pair it keeps (`retrain.job.run_retrain`, decision kept)."""
    from retrain.config import RetrainConfig
    from retrain.promote import mark_challenger
    from train_pipeline.register import RegisteredBundle

    version, run_id = shadow_store.champion
    config = RetrainConfig(Path("unused.csv"), shadow_store.uri, shadow_store.home)
    client = MlflowClient(tracking_uri=shadow_store.uri, registry_uri=shadow_store.uri)
    try:
        mark_challenger(config, RegisteredBundle(run_id, "0", version, version))
        for name in NAMES.values():
            aliased_version = client.get_model_version_by_alias(name, "challenger")
            assert (str(aliased_version.version), aliased_version.run_id) == (version, run_id)
        assert aliased(shadow_store.uri) == shadow_store.champion  # champion untouched
    finally:
        for name in NAMES.values():
            client.set_registered_model_alias(name, "challenger", shadow_store.challenger[0])


def test_absent_challenger_loads_nothing(tmp_path: Path, shadow_store: ShadowStore) -> None:
    settings = shadow_settings(tmp_path, shadow_store, shadow_alias="nobody-has-this")
    with TestClient(create_app(settings)) as client:
        wait_until(
            lambda: client.get("/health").json()["shadow"]["reason"] != "not loaded yet",
            "challenger lookup done",
        )
        shadow = client.get("/health").json()["shadow"]
        assert shadow["loaded"] is False and shadow["challenger"] is None
        assert shadow["reason"] == "no version carries the challenger alias"
        assert shadow_children() == []  # stopped once it found none (~350 MiB given back)
        assert (
            client.post("/predict", json=shadow_store.others[0], headers=CLINICIAN).status_code
            == 200
        )
        missing = client.get("/models/shadow", headers=CLINICIAN)
        assert missing.status_code == 404, missing.text
        assert "no version carries" in missing.json()["error"]["message"]
