"""A JSON-lines audit log: one CloudTrail-shaped event per KMS request.

What an event may contain is an allow-list (:data:`_PARAMETERS`): identifiers, key specs,
counts, and the *names* of encryption-context and tag keys. Plaintext, ciphertext, key
material, policies, descriptions, context and tag values never reach the log, whatever a
request carries.

Writing never blocks a request on I/O: events go to an in-memory buffer under a short lock, a
background thread of each worker appends the buffer to the file every
:data:`FLUSH_SECONDS` with one ``write`` on an ``O_APPEND`` descriptor (so the lines of
several workers never interleave mid-line), and the rest is flushed when the worker exits.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kms_service.access.principals import principal_kind
from kms_service.access.request import Authorization

log = logging.getLogger("mock_kms.audit")

FLUSH_SECONDS = 0.2
#: Buffered bytes that wake the writer thread before its next tick.
WAKE_BYTES = 256 * 1024
EVENT_VERSION = "1.08"

#: Request members copied into ``requestParameters`` (AWS name → CloudTrail name). Nothing
#: else of a request is ever logged.
_PARAMETERS = {
    "KeyId": "keyId",
    "DestinationKeyId": "destinationKeyId",
    "SourceKeyId": "sourceKeyId",
    "TargetKeyId": "targetKeyId",
    "AliasName": "aliasName",
    "KeySpec": "keySpec",
    "CustomerMasterKeySpec": "customerMasterKeySpec",
    "KeyUsage": "keyUsage",
    "Origin": "origin",
    "MultiRegion": "multiRegion",
    "NumberOfBytes": "numberOfBytes",
    "EncryptionAlgorithm": "encryptionAlgorithm",
    "SourceEncryptionAlgorithm": "sourceEncryptionAlgorithm",
    "DestinationEncryptionAlgorithm": "destinationEncryptionAlgorithm",
    "PendingWindowInDays": "pendingWindowInDays",
    "RotationPeriodInDays": "rotationPeriodInDays",
    "PolicyName": "policyName",
    "IncludeKeyMaterial": "includeKeyMaterial",
    "Limit": "limit",
    "DryRun": "dryRun",
}
#: Context members: only their keys are logged.
_CONTEXTS = {
    "EncryptionContext": "encryptionContextKeys",
    "SourceEncryptionContext": "sourceEncryptionContextKeys",
    "DestinationEncryptionContext": "destinationEncryptionContextKeys",
}
_READ_ONLY_PREFIXES = ("Describe", "List", "Get")
#: Each logged request member's position in :data:`_PARAMETERS` (the order of the logged
#: object) and its CloudTrail name.
_PARAMETER_ORDER = {
    name: (index, logged) for index, (name, logged) in enumerate(_PARAMETERS.items())
}
#: The member types logged as they are (``bool`` is an ``int``).
_SCALARS = (str, int, float)
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


def _key_arn(
    params: Mapping[str, Any] | None, result: Mapping[str, Any] | None, scope: Any
) -> str | None:
    """The ARN of the key a request acted on, as far as the request and answer tell."""
    if result:
        metadata = result.get("KeyMetadata")
        if isinstance(metadata, Mapping) and isinstance(metadata.get("Arn"), str):
            return str(metadata["Arn"])
        key_id = result.get("KeyId")
        if isinstance(key_id, str) and key_id.startswith("arn:"):
            return key_id
    value = (params or {}).get("KeyId")
    if not isinstance(value, str):
        return None
    if value.startswith("arn:") and ":key/" in value:
        return value
    if scope is not None and not value.startswith("alias/") and not value.startswith("arn:"):
        return f"arn:aws:kms:{scope.region}:{scope.account_id}:key/{value}"
    return None


def request_parameters(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The loggable part of a request (see :data:`_PARAMETERS`)."""
    if not params:
        return None
    # A request carries few members: walk those, not every loggable name.
    found = []
    for name, value in params.items():
        entry = _PARAMETER_ORDER.get(name)
        if entry is not None and isinstance(value, _SCALARS):
            found.append((entry[0], entry[1], value))
    found.sort(key=_first)
    logged: dict[str, Any] = {logged_name: value for _, logged_name, value in found}
    for name, logged_name in _CONTEXTS.items():
        context = params.get(name)
        if isinstance(context, Mapping) and context:
            logged[logged_name] = sorted(str(key) for key in context)
    tags = params.get("Tags")
    if isinstance(tags, list) and tags:
        logged["tagKeys"] = sorted(
            str(tag.get("TagKey")) for tag in tags if isinstance(tag, Mapping)
        )
    tag_keys = params.get("TagKeys")
    if isinstance(tag_keys, list) and tag_keys:
        logged["tagKeys"] = sorted(str(key) for key in tag_keys)
    return logged or None


