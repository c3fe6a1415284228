"""The AWS error a KMS request answers for an exception that is not already one.

Shared by the wire (:mod:`kms_service.wire.blueprint`) and the web console's actions, so a
database fault or an unexpected error reads the same whichever way the request came.
"""

from __future__ import annotations

import logging

from database import DatabaseUnavailableError, DatabaseValueError
from kms_service.domain.errors import (
    DATABASE_UNAVAILABLE_MESSAGE,
    NUL_REFUSED_MESSAGE,
    DependencyTimeoutException,
    KmsError,
    KMSInternalException,
    ValidationException,
)


def error_for_failure(
    failure: Exception, request_id: str, log: logging.Logger, source: str = "request"
) -> KmsError:
    """The error to answer for ``failure`` (not a :class:`KmsError`), logged on ``log`` as
    ``"<source> <request id>: ..."``. Never raises; names no internals to the caller."""
    if isinstance(failure, DatabaseValueError):
        # PostgreSQL's TEXT cannot hold NUL (SQLite can): refused, naming no internals.
        return ValidationException(NUL_REFUSED_MESSAGE)
    if isinstance(failure, DatabaseUnavailableError):
        # The database is unreachable (PostgreSQL restarting, a lost connection) or its lock
        # timed out: a retryable server-side fault, which AWS SDKs retry. Nothing of the
        # request was committed.
        log.warning("%s %s: database unavailable: %s", source, request_id, failure)
        return DependencyTimeoutException(DATABASE_UNAVAILABLE_MESSAGE)
    # Internals stay in the log, under the id the client sees.
    log.error("%s %s: unexpected error", source, request_id, exc_info=failure)
    return KMSInternalException(f"An internal error occurred (request id {request_id}).")
