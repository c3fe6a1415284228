"""``KmsClient``: the KMS API with boto3's method names, arguments and responses.

A drop-in for ``boto3.client("kms")`` in code that calls operations, catches
``client.exceptions.<Name>`` and reads the response dictionaries; it needs only the standard
library. It validates nothing beyond what serialising requires: the service does that.
"""

from __future__ import annotations

import platform
import re
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from clients.kms import errors
from clients.kms.config import resolve_credentials, resolve_endpoint, resolve_region
from clients.kms.errors import (
    ConfigurationError,
    KmsClientError,
    NoCredentialsError,
    TransportError,
    error_class,
)
from clients.kms.paginator import RESULT_KEYS, Paginator
from clients.kms.protocol import (
    CONTENT_TYPE,
    TARGET_PREFIX,
    decode_response,
    encode_request,
    error_from_response,
)
from clients.kms.retry import RetryPolicy, is_retryable
from clients.kms.signing import Credentials, host_header, sign_request
from clients.kms.transport import ConnectionPool, HttpResponse

__version__ = "0.1.0"

Response = dict[str, Any]
DEFAULT_TIMEOUT = (10.0, 60.0)


def to_operation_name(name: str) -> str:
    """``"re_encrypt"`` or ``"ReEncrypt"`` -> ``"ReEncrypt"`` (the wire operation name)."""
    if "_" in name or name.islower():
        return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
    return name


@dataclass(frozen=True)
class ClientMeta:
    """The subset of boto3's ``client.meta`` that code commonly reads."""

    region_name: str
    endpoint_url: str
    service_name: str = "kms"


class ClientExceptions:
    """``client.exceptions``: every error class by AWS name, plus ``ClientError``."""

    ClientError = KmsClientError

    def __getattr__(self, name: str) -> type[KmsClientError]:
        found = errors.known_error_classes().get(name)
        if found is None:
            raise AttributeError(f"{name!r} is not a known KMS error")
        return found

    def __dir__(self) -> list[str]:
        return sorted({*errors.known_error_classes(), "ClientError"})


def _operation(name: str) -> Callable[..., Response]:
    def method(self: KmsClient, **params: Any) -> Response:
        return self.call(name, **params)

    method.__name__ = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    method.__qualname__ = f"KmsClient.{method.__name__}"
    method.__doc__ = (
        f"Call ``TrentService.{name}`` with boto3's keyword arguments; return boto3's response.\n\n"
        "Raises the :class:`KmsClientError` subclass named by the service's error, or a\n"
        ":class:`~clients.kms.errors.TransportError` if no response arrived after all retries."
    )
    return method


