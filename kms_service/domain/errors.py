"""The one place where AWS error names live.

Every error a caller can see is a subclass of :class:`KmsError`. Its class name is the exact
``__type`` AWS puts on the wire, and ``status`` is the HTTP status AWS really sends (400 for
client errors, 500 for the three modeled server faults), not the Smithy model's codes.
"""

from __future__ import annotations


class KmsError(Exception):
    """An error answered to the caller as ``{"__type": code, "message": message}``."""

    status: int = 400
    #: Errors that AWS sends with no message at all (``InvalidCiphertextException``...).
    silent: bool = False

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "")
        self.message = None if self.silent else message

    @property
    def code(self) -> str:
        """The AWS error name, i.e. the wire ``__type``."""
        return type(self).__name__


# --- Front-end errors (not in the KMS model, shared by every Coral JSON service) ----------
class SerializationException(KmsError):
    pass


class UnknownOperationException(KmsError):
    pass


class ValidationException(KmsError):
    pass


class AccessDeniedException(KmsError):
    pass


class ThrottlingException(KmsError):
    pass


class RequestEntityTooLargeException(KmsError):
    status = 413


class MalformedHttpRequestException(KmsError):
    """A request unreadable at the HTTP level (bad framing or headers): one of the errors
    common to every AWS service (docs/http-errors.md)."""


# --- Authentication errors (SigV4) ---------------------------------------------------------
class MissingAuthenticationTokenException(KmsError):
    pass


class IncompleteSignatureException(KmsError):
    pass


class InvalidSignatureException(KmsError):
    pass


class UnrecognizedClientException(KmsError):
    pass


class ExpiredTokenException(KmsError):
    pass


# --- Modeled KMS errors ----------------------------------------------------------------------
class NotFoundException(KmsError):
    pass


class AlreadyExistsException(KmsError):
    pass


class DisabledException(KmsError):
    pass


class KMSInvalidStateException(KmsError):
    pass


class InvalidArnException(KmsError):
    pass


class InvalidAliasNameException(KmsError):
    pass


class InvalidMarkerException(KmsError):
    pass


class InvalidKeyUsageException(KmsError):
    pass


class InvalidGrantIdException(KmsError):
    pass


class InvalidGrantTokenException(KmsError):
    pass


class IncorrectKeyException(KmsError):
    pass


class InvalidCiphertextException(KmsError):
    silent = True


class KMSInvalidSignatureException(KmsError):
    """Verify: the signature does not verify (AWS sends no message)."""

    silent = True


class KMSInvalidMacException(KmsError):
    """VerifyMac: the MAC does not verify (AWS sends no message)."""

    silent = True


class LimitExceededException(KmsError):
    pass


class MalformedPolicyDocumentException(KmsError):
    pass


class TagException(KmsError):
    pass


class UnsupportedOperationException(KmsError):
    pass


class DryRunOperationException(KmsError):
    pass


class ConflictException(KmsError):
    pass


class NotAuthorizedException(KmsError):
    """Aliases under ``alias/aws/`` are reserved (moto's capture of AWS: no message)."""

    silent = True


class InvalidImportTokenException(KmsError):
    pass


class ExpiredImportTokenException(KmsError):
    pass


class IncorrectKeyMaterialException(KmsError):
    pass


class KMSInternalException(KmsError):
    status = 500


class KeyUnavailableException(KmsError):
    status = 500


class DependencyTimeoutException(KmsError):
    status = 500


#: What a request that could not reach the database answers (DependencyTimeoutException for
#: KMS, ServiceUnavailable for S3): both are retried by the AWS SDKs.
DATABASE_UNAVAILABLE_MESSAGE = "The service could not reach its database; retry the request."
#: A string member holding U+0000 on the PostgreSQL store (docs/several-hosts.md).
NUL_REFUSED_MESSAGE = (
    "1 validation error detected: a string member contains the character U+0000, which this"
    " service's database (PostgreSQL) cannot store"
)


# --- custom key stores (docs/custom-key-stores.md) -------------------------------------------
class CustomKeyStoreNotFoundException(KmsError):
    pass


class CustomKeyStoreNameInUseException(KmsError):
    pass


class CustomKeyStoreInvalidStateException(KmsError):
    pass


class CustomKeyStoreHasCMKsException(KmsError):
    pass


class CloudHsmClusterNotFoundException(KmsError):
    pass


class CloudHsmClusterInUseException(KmsError):
    pass


# --- end of custom key stores ----------------------------------------------------------------


class ConfigurationError(Exception):
    """Bad service configuration, found at startup; its message is one actionable line."""
