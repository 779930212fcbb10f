"""Many concurrent `POST /feedback` through the ASGI app (lifespan running), then a restart."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from app.main import create_app
from app.settings import Settings
from app.store import repository
from app.store.tables import FeedbackRow
from tests.api.conftest import CLINICIAN, make_settings
from tests.api.test_feedback import audit_row

N_PREDICTIONS = 100
CLINICIANS = ("clin-a", "clin-b")  # 100 predictions x 2 clinicians = 200 distinct feedbacks


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The app with its lifespan (store, audit writer, models) and an in-process client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hp") as client:
            yield app, client


def rows_in_store(app: FastAPI) -> list[tuple[str, str, str]]:
    with app.state.sessionmaker() as session:
        stmt = select(FeedbackRow.id, FeedbackRow.prediction_id, FeedbackRow.clinician_id)
        return [tuple(r) for r in session.execute(stmt)]  # type: ignore[misc]


async def test_concurrent_feedback_none_lost_none_doubled_and_survives_restart(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    pids = [audit_row()["id"] for _ in range(N_PREDICTIONS)]
    bodies = [
        {
            "prediction_id": pid,
            "verdict": "wrong_diagnosis",
            "corrected_diagnosis": "sepsis",
            "clinician_id": clinician,
            "reason": f"note {i}",
        }
        for i, (pid, clinician) in enumerate((p, c) for p in pids for c in CLINICIANS)
    ]
    sent = bodies + bodies  # every feedback twice: the repeat must not add a row
    random.Random(7).shuffle(sent)

    async with running(settings) as (app, client):
        with app.state.sessionmaker() as session:
            repository.save_predictions(session, [audit_row(id=pid) for pid in pids])

        async def post(payload: dict[str, Any]) -> httpx.Response:
            return await client.post("/feedback", json=payload, headers=CLINICIAN)

        responses = await asyncio.gather(*(post(b) for b in sent))
        by_pair: dict[tuple[str, str], list[httpx.Response]] = defaultdict(list)
        for payload, response in zip(sent, responses, strict=True):
            by_pair[(payload["prediction_id"], payload["clinician_id"])].append(response)
        assert len(by_pair) == 200
        for pair, answers in by_pair.items():
            statuses = sorted(r.status_code for r in answers)
            assert statuses == [200, 201], (pair, [r.text for r in answers])
            assert len({r.json()["id"] for r in answers}) == 1, pair
        stored = rows_in_store(app)
        assert len(stored) == 200
        assert {(p, c) for _, p, c in stored} == set(by_pair)
        ids_before = {(p, c): i for i, p, c in stored}

    # A new app on the same SQLite file: nothing lost, repeats still idempotent.
    async with running(settings) as (app, client):
        stats = (await client.get("/feedback/stats", headers=CLINICIAN)).json()
        assert stats["total"] == 200
        assert stats["by_verdict"]["wrong_diagnosis"] == 200
        again = await client.post("/feedback", json=bodies[0], headers=CLINICIAN)
        assert again.status_code == 200
        key = (bodies[0]["prediction_id"], bodies[0]["clinician_id"])
        assert again.json()["id"] == ids_before[key]
        with app.state.sessionmaker() as session:
            assert session.scalar(select(func.count()).select_from(FeedbackRow)) == 200
