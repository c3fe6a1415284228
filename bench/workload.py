"""The benchmarked requests, shaped and signed exactly as boto3 sends them.

Every system gets the same SigV4-signed requests (botocore's own signer), so ``open`` mode
parses the same ``Authorization`` header that ``sigv4`` mode verifies. A SigV4 signature
stays valid for five minutes for an identical request, so one request signed just before a
run and replayed by the load generator is a fair measure of the verification cost: the
server does the full canonical-request, string-to-sign and HMAC work on every request (only
the derived signing key is cached, as it is for any client).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials

from bench.wrk import HttpRequest

REGION = "us-east-1"
CONTENT_TYPE = "application/x-amz-json-1.1"


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class Operation:
    """One benchmarked operation: a KMS action and the payload size it carries; for the
    asymmetric and HMAC operations, the key it needs and the algorithm (or pair spec)."""

    key: str  # short name used in results: "GenerateDataKey", "Encrypt-32B", ...
    action: str
    payload_bytes: int
    key_spec: str | None = None  # None: the system's symmetric key
    key_usage: str | None = None
    algorithm: str | None = None
    #: A second action sent in turn with the first, on the same parameters (a pair that
    #: leaves the state as it found it: DisableKey then EnableKey).
    then: str | None = None

    @property
    def writes(self) -> bool:
        """Whether every request changes the store (one write transaction each)."""
        return self.action in WRITE_ACTIONS


OPERATIONS = (
    Operation("GenerateDataKey", "GenerateDataKey", 32),
    Operation("Encrypt-32B", "Encrypt", 32),
    Operation("Encrypt-4KiB", "Encrypt", 4096),
    Operation("Decrypt-32B", "Decrypt", 32),
    Operation("Decrypt-4KiB", "Decrypt", 4096),
    Operation("Sign-RSA2048-PSS", "Sign", 32, "RSA_2048", "SIGN_VERIFY", "RSASSA_PSS_SHA_256"),
    Operation("Sign-ECDSA-P256", "Sign", 32, "ECC_NIST_P256", "SIGN_VERIFY", "ECDSA_SHA_256"),
    Operation("Verify-ECDSA-P256", "Verify", 32, "ECC_NIST_P256", "SIGN_VERIFY", "ECDSA_SHA_256"),
    Operation(
        "GenerateMac-256", "GenerateMac", 32, "HMAC_256", "GENERATE_VERIFY_MAC", "HMAC_SHA_256"
    ),
    Operation("DataKeyPair-P256", "GenerateDataKeyPair", 0, None, None, "ECC_NIST_P256"),
    # Write-heavy (issue 15): what the store's one write lock and cache invalidation cost.
    Operation("CreateKey", "CreateKey", 0),
    Operation("DisableKey/EnableKey", "DisableKey", 0, then="EnableKey"),
)
WRITE_ACTIONS = frozenset({"CreateKey", "DisableKey", "EnableKey"})


class KmsCallError(RuntimeError):
    """A KMS call answered with an error status."""


class SignedClient:
    """A minimal KMS JSON client: signs like boto3, one keep-alive-less call at a time."""

    def __init__(self, endpoint: str, credentials: Credentials, timeout: float = 10) -> None:
        parts = urlsplit(endpoint)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.endpoint = endpoint.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout

    def request(self, action: str, params: Mapping[str, Any]) -> HttpRequest:
        """The signed request for ``action``; valid for five minutes from now."""
        body = json.dumps(params).encode()
        aws_request = AWSRequest(
            method="POST",
            url=self.endpoint + "/",
            data=body,
            headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": f"TrentService.{action}"},
        )
        signer = SigV4Auth(
            BotocoreCredentials(self.credentials.access_key_id, self.credentials.secret_access_key),
            "kms",
            REGION,
        )
        signer.add_auth(aws_request)
        headers = {"Host": f"{self.host}:{self.port}"}
        headers.update({name: str(value) for name, value in aws_request.headers.items()})
        return HttpRequest("POST", "/", headers, body)

    def send(self, request: HttpRequest) -> tuple[int, bytes]:
        """Send one request; returns (status, body)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            headers = {k: v for k, v in request.headers.items() if k != "Host"}
            connection.request(request.method, request.path, request.body, headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def call(self, action: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Call ``action``; returns the decoded answer. Raises :class:`KmsCallError`."""
        status, body = self.send(self.request(action, params))
        if status != 200:
            raise KmsCallError(f"{action}: HTTP {status}: {body[:300]!r}")
        answer: dict[str, Any] = json.loads(body) if body else {}
        return answer


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def request_params(
    client: SignedClient,
    key_id: str,
    operations: tuple[Operation, ...] = OPERATIONS,
    *,
    creates_keys: bool = True,
) -> dict[str, dict[str, Any]]:
    """The parameters of every operation, by operation key.

    Decrypt gets a blob the system itself made with Encrypt, and Verify a signature the
    system itself made with Sign, so every system checks its own output. Operations that need
    a key of another kind get one created (``creates_keys``; the ceiling has fixed keys).
    Raises :class:`KmsCallError` if the system cannot do an operation.
    """
    params: dict[str, dict[str, Any]] = {}
    keys: dict[tuple[str, str], str] = {}
    for operation in operations:
        if operation.key_spec is not None and operation.key_usage is not None:
            kind = (operation.key_spec, operation.key_usage)
            if kind not in keys:
                keys[kind] = (
                    str(
                        client.call(
                            "CreateKey",
                            {"KeySpec": kind[0], "KeyUsage": kind[1], "Description": "bench"},
                        )["KeyMetadata"]["KeyId"]
                    )
                    if creates_keys
                    else key_id
                )
            params[operation.key] = _key_type_params(client, operation, keys[kind])
        elif operation.action == "CreateKey":
            params[operation.key] = {"Description": "bench"}
        elif operation.then is not None:
            # A key of its own: the pair may stop after either half, which must not leave the
            # key the other operations use disabled.
            own = (
                str(client.call("CreateKey", {"Description": "bench"})["KeyMetadata"]["KeyId"])
                if creates_keys
                else key_id
            )
            params[operation.key] = {"KeyId": own}
        elif operation.action == "GenerateDataKeyPair":
            params[operation.key] = {"KeyId": key_id, "KeyPairSpec": operation.algorithm}
        elif operation.action == "GenerateDataKey":
            params[operation.key] = {"KeyId": key_id, "KeySpec": "AES_256"}
        elif operation.action == "Encrypt":
            plaintext = os.urandom(operation.payload_bytes)
            params[operation.key] = {"KeyId": key_id, "Plaintext": _b64(plaintext)}
        else:
            plaintext = os.urandom(operation.payload_bytes)
            encrypted = client.call("Encrypt", {"KeyId": key_id, "Plaintext": _b64(plaintext)})
            params[operation.key] = {"CiphertextBlob": encrypted["CiphertextBlob"]}
            decrypted = client.call(operation.action, params[operation.key])
            if base64.b64decode(decrypted["Plaintext"]) != plaintext:
                raise KmsCallError(f"{operation.key}: round trip returned other plaintext")
    return params


def _key_type_params(client: SignedClient, operation: Operation, key_id: str) -> dict[str, Any]:
    """Sign, Verify and GenerateMac parameters (Verify's signature made by the system)."""
    message = _b64(os.urandom(operation.payload_bytes))
    if operation.action == "GenerateMac":
        return {"KeyId": key_id, "Message": message, "MacAlgorithm": operation.algorithm}
    sign = {"KeyId": key_id, "Message": message, "SigningAlgorithm": operation.algorithm}
    if operation.action == "Sign":
        return sign
    signature = client.call("Sign", sign)["Signature"]
    verify = {**sign, "Signature": signature}
    if client.call("Verify", verify).get("SignatureValid") is not True:
        raise KmsCallError(f"{operation.key}: the system's own signature does not verify")
    return verify


def signed_request(
    client: SignedClient, operation: Operation, params: dict[str, Any]
) -> HttpRequest:
    """Sign ``operation`` now and check that the server accepts it once before replaying it.

    Raises :class:`KmsCallError` if it does not.
    """
    return signed_requests(client, operation, params)[0]


def signed_requests(
    client: SignedClient, operation: Operation, params: dict[str, Any]
) -> list[HttpRequest]:
    """The requests of ``operation`` (two for a pair, sent in turn), each signed now and
    accepted once by the server before it is replayed.

    Raises :class:`KmsCallError` if one is not.
    """
    actions = [operation.action] if operation.then is None else [operation.action, operation.then]
    requests = []
    for action in actions:
        request = client.request(action, params)
        status, body = client.send(request)
        if status != 200:
            raise KmsCallError(f"{operation.key}: {action}: HTTP {status}: {body[:300]!r}")
        requests.append(request)
    return requests
