"""`python -m tests.integration._raising_app`: `python -m app`'s own entry point (its logging,
its uvicorn options) serving the real app plus one route whose exception carries patient values.

The real app has no route that raises an arbitrary exception on purpose; this one stands in for
any bug whose error message quotes the record it choked on.
"""

from __future__ import annotations

from typing import Any

import app.main
from app import __main__ as entry

RAISING_ROUTE = "/test-only/raise-patient-value"
HEART_RATE = 131.5
CLINICIAN_ID = "clin-raising-4711"

_create_app = app.main.create_app


def create_app_with_raising_route() -> Any:
    application = _create_app()

    @application.get(RAISING_ROUTE)
    def raise_patient_value() -> None:
        record = {"heart_rate": HEART_RATE, "clinician_id": CLINICIAN_ID}
        raise ValueError(record)

    return application


if __name__ == "__main__":
    app.main.create_app = create_app_with_raising_route  # what uvicorn's factory string names
    entry.main()