class KmsClient:
    """A KMS client over AWS JSON 1.1 with SigV4, keep-alive connections and retries.

    Arguments mirror ``boto3.client("kms", ...)``; unset ones come from the environment (see
    :mod:`clients.kms.config`). ``timeout`` is one number for both, or ``(connect, read)``
    seconds. ``max_attempts`` counts the first attempt (1 disables retries); ``retry_policy``
    replaces the three retry arguments with a :class:`~clients.kms.retry.RetryPolicy`.
    ``verify`` is ``False`` to skip TLS verification, or a CA bundle path. ``unsigned=True``
    sends no ``Authorization`` (for a mock-kms in ``open`` auth mode without credentials).

    Raises :class:`~clients.kms.errors.NoRegionError` if no region is configured and
    :class:`~clients.kms.errors.ConfigurationError` for an unusable endpoint or incomplete
    credentials. Missing credentials are reported when the first call is made, as in boto3.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        *,
        profile_name: str | None = None,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        max_attempts: int = 3,
        retry_base_delay: float = 0.1,
        retry_max_delay: float = 20.0,
        retry_policy: RetryPolicy | None = None,
        verify: bool | str = True,
        unsigned: bool = False,
        user_agent_extra: str = "",
    ) -> None:
        self.region_name = resolve_region(region_name)
        self.endpoint_url = resolve_endpoint(endpoint_url, self.region_name)
        self.credentials: Credentials | None = (
            None
            if unsigned
            else resolve_credentials(
                aws_access_key_id, aws_secret_access_key, aws_session_token, profile_name
            )
        )
        self.unsigned = unsigned
        self.retry_policy = retry_policy or RetryPolicy(
            max_attempts, retry_base_delay, retry_max_delay
        )
        connect_timeout, read_timeout = (
            timeout if isinstance(timeout, tuple) else (float(timeout), float(timeout))
        )
        self._pool = ConnectionPool(
            self.endpoint_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            ssl_context=_ssl_context(verify) if self.endpoint_url.startswith("https") else None,
        )
        self._path = urlsplit(self.endpoint_url).path or "/"
        self._user_agent = (
            f"mock-kms-client/{__version__} python/{platform.python_version()} {user_agent_extra}"
        ).strip()
        self.meta = ClientMeta(self.region_name, self.endpoint_url)
        self.exceptions = ClientExceptions()

    # --- generic entry point -----------------------------------------------------------------
    def call(self, operation: str, **params: Any) -> Response:
        """Call any KMS operation by name (``"Encrypt"`` or ``"encrypt"``).

        Returns the decoded response plus ``ResponseMetadata`` (``RequestId``,
        ``HTTPStatusCode``, ``HTTPHeaders``, ``RetryAttempts``). Retries transport failures,
        5xx and throttling up to ``max_attempts`` in total. Raises the error class named by the
        service's answer (a :class:`KmsClientError`), a
        :class:`~clients.kms.errors.TransportError` when no answer came,
        :class:`~clients.kms.errors.NoCredentialsError` without credentials, and
        :class:`~clients.kms.errors.ParamSerializationError` for unserialisable parameters.
        """
        name = to_operation_name(operation)
        body = encode_request(params)
        if self.credentials is None and not self.unsigned:
            raise NoCredentialsError(
                "Unable to locate credentials: pass aws_access_key_id/aws_secret_access_key, "
                "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, add them to ~/.aws/credentials, "
                "or use unsigned=True for a mock-kms running with MOCK_KMS_AUTH=open"
            )
        invocation_id = str(uuid.uuid4())
        attempt = 1
        while True:
            headers = self._headers(name, body, invocation_id, attempt)
            error: KmsClientError | TransportError
            try:
                response = self._pool.request("POST", self._path, headers, body)
            except TransportError as exc:
                error = exc
            else:
                if response.status < 300:
                    return self._result(response, attempt - 1)
                error = self._error(name, response, attempt - 1)
            if not self.retry_policy.should_retry(error, attempt):
                if isinstance(error, KmsClientError) and is_retryable(error):
                    error.mark_max_attempts_reached()
                raise error
            self.retry_policy.sleep(self.retry_policy.delay(attempt))
            attempt += 1

    def _headers(
        self, operation: str, body: bytes, invocation_id: str, attempt: int
    ) -> dict[str, str]:
        headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": f"{TARGET_PREFIX}.{operation}"}
        if self.credentials is not None:
            # Signed afresh on every attempt: X-Amz-Date must stay within the 5-minute window.
            headers = sign_request(
                method="POST",
                url=self.endpoint_url,
                headers=headers,
                body=body,
                credentials=self.credentials,
                region=self.region_name,
            )
        else:
            headers["Host"] = host_header(self.endpoint_url)
        headers["User-Agent"] = self._user_agent
        headers["Accept-Encoding"] = "identity"
        headers["amz-sdk-invocation-id"] = invocation_id
        headers["amz-sdk-request"] = f"attempt={attempt}; max={self.retry_policy.max_attempts}"
        return headers

    @staticmethod
    def _metadata(response: HttpResponse, retries: int) -> dict[str, Any]:
        lowered = {name.lower(): value for name, value in response.headers.items()}
        return {
            "RequestId": lowered.get("x-amzn-requestid", ""),
            "HTTPStatusCode": response.status,
            "HTTPHeaders": lowered,
            "RetryAttempts": retries,
        }

    def _result(self, response: HttpResponse, retries: int) -> Response:
        result = decode_response(response.body)
        result["ResponseMetadata"] = self._metadata(response, retries)
        return result

    def _error(self, operation: str, response: HttpResponse, retries: int) -> KmsClientError:
        return error_from_response(
            status=response.status,
            reason=response.reason,
            headers=response.headers,
            body=response.body,
            operation_name=operation,
            request_id=self._metadata(response, retries)["RequestId"] or None,
            retry_attempts=retries,
        )

    # --- boto3 client conveniences ---------------------------------------------------------------
    def can_paginate(self, operation_name: str) -> bool:
        """Whether :meth:`get_paginator` supports this operation (snake or Pascal case)."""
        return to_operation_name(operation_name) in RESULT_KEYS

    def get_paginator(self, operation_name: str) -> Paginator:
        """A paginator for a list operation, e.g. ``get_paginator("list_keys")``.

        Raises ValueError for operations that do not paginate.
        """
        return Paginator(self.call, to_operation_name(operation_name))

    def error_class(self, code: str) -> type[KmsClientError]:
        """The exception class for an AWS error name (created and cached if new)."""
        return error_class(code)

    def close(self) -> None:
        """Close the keep-alive connections; the client reconnects if used again."""
        self._pool.close()

    def __enter__(self) -> KmsClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KmsClient(endpoint_url={self.endpoint_url!r}, region_name={self.region_name!r})"

    # --- every KMS operation, named as in boto3 --------------------------------------------------
    cancel_key_deletion = _operation("CancelKeyDeletion")
    connect_custom_key_store = _operation("ConnectCustomKeyStore")
    create_alias = _operation("CreateAlias")
    create_custom_key_store = _operation("CreateCustomKeyStore")
    create_grant = _operation("CreateGrant")
    create_key = _operation("CreateKey")
    decapsulate = _operation("Decapsulate")
    decrypt = _operation("Decrypt")
    delete_alias = _operation("DeleteAlias")
    delete_custom_key_store = _operation("DeleteCustomKeyStore")
    delete_imported_key_material = _operation("DeleteImportedKeyMaterial")
    derive_shared_secret = _operation("DeriveSharedSecret")
    describe_custom_key_stores = _operation("DescribeCustomKeyStores")
    describe_key = _operation("DescribeKey")
    disable_key = _operation("DisableKey")
    disable_key_rotation = _operation("DisableKeyRotation")
    disconnect_custom_key_store = _operation("DisconnectCustomKeyStore")
    enable_key = _operation("EnableKey")
    enable_key_rotation = _operation("EnableKeyRotation")
    encapsulate = _operation("Encapsulate")
    encrypt = _operation("Encrypt")
    generate_data_key = _operation("GenerateDataKey")
    generate_data_key_pair = _operation("GenerateDataKeyPair")
    generate_data_key_pair_without_plaintext = _operation("GenerateDataKeyPairWithoutPlaintext")
    generate_data_key_without_plaintext = _operation("GenerateDataKeyWithoutPlaintext")
    generate_mac = _operation("GenerateMac")
    generate_random = _operation("GenerateRandom")
    get_key_last_usage = _operation("GetKeyLastUsage")
    get_key_policy = _operation("GetKeyPolicy")
    get_key_rotation_status = _operation("GetKeyRotationStatus")
    get_parameters_for_import = _operation("GetParametersForImport")
    get_public_key = _operation("GetPublicKey")
    import_key_material = _operation("ImportKeyMaterial")
    list_aliases = _operation("ListAliases")
    list_grants = _operation("ListGrants")
    list_key_policies = _operation("ListKeyPolicies")
    list_key_rotations = _operation("ListKeyRotations")
    list_keys = _operation("ListKeys")
    list_resource_tags = _operation("ListResourceTags")
    list_retirable_grants = _operation("ListRetirableGrants")
    put_key_policy = _operation("PutKeyPolicy")
    re_encrypt = _operation("ReEncrypt")
    replicate_key = _operation("ReplicateKey")
    retire_grant = _operation("RetireGrant")
    revoke_grant = _operation("RevokeGrant")
    rotate_key_on_demand = _operation("RotateKeyOnDemand")
    schedule_key_deletion = _operation("ScheduleKeyDeletion")
    sign = _operation("Sign")
    tag_resource = _operation("TagResource")
    untag_resource = _operation("UntagResource")
    update_alias = _operation("UpdateAlias")
    update_custom_key_store = _operation("UpdateCustomKeyStore")
    update_key_description = _operation("UpdateKeyDescription")
    update_primary_region = _operation("UpdatePrimaryRegion")
    verify = _operation("Verify")
    verify_mac = _operation("VerifyMac")


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        # Only when the caller asks for it (boto3's verify=False), e.g. a self-signed dev proxy.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        try:
            return ssl.create_default_context(cafile=verify)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(f"Cannot load the CA bundle {verify!r}: {exc}") from exc
    return ssl.create_default_context()
