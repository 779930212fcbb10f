"""Bare FastAPI endpoint: the diagnosis model on a NumPy row, orjson in and out, nothing else.

The practical limit of a Python server for this model (bench target d): no validation, no
treatment model, no rules, no audit. Loads the champion diagnosis pipeline from the MLflow
registry (``MLFLOW_TRACKING_URI``). Run: ``python bench/bare_server.py --port 8003``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from app.serving.bundle import class_codes
from app.serving.predictor import build_columns
from app.serving.sources import load_mlflow
from train_pipeline.fast_path.pipeline import FastPipeline

app = FastAPI()
STATE: dict[str, Any] = {}


def load(tracking_uri: str, forest: bool = False) -> None:
    pair = load_mlflow(
        tracking_uri, "healthpredict-diagnosis", "healthpredict-treatment", "champion"
    )
    # (d) CatBoost's own predict_proba, the model as any server calls it; (f) --forest: our
    # NumPy evaluation of the same trees (train_pipeline/fast_path/forest.py)
    fast = FastPipeline.from_pipeline(pair.diagnosis_pipeline, forest=forest)
    STATE["model"] = fast
    STATE["features"] = tuple(fast.features.features)
    STATE["codes"] = class_codes(fast.classes, pair.meta.diagnosis_classes)


@app.get("/ready")
async def ready() -> Response:
    return Response(b'{"ready":true}', media_type="application/json")


@app.post("/predict")
async def predict(request: Request) -> Response:
    record = orjson.loads(await request.body())
    proba = STATE["model"].predict_proba(build_columns([record], STATE["features"]))[0]
    j = int(np.argmax(proba))
    body = {"diagnosis": STATE["codes"][j], "probability": float(proba[j])}
    return Response(orjson.dumps(body), media_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8003)
    parser.add_argument("--forest", action="store_true", help="NumPy forest instead of CatBoost")
    args = parser.parse_args()
    load(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"), forest=args.forest)
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
