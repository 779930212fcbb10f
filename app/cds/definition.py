"""What the service is: its id, hook, and the FHIR data it asks the EHR to prefetch."""

from __future__ import annotations

from typing import Any

from train_pipeline.fhir_codes import LOINC_SYSTEM, observation_codes

SERVICE_ID = "healthpredict-ed-triage"
HOOK = "patient-view"
PATIENT_TOKEN = "{{context.patientId}}"
OBSERVATION_COUNT = 200
# Prefetch key -> FHIR query; `patient` and `observations` are needed (412 when they cannot be
# had), `conditions` (symptoms, history) is used when given.
PREFETCH: dict[str, str] = {
    "patient": f"Patient/{PATIENT_TOKEN}",
    "observations": (
        f"Observation?patient={PATIENT_TOKEN}&code="
        + ",".join(f"{LOINC_SYSTEM}|{code}" for code in observation_codes())
        + f"&_sort=-date&_count={OBSERVATION_COUNT}"
    ),
    "conditions": f"Condition?patient={PATIENT_TOKEN}&clinical-status=active",
}
REQUIRED_PREFETCH = ("patient", "observations")


def discovery() -> dict[str, Any]:
    """The body of `GET /cds-services`."""
    return {
        "services": [
            {
                "hook": HOOK,
                "title": "HealthPredict emergency-department triage",
                "description": (
                    "Predicts the most likely diagnosis among common adult emergency "
                    "presentations and a treatment coherent with it, from vital signs, "
                    "laboratory results and active conditions, with NEWS2 and warnings."
                ),
                "id": SERVICE_ID,
                "prefetch": dict(PREFETCH),
            }
        ]
    }
