"""Minimal BentoML 1.4 service of our diagnosis model, loaded from our BentoML store (target c).

What a team would write with BentoML's docs: a service class, the model from the store, a
DataFrame built from the JSON records, `predict_proba`. Served by `bench/run.py` with
``bentoml serve bench.bento_service:Diagnosis`` (``BENTOML_HOME`` = our store).
"""

from __future__ import annotations

from typing import Any

import bentoml
import numpy as np
import pandas as pd


@bentoml.service(workers=1, traffic={"timeout": 30})
class Diagnosis:
    """One diagnosis per record: the most probable class and its probability."""

    model_ref = bentoml.models.BentoModel("healthpredict-diagnosis:latest")

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.model_ref)
        meta = self.model_ref.custom_objects["bundle_meta"]
        self.codes = list(meta["diagnosis_classes"])

    @bentoml.api
    def predict(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        proba = self.model.predict_proba(pd.DataFrame(records))
        best = np.argmax(proba, axis=1)
        return [
            {"diagnosis": self.codes[int(self.model.classes_[j])], "probability": float(p[j])}
            for j, p in zip(best, proba, strict=True)
        ]
