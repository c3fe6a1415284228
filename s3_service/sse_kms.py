"""SSE-KMS (``aws:kms``): data keys from a KMS, reached only through the thin KMS client.

As AWS S3 does (docs/aws-behaviours.md, "S3 endpoint"): a write calls ``GenerateDataKey`` with the
encryption context ``{"aws:s3:arn": <object ARN>}`` (the bucket ARN with an S3 Bucket Key) merged
with the caller's ``x-amz-server-side-encryption-context``, and only the encrypted data key is
stored; every read calls ``Decrypt`` with the same context. ``aws:kms`` without a key id uses
``alias/aws/s3``, which the KMS creates on first use. KMS errors come back as S3 does it: 400
``KMS.<Name>`` with the KMS's message.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clients.kms import KmsClient, KmsClientError, KmsLocalError, TransportError
from kms_service.wire.auth.authenticator import VIA_SERVICE_AGENT
from s3_service import errors

CONTEXT_HEADER = "x-amz-server-side-encryption-context"
KEY_ID_HEADER = "x-amz-server-side-encryption-aws-kms-key-id"
BUCKET_KEY_HEADER = "x-amz-server-side-encryption-bucket-key-enabled"
ARN_KEY = "aws:s3:arn"
DEFAULT_KEY = "alias/aws/s3"
DATA_KEY_SIZE = 32
#: Used as the secret when S3 forwards the caller's access key id: a KMS in ``open`` auth mode
#: reads the account and region from the Authorization header and checks no signature.
FORWARDED_SECRET = "mock-kms-s3-forwarded-caller"  # noqa: S105 - not a secret, see above
ANONYMOUS_ACCESS_KEY = "mock-kms-s3-anonymous"


def object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def parse_context_header(value: str) -> dict[str, str]:
    """The user context from ``x-amz-server-side-encryption-context``: base64 of a UTF-8
    JSON object of strings. Raises ``InvalidArgument`` with AWS's text otherwise."""
    try:
        decoded: Any = json.loads(base64.b64decode(value, validate=True).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise errors.sse_kms_bad_context() from None
    if not isinstance(decoded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in decoded.items()
    ):
        raise errors.sse_kms_bad_context()
    return decoded


def kms_context(user_context: dict[str, str] | None, arn: str) -> dict[str, str]:
    """The context sent to the KMS: the user's pairs plus ``aws:s3:arn`` = ``arn``.

    Raises ``InvalidArgument`` if the user's context names a different ``aws:s3:arn``.
    """
    context = dict(user_context or {})
    if context.get(ARN_KEY, arn) != arn:
        raise errors.sse_kms_context_arn_mismatch(arn)
    context[ARN_KEY] = arn
    return context


def encode_context(context: dict[str, str]) -> str:
    """The header form of a context (base64 of compact JSON)."""
    return base64.b64encode(json.dumps(context, separators=(",", ":")).encode()).decode("ascii")


@dataclass(frozen=True)
class Caller:
    """Who the KMS call is made for: the S3 caller's access key id (None when anonymous)
    and the bucket's region, where AWS S3 would call KMS."""

    access_key_id: str | None
    region: str


@dataclass(frozen=True)
class GeneratedKey:
    plaintext: bytes
    ciphertext: bytes
    key_arn: str


class KmsGateway:
    """GenerateDataKey and Decrypt through :class:`clients.kms.KmsClient`.

    ``endpoint`` returns the KMS URL (called lazily: the in-process loopback listener starts
    on first use). With ``forward_caller`` the call is signed with the S3 caller's access key
    id, so a KMS in ``open`` mode puts keys in the caller's account; otherwise the standard
    AWS credential chain of the server process is used (a KMS that verifies signatures).
    One client per (endpoint, region, identity), shared by all threads of the worker.
    """

    def __init__(
        self, endpoint: Callable[[], str], *, forward_caller: bool, verify: bool | str = True
    ) -> None:
        self._endpoint = endpoint
        self._forward_caller = forward_caller
        self._verify = verify
        self._clients: dict[tuple[str, str, str | None], KmsClient] = {}
        self._lock = threading.Lock()

    def _client(self, caller: Caller) -> tuple[KmsClient, str]:
        endpoint = self._endpoint()
        identity = (caller.access_key_id or ANONYMOUS_ACCESS_KEY) if self._forward_caller else None
        cache_key = (endpoint, caller.region, identity)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is None:
                if identity is not None:
                    client = KmsClient(
                        endpoint_url=endpoint,
                        region_name=caller.region,
                        aws_access_key_id=identity,
                        aws_secret_access_key=FORWARDED_SECRET,
                        verify=self._verify,
                        # kms:ViaService, as AWS S3 calls AWS KMS (docs/access-control.md).
                        user_agent_extra=f"{VIA_SERVICE_AGENT}s3.{caller.region}.amazonaws.com",
                    )
                else:
                    client = KmsClient(
                        endpoint_url=endpoint, region_name=caller.region, verify=self._verify
                    )
                self._clients[cache_key] = client
        return client, endpoint

    def generate_data_key(
        self, key_id: str | None, context: dict[str, str], caller: Caller
    ) -> GeneratedKey:
        """A fresh AES-256 data key under ``key_id`` (``alias/aws/s3`` when None).

        Raises :class:`~s3_service.errors.S3Error`: ``KMS.<Name>`` for a KMS error,
        ``InternalError`` when the KMS cannot be reached.
        """
        response = self._call(
            caller,
            "generate_data_key",
            KeyId=key_id or DEFAULT_KEY,
            KeySpec="AES_256",
            EncryptionContext=context,
        )
        plaintext = bytes(response["Plaintext"])
        if len(plaintext) != DATA_KEY_SIZE:
            raise errors.kms_error("InvalidKeyUsageException", "The KMS returned no AES-256 key.")
        return GeneratedKey(plaintext, bytes(response["CiphertextBlob"]), str(response["KeyId"]))

    def decrypt(
        self, ciphertext: bytes, context: dict[str, str], key_arn: str, caller: Caller
    ) -> bytes:
        """The data key inside ``ciphertext``; ``key_arn`` pins the key it must be under.

        Raises :class:`~s3_service.errors.S3Error` as :meth:`generate_data_key` does.
        """
        response = self._call(
            caller,
            "decrypt",
            CiphertextBlob=ciphertext,
            EncryptionContext=context,
            KeyId=key_arn,
        )
        return bytes(response["Plaintext"])

    def _call(self, caller: Caller, operation: str, **params: Any) -> dict[str, Any]:
        endpoint = "the configured KMS"
        try:
            client, endpoint = self._client(caller)
            result: dict[str, Any] = getattr(client, operation)(**params)
        except KmsClientError as exc:
            if exc.code == "AccessDeniedException":
                # As AWS S3 answers when KMS refuses the caller: 403, naming the KMS action.
                raise errors.S3Error(403, "AccessDenied", exc.message) from None
            if exc.status >= 500:
                raise errors.S3Error(500, f"KMS.{exc.code}", exc.message) from None
            raise errors.kms_error(exc.code, exc.message) from None
        except (TransportError, KmsLocalError) as exc:
            raise errors.kms_unreachable(endpoint, str(exc)) from None
        return result

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
