"""Errors of the CDS Hooks door, rendered in the service's one error shape."""

from __future__ import annotations

from app.errors import AppError


class CdsAuthError(AppError):
    """Any failed CDS token check: one message whatever failed (no help for an attacker)."""

    status_code = 401
    code = "unauthorized"
    message = "A valid signed JWT is required (Authorization: Bearer)"


class PrefetchUnavailableError(AppError):
    """CDS Hooks §HTTP Status Codes: the FHIR data could be had neither from prefetch nor from
    the FHIR server."""

    status_code = 412
    code = "precondition_failed"
    message = "The FHIR data this service needs could not be obtained"


class UnknownCardError(AppError):
    status_code = 404
    code = "card_not_found"
    message = "No card of this service with this uuid"


class UnknownServiceError(AppError):
    status_code = 404
    code = "not_found"
    message = "No CDS service with this id"
