"""One `patient-view` call answered: FHIR data gathered, mapped, predicted, shown as a card.

The prediction goes through the same `PredictionService` as `POST /predict`: same validation
(`PatientRecord`), same audit row (with the calling user kept beside the body), so the card's
``uuid`` is a prediction id `/feedback` and the audit trail know.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from app.cds import cards, fetch, fhir
from app.cds.schemas import HookRequest
from app.schemas.errors import validation_details
from app.schemas.patient import PatientRecord, PatientRecordBase
from app.serving.service import PredictionService
from train_pipeline.contract import ED_COHORT

CDS_KEY = "cds"  # the body key the audit row keeps the hook's user and instance under
REQUIRED = frozenset(ED_COHORT.names_in_tier("required"))
_SOURCE_OF = {"age": "Patient.birthDate", "sex": "Patient.gender (male or female)"}


def validated(
    record: dict[str, Any],
) -> tuple[PatientRecordBase | None, list[fhir.Unusable], list[str]]:
    """(record, values dropped, problems): a value out of the contract's range is dropped and
    reported; a required field missing or invalid leaves no record, only the problems."""
    dropped: list[fhir.Unusable] = []
    while True:  # each pass drops at least one value, or ends
        try:
            return PatientRecord.model_validate(record), dropped, []
        except ValidationError as exc:
            details = validation_details(exc.errors())
        fields = {str(d["field"]) for d in details}
        problems = [f"{_SOURCE_OF.get(f, f)}: missing or not valid" for f in fields & REQUIRED]
        if problems or not fields.issubset(record):
            return None, dropped, problems or ["the record could not be built"]
        for detail in details:
            if record.pop(str(detail["field"]), None) is not None:
                label = ED_COHORT.feature(str(detail["field"])).description
                dropped.append(fhir.Unusable(label, f"{detail['value']} {detail['reason']}"))


async def answer(
    request: HookRequest, service: PredictionService, fhir_timeout_s: float
) -> dict[str, Any]:
    """The CDS response (``{"cards": [...]}``) of one hook call; 412 when data cannot be had."""
    server = None
    if request.fhirServer:
        token = request.fhirAuthorization.access_token if request.fhirAuthorization else None
        server = fetch.FhirServer(request.fhirServer, token, fhir_timeout_s)
    data = await fetch.gather(request.prefetch, request.context.patientId, server)
    mapped = fhir.to_record(data["patient"], data["observations"], data["conditions"])
    record, dropped, problems = validated(mapped.record)
    if record is None:
        return {"cards": [cards.not_assessable_card(problems)]}
    annotations = {
        CDS_KEY: {"user_id": request.context.userId, "hook_instance": request.hookInstance}
    }
    result = await service.predict(record.to_record(), explain=True, annotations=annotations)
    body = orjson.loads(result.content)
    return {"cards": [cards.prediction_card(body, [*mapped.unusable, *dropped])]}
