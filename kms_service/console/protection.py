"""Which of the five S3 encryption mechanisms protects an object, and its envelope.

Server-side, the object's stored envelope says it (:mod:`s3_service.envelope`): SSE-S3, SSE-KMS
or SSE-C. Client-side encryption is recognised from the S3 Encryption Client's metadata, V2
or V3, decoded by the client's own codec (:mod:`clients.s3_encryption.metadata`): a KMS wrap
is CSE-KMS, an AES or RSA wrap is CSE-C. A KMS data key written by mock-kms names its key and
key-material version in its ciphertext header (:mod:`kms_service.domain.ciphertext`), so both
SSE-KMS and CSE-KMS objects show the exact version that protects them.

Nothing secret is read or shown: wrapped keys are parsed for their header only, and an SSE-C
key is represented by a prefix of its salted HMAC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from backends.base import BACKEND_CODES
from clients.s3_encryption.errors import TamperedMetadataError, UnknownFormatError
from clients.s3_encryption.formats import ContentAlgorithm, WrapAlgorithm
from clients.s3_encryption.metadata import (
    CONTENT_CIPHER_V3,
    INSTRUCTION_FILE_MARKER,
    KEY_COMMITMENT_V3,
    decode_envelope,
)
from kms_service.domain.ciphertext import MalformedCiphertextError, decode_blob
from s3_service.envelope import SSE_C, SSE_KMS, SSE_S3, Envelope

SERVER_NAMES = {SSE_S3: "SSE-S3", SSE_KMS: "SSE-KMS", SSE_C: "SSE-C"}
_BACKEND_NAMES = {code: name for name, code in BACKEND_CODES.items()}
CONTENT_NAMES = {
    ContentAlgorithm.AES_GCM: "AES-256-GCM",
    ContentAlgorithm.AES_GCM_COMMITTING: "AES-256-GCM with key commitment (V3 suite 115)",
    ContentAlgorithm.AES_CBC: "AES-256-CBC (legacy)",
}
#: Hex digits of the SSE-C HMAC shown: enough to tell keys apart, not the whole MAC.
FINGERPRINT_HEX = 16


@dataclass(frozen=True)
class KmsKeyRef:
    """The KMS key and key-material version a wrapped data key names."""

    key_id: str
    material_id: str
    backend: str
    key_arn: str = ""


@dataclass(frozen=True)
class Layer:
    """One box of the envelope diagram, from the data outwards."""

    title: str
    detail: str
    where: str
    #: The key-material version (``KeyMaterialId``) of a KMS key, when known.
    version: str = ""


@dataclass(frozen=True)
class Protection:
    """How one object is protected. ``mechanism`` is SSE-S3, SSE-KMS, SSE-C, CSE-KMS, CSE-C
    or none; ``at_rest`` the server-side mechanism under a client-side one."""

    mechanism: str
    at_rest: str
    kms: KmsKeyRef | None = None
    fingerprint: str = ""
    client_format: str = ""
    client_wrap: str = ""
    note: str = ""
    layers: tuple[Layer, ...] = field(default_factory=tuple)

    @property
    def key_label(self) -> str:
        if self.kms is not None:
            return self.kms.key_id
        if self.fingerprint:
            return f"HMAC {self.fingerprint}"
        return ""


def kms_reference(blob: bytes, key_arn: str = "") -> KmsKeyRef | None:
    """The key and version in a mock-kms ciphertext blob's header; None for anything else
    (a blob from AWS KMS, or not a blob at all)."""
    try:
        parsed = decode_blob(blob)
    except MalformedCiphertextError:
        return None
    backend = _BACKEND_NAMES.get(parsed.backend_code, f"backend {parsed.backend_code}")
    return KmsKeyRef(parsed.key_id, parsed.material_id, backend, key_arn)


def _where(ref: KmsKeyRef | None) -> str:
    if ref is None:
        return "a KMS key this mock-kms did not write"
    if ref.backend == "pkcs11":
        return "mock-kms, PKCS#11 token (never leaves the HSM)"
    return "mock-kms, software keystore (wrapped under the root key)"


def _server_layers(envelope: Envelope) -> tuple[str, KmsKeyRef | None, str, tuple[Layer, ...]]:
    """(mechanism, KMS reference, SSE-C fingerprint, layers) of the stored envelope."""
    if envelope.mode == SSE_S3:
        return (
            "SSE-S3",
            None,
            "",
            (
                Layer("Data key", "AES-256, one per object", "stored wrapped in the object record"),
                Layer(
                    "S3 master key",
                    "AES-256-GCM key wrap",
                    "mock-kms S3, <data-dir>/s3/master-key.bin (wrapped under the root key)",
                ),
            ),
        )
    if envelope.mode == SSE_KMS:
        ref = kms_reference(envelope.kms_ciphertext, envelope.kms_key_arn)
        version = ref.material_id if ref else "unknown"
        key_name = envelope.kms_key_arn or (ref.key_id if ref else "unknown")
        bucket_key = " (S3 Bucket Key)" if envelope.bucket_key else ""
        return (
            "SSE-KMS",
            ref,
            "",
            (
                Layer(
                    "Data key" + bucket_key,
                    "from GenerateDataKey",
                    "stored as a KMS ciphertext blob in the object record",
                ),
                Layer("KMS key", key_name, _where(ref), version),
            ),
        )
    fingerprint = envelope.customer_hmac.hex()[:FINGERPRINT_HEX]
    return (
        "SSE-C",
        None,
        fingerprint,
        (
            Layer(
                "Customer key",
                f"salted HMAC fingerprint {fingerprint}",
                "with the client: sent on every request, never stored",
            ),
        ),
    )


#: Reads the object's instruction file: its parsed body, or None when there is none.
#: Raises :class:`InstructionFileUnreadable` when it exists but the console cannot read it.
InstructionLoader = Callable[[], Mapping[str, str] | None]


class InstructionFileUnreadable(Exception):
    """The instruction file exists but is not read (the message says why)."""


def _no_instruction_file() -> None:
    return None


def classify(
    envelope: Envelope,
    user_metadata: Mapping[str, str],
    load_instruction_file: InstructionLoader = _no_instruction_file,
) -> Protection:
    """How the object with stored ``envelope`` and ``x-amz-meta-*`` ``user_metadata`` is
    protected (see the module docstring). ``load_instruction_file`` is called only when the
    metadata says the envelope is in an instruction file."""
    at_rest, server_ref, fingerprint, server_layers = _server_layers(envelope)
    if INSTRUCTION_FILE_MARKER in {name.lower() for name in user_metadata}:
        return Protection(
            mechanism=at_rest,
            at_rest=at_rest,
            kms=server_ref,
            fingerprint=fingerprint,
            note="an S3 Encryption Client instruction file: the envelope of another object",
            layers=server_layers,
        )
    client = _client_side(user_metadata, load_instruction_file)
    if client is None:
        return Protection(
            mechanism=at_rest,
            at_rest=at_rest,
            kms=server_ref,
            fingerprint=fingerprint,
            layers=server_layers,
        )
    return Protection(
        mechanism=client.mechanism,
        at_rest=at_rest,
        kms=client.kms,
        client_format=client.client_format,
        client_wrap=client.client_wrap,
        note=client.note,
        layers=client.layers,
    )


@dataclass(frozen=True)
class _ClientSide:
    mechanism: str
    kms: KmsKeyRef | None
    client_format: str
    client_wrap: str
    note: str
    layers: tuple[Layer, ...]


def _client_side(
    metadata: Mapping[str, str], load_instruction_file: InstructionLoader
) -> _ClientSide | None:
    """CSE-KMS or CSE-C from S3 Encryption Client metadata (and instruction file); None when
    there is none."""
    lowered = {k.lower(): v for k, v in metadata.items()}
    try:
        envelope = decode_envelope(lowered, load_instruction_file)
    except InstructionFileUnreadable as exc:
        return _ClientSide(
            "CSE (instruction file)",
            None,
            "V3" if CONTENT_CIPHER_V3 in lowered and KEY_COMMITMENT_V3 in lowered else "",
            "",
            str(exc),
            (Layer("Data key", "wrapped, in the instruction file", "<key>.instruction"),),
        )
    except UnknownFormatError:
        return None
    except TamperedMetadataError as exc:
        return _ClientSide("CSE (unreadable)", None, "", "", f"malformed metadata: {exc}", ())
    fmt = envelope.version.name + (", instruction file" if envelope.from_instruction_file else "")
    wrap = envelope.wrap_algorithm
    stored_in = (
        "the instruction file" if envelope.from_instruction_file else "the object's metadata"
    )
    if wrap in (WrapAlgorithm.KMS_CONTEXT, WrapAlgorithm.KMS):
        ref = kms_reference(envelope.encrypted_data_key)
        if ref is None:
            named = envelope.materials_description.get("kms_cmk_id", "")
            ref = KmsKeyRef(named or "unknown", "unknown", "unknown") if named else None
        version = ref.material_id if ref else "unknown"
        return _ClientSide(
            "CSE-KMS",
            ref,
            fmt,
            wrap.value,
            "",
            (
                Layer(
                    "Data key",
                    f"content: {CONTENT_NAMES[envelope.content_algorithm]}",
                    f"in {stored_in}, as a KMS ciphertext blob",
                ),
                Layer("KMS key", ref.key_id if ref else "unknown", _where(ref), version),
            ),
        )
    kind = "RSA key pair" if "RSA" in wrap.value.upper() else "AES key"
    return _ClientSide(
        "CSE-C",
        None,
        fmt,
        wrap.value,
        "",
        (
            Layer(
                "Data key",
                f"content: {CONTENT_NAMES[envelope.content_algorithm]}",
                f"in {stored_in}, wrapped with {wrap.value}",
            ),
            Layer("Client's key", kind, "with the client only: never sent to S3 or KMS"),
        ),
    )
