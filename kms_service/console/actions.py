"""Performing a KMS operation from the console: the same validation, the same operation
function and the same recording as a request on the wire, so the audit log and the live
requests table show what the console did, under the signed-in principal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from flask import current_app, request

from kms_service.domain.errors import (
    KmsError,
)
from kms_service.observability.recording import RECORD_EXTENSION, RequestRecorder
from kms_service.operations import OPERATIONS, RequestScope, Services
from kms_service.wire.failures import error_for_failure
from kms_service.wire.protocol import new_request_id
from kms_service.wire.schemas import SCHEMAS
from kms_service.wire.validation import load_request

log = logging.getLogger("mock_kms.console")
_SCHEMA_INSTANCES = {name: schema() for name, schema in SCHEMAS.items()}


@dataclass(frozen=True)
class Outcome:
    """What an operation answered: its result, or the AWS error it raised."""

    operation: str
    request_id: str
    result: dict[str, Any] | None
    error: KmsError | None

    @property
    def ok(self) -> bool:
        return self.error is None

    def summary(self) -> str:
        """One line for the page: never a secret (operations the console calls return none)."""
        if self.error is not None:
            message = self.error.message or ""
            return f"{self.operation} failed: {self.error.code}{': ' if message else ''}{message}"
        return f"{self.operation} succeeded (request {self.request_id})"


def services() -> Services:
    found: Services = current_app.extensions["mock_kms.services"]
    return found


def perform(operation: str, params: dict[str, Any], scope: RequestScope) -> Outcome:
    """Run ``operation`` with ``params`` (AWS member names, as on the wire) for ``scope``.

    Never raises for an AWS error: it is returned in the :class:`Outcome`, as a client would
    receive it. Raises ``KeyError`` for an operation the service does not implement.
    """
    function = OPERATIONS[operation]
    started = perf_counter()
    request_id = new_request_id()
    loaded: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: KmsError | None = None
    try:
        loaded = load_request(_SCHEMA_INSTANCES[operation], params)
        result = function(services(), scope, loaded)
    except KmsError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - logged and answered by error_for_failure
        error = error_for_failure(exc, request_id, log, "console request")
    record: RequestRecorder | None = current_app.extensions.get(RECORD_EXTENSION)
    if record is not None:
        record(
            request._get_current_object(),  # type: ignore[attr-defined]
            operation,
            None if error is None else error.code,
            perf_counter() - started,
            request_id,
            scope,
            loaded,
            result,
        )
    return Outcome(operation, request_id, result, error)
