"""Exceptions the KMS client raises.

Two families, as in botocore:

* :class:`KmsClientError`: the service answered with an AWS error. There is one subclass per
  AWS error name (the wire ``__type``), so callers can ``except NotFoundException``. Every
  modeled KMS error and the front-end/auth errors are defined below; a name the service sends
  that is not defined here gets a class created on first sight (:func:`error_class`), cached,
  so the same name always maps to the same class.
* :class:`KmsLocalError`: nothing usable came back, or the client could not even start a
  request (configuration, credentials, transport). These are never AWS error names.
"""

from __future__ import annotations

import re
import threading
from typing import Any


class KmsClientError(Exception):
    """The service answered with an error; the boto3 ``ClientError`` counterpart.

    ``code`` is the AWS error name (``"NotFoundException"``, or the HTTP status as a string
    when the body carried no name), ``message`` is the service's message (``""`` when it sent
    none, as for ``InvalidCiphertextException``), ``request_id`` is ``x-amzn-RequestId`` (or
    ``None``), ``status`` the HTTP status. ``response`` is the boto3-shaped error dictionary
    (``{"Error": {"Code", "Message"}, "ResponseMetadata": {...}}``) so code written against
    ``ClientError.response`` keeps working.
    """

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        request_id: str | None = None,
        status: int = 400,
        operation_name: str = "",
        retry_attempts: int = 0,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.request_id = request_id
        self.status = status
        self.operation_name = operation_name
        self.retry_attempts = retry_attempts
        metadata: dict[str, Any] = {
            "RequestId": request_id or "",
            "HTTPStatusCode": status,
            "HTTPHeaders": dict(headers or {}),
            "RetryAttempts": retry_attempts,
        }
        self.response: dict[str, Any] = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": metadata,
        }
        if message:
            # botocore merges a modeled error's members into the response; ``message`` is the
            # only member every KMS error shape has.
            self.response["message"] = message
        self.max_attempts_reached = False
        super().__init__(code, message)

    def mark_max_attempts_reached(self) -> None:
        """Record that this error was retryable but the attempts ran out (as botocore does)."""
        self.max_attempts_reached = True
        self.response["ResponseMetadata"]["MaxAttemptsReached"] = True

    def __str__(self) -> str:
        retries = (
            f" (reached max retries: {self.retry_attempts})" if self.max_attempts_reached else ""
        )
        operation = self.operation_name or "unknown"
        return (
            f"An error occurred ({self.code}) when calling the {operation} operation{retries}: "
            f"{self.message}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructor arguments would otherwise be lost when pickling.
        return (
            _rebuild_error,
            (
                type(self).__name__,
                self.code,
                self.message,
                self.request_id,
                self.status,
                self.operation_name,
                self.retry_attempts,
                self.max_attempts_reached,
            ),
        )


def _rebuild_error(
    class_name: str,
    code: str,
    message: str,
    request_id: str | None,
    status: int,
    operation_name: str,
    retry_attempts: int,
    max_attempts_reached: bool,
) -> KmsClientError:
    cls = error_class(class_name) if class_name != "KmsClientError" else KmsClientError
    error = cls(
        code,
        message,
        request_id=request_id,
        status=status,
        operation_name=operation_name,
        retry_attempts=retry_attempts,
    )
    if max_attempts_reached:
        error.mark_max_attempts_reached()
    return error


# --- Front-end errors shared by every Coral JSON service (not in the KMS model) ---------------
class ValidationException(KmsClientError): ...


class AccessDeniedException(KmsClientError): ...


class NotAuthorizedException(KmsClientError): ...


class ThrottlingException(KmsClientError): ...


class Throttling(KmsClientError): ...


class ThrottledException(KmsClientError): ...


class RequestThrottledException(KmsClientError): ...


class RequestLimitExceeded(KmsClientError): ...


class TooManyRequestsException(KmsClientError): ...


class SerializationException(KmsClientError): ...


class UnknownOperationException(KmsClientError): ...


class RequestEntityTooLargeException(KmsClientError): ...


class InternalFailure(KmsClientError): ...


class ServiceUnavailable(KmsClientError): ...


# --- Authentication errors (SigV4 front end) ---------------------------------------------------
class MissingAuthenticationTokenException(KmsClientError): ...


class IncompleteSignatureException(KmsClientError): ...


class InvalidSignatureException(KmsClientError): ...


class UnrecognizedClientException(KmsClientError): ...


class ExpiredTokenException(KmsClientError): ...


class InvalidClientTokenId(KmsClientError): ...


class SignatureDoesNotMatch(KmsClientError): ...


class RequestExpired(KmsClientError): ...


# --- Modeled KMS errors (every error shape in the 2014-11-01 service model) -------------------
class AlreadyExistsException(KmsClientError): ...


class CloudHsmClusterInUseException(KmsClientError): ...


class CloudHsmClusterInvalidConfigurationException(KmsClientError): ...


class CloudHsmClusterNotActiveException(KmsClientError): ...


class CloudHsmClusterNotFoundException(KmsClientError): ...


class CloudHsmClusterNotRelatedException(KmsClientError): ...


class ConflictException(KmsClientError): ...


class CustomKeyStoreHasCMKsException(KmsClientError): ...


class CustomKeyStoreInvalidStateException(KmsClientError): ...


class CustomKeyStoreNameInUseException(KmsClientError): ...


class CustomKeyStoreNotFoundException(KmsClientError): ...


class DependencyTimeoutException(KmsClientError): ...


class DisabledException(KmsClientError): ...


class DryRunOperationException(KmsClientError): ...


class ExpiredImportTokenException(KmsClientError): ...


class IncorrectKeyException(KmsClientError): ...


class IncorrectKeyMaterialException(KmsClientError): ...


class IncorrectTrustAnchorException(KmsClientError): ...


class InvalidAliasNameException(KmsClientError): ...


class InvalidArnException(KmsClientError): ...


class InvalidCiphertextException(KmsClientError): ...


class InvalidGrantIdException(KmsClientError): ...


class InvalidGrantTokenException(KmsClientError): ...


class InvalidImportTokenException(KmsClientError): ...


class InvalidKeyUsageException(KmsClientError): ...


class InvalidMarkerException(KmsClientError): ...


class KMSInternalException(KmsClientError): ...


class KMSInvalidMacException(KmsClientError): ...


class KMSInvalidSignatureException(KmsClientError): ...


class KMSInvalidStateException(KmsClientError): ...


class KeyUnavailableException(KmsClientError): ...


class LimitExceededException(KmsClientError): ...


class MalformedPolicyDocumentException(KmsClientError): ...


class NotFoundException(KmsClientError): ...


class TagException(KmsClientError): ...


class UnsupportedOperationException(KmsClientError): ...


class XksKeyAlreadyInUseException(KmsClientError): ...


class XksKeyInvalidConfigurationException(KmsClientError): ...


class XksKeyNotFoundException(KmsClientError): ...


class XksProxyIncorrectAuthenticationCredentialException(KmsClientError): ...


class XksProxyInvalidConfigurationException(KmsClientError): ...


class XksProxyInvalidResponseException(KmsClientError): ...


class XksProxyUriEndpointInUseException(KmsClientError): ...


class XksProxyUriInUseException(KmsClientError): ...


class XksProxyUriUnreachableException(KmsClientError): ...


class XksProxyVpcEndpointServiceInUseException(KmsClientError): ...


class XksProxyVpcEndpointServiceInvalidConfigurationException(KmsClientError): ...


class XksProxyVpcEndpointServiceNotFoundException(KmsClientError): ...


# --- Errors raised without an AWS answer -------------------------------------------------------
class KmsLocalError(Exception):
    """The client failed before or without getting an AWS error answer."""


class ConfigurationError(KmsLocalError, ValueError):
    """Endpoint, region or credential settings are missing or unusable."""


class NoRegionError(ConfigurationError):
    """No region was given and none is configured (``AWS_REGION`` / ``AWS_DEFAULT_REGION``)."""


class NoCredentialsError(ConfigurationError):
    """A signed request was needed but no credentials were found anywhere."""


class ParamSerializationError(KmsLocalError, TypeError):
    """A request parameter cannot be put on the wire (e.g. an object JSON cannot encode)."""


class TransportError(KmsLocalError, ConnectionError):
    """No complete HTTP response arrived. ``endpoint_url`` says where we tried."""

    def __init__(self, message: str, *, endpoint_url: str = "") -> None:
        super().__init__(message)
        self.endpoint_url = endpoint_url


class EndpointConnectionError(TransportError):
    """The TCP (or TLS) connection to the endpoint could not be made."""


class ConnectTimeoutError(EndpointConnectionError):
    """Connecting took longer than the connect timeout."""


class ReadTimeoutError(TransportError):
    """The server accepted the request but did not answer within the read timeout."""


class ConnectionClosedError(TransportError):
    """The server closed the connection before a complete response arrived."""


class ResponseParseError(KmsLocalError, ValueError):
    """A 2xx response whose body is not the JSON object the protocol promises."""


class PaginationError(KmsLocalError, RuntimeError):
    """A paginated listing repeated a marker, which would loop forever."""


# Names AWS really sends -> class. Filled from the classes above; dynamic ones join it later.
_ERROR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_lock = threading.Lock()
_classes: dict[str, type[KmsClientError]] = {
    cls.__name__: cls
    for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, KmsClientError) and cls is not KmsClientError
}