def _first(item: tuple[int, str, Any]) -> int:
    return item[0]


def build_event(
    *,
    event_time: float,
    request_id: str,
    operation: str,
    scope: Any,
    params: Mapping[str, Any] | None,
    result: Mapping[str, Any] | None,
    error_code: str | None,
    source_ip: str | None,
    user_agent: str | None,
    default_region: str,
    authorizations: Sequence[Authorization] = (),
) -> dict[str, Any]:
    """One CloudTrail-shaped event. ``scope`` is the authenticated caller (anything with
    ``account_id``, ``region`` and ``principal_arn``), or None when the request failed before
    its caller was known."""
    if scope is not None:
        principal = str(scope.principal_arn)
        identity: dict[str, Any] = {
            "type": principal_kind(principal).value,
            "principalId": scope.account_id,
            "arn": principal,
            "accountId": scope.account_id,
        }
        region = str(scope.region)
        account = str(scope.account_id)
    else:
        identity = {"type": "Unknown"}
        region = default_region
        account = None
    event: dict[str, Any] = {
        "eventVersion": EVENT_VERSION,
        "userIdentity": identity,
        "eventTime": datetime.fromtimestamp(event_time, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "kms.amazonaws.com",
        "eventName": operation,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": user_agent,
        "requestParameters": request_parameters(params),
        "responseElements": None,
        "requestID": request_id,
        "eventID": str(uuid.uuid4()),
        "readOnly": operation.startswith(_READ_ONLY_PREFIXES),
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    arn = _key_arn(params, result, scope)
    if arn is not None:
        event["resources"] = [{"accountId": arn.split(":")[4], "type": "AWS::KMS::Key", "ARN": arn}]
    if error_code is not None:
        event["errorCode"] = error_code
    if authorizations:
        # Every access-control decision (docs/access-control.md): action, resource, outcome.
        event["additionalEventData"] = {
            "authorizations": [
                {
                    "action": item.action,
                    "resource": item.resource,
                    "decision": "Allow" if item.decision.allowed else "Deny",
                    "reason": item.decision.reason.value,
                }
                for item in authorizations
            ]
        }
    return event


class AuditLog:
    """An append-only JSON-lines writer, buffered per process. Thread-safe."""

    def __init__(self, target: str, flush_seconds: float = FLUSH_SECONDS) -> None:
        """``target`` is a file path (created 0600, appended to) or ``-`` for standard
        output. Raises ``OSError`` if the file cannot be opened."""
        self._stdout = target == "-"
        if self._stdout:
            self._fd = 1
        else:
            self._fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._wake = threading.Event()
        self._closed = False
        self._thread_pid: int | None = None
        atexit.register(self.close)

    def write(self, event: Mapping[str, Any]) -> None:
        """Queue one event; never does I/O itself."""
        line = (_ENCODER.encode(event) + "\n").encode()
        with self._lock:
            self._buffer.append(line)
            self._buffered += len(line)
            wake = self._buffered >= WAKE_BYTES
        if self._thread_pid != os.getpid():
            self._start_writer()
        if wake:
            self._wake.set()

    def _start_writer(self) -> None:
        with self._lock:
            if self._thread_pid == os.getpid():
                return
            # Started in the process that writes (a worker, after fork), never inherited.
            self._thread_pid = os.getpid()
        threading.Thread(target=self._run, name="mock-kms-audit", daemon=True).start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Append everything buffered so far. Errors are logged, never raised."""
        with self._flush_lock:
            with self._lock:
                batch, self._buffer, self._buffered = self._buffer, [], 0
            if not batch:
                return
            try:
                if self._stdout:
                    # A pipe keeps writes of up to PIPE_BUF bytes whole: one line per write.
                    for line in batch:
                        _write_all(self._fd, line)
                else:
                    _write_all(self._fd, b"".join(batch))
            except OSError as exc:
                log.error("audit log write failed, %d events lost: %s", len(batch), exc)

    def close(self) -> None:
        """Flush and stop; later writes are dropped."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        self._wake.set()
        if not self._stdout:
            with contextlib.suppress(OSError):
                os.close(self._fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