#: The error names defined in this module, before any dynamic ones were added.
PREDEFINED_ERROR_NAMES: frozenset[str] = frozenset(_classes)


def error_class(code: str) -> type[KmsClientError]:
    """The exception class for the AWS error name ``code``.

    Predefined names return their class; any other name that is a valid Python identifier gets
    a new :class:`KmsClientError` subclass, created once and cached, so ``except`` clauses and
    ``client.exceptions.<code>`` see the same class every time. Codes that cannot be class names
    (an HTTP status such as ``"502"``) map to :class:`KmsClientError` itself.
    """
    found = _classes.get(code)
    if found is not None:
        return found
    if not _ERROR_NAME.match(code):
        return KmsClientError
    with _lock:
        found = _classes.get(code)
        if found is None:
            found = type(code, (KmsClientError,), {"__module__": __name__})
            _classes[code] = found
        return found


def known_error_classes() -> dict[str, type[KmsClientError]]:
    """Every error class defined so far (predefined plus those created on the fly), by name."""
    with _lock:
        return dict(_classes)


def __getattr__(name: str) -> type[KmsClientError]:
    # Lets ``clients.kms.errors.<Name>`` reach classes created on the fly. Names never seen
    # stay an AttributeError, so a typo in an ``except`` clause is not silently accepted.
    found = _classes.get(name)
    if found is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return found
