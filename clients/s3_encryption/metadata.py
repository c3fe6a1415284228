"""Envelope metadata codec: V1/V2/V3 object metadata, instruction files, format detection.

Reading follows the S3EC specification's "Determining S3EC Object Status" and Python S3EC's
format-confusion guards; writing produces exactly the keys the official clients write.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from clients.s3_encryption.errors import TamperedMetadataError, UnknownFormatError
from clients.s3_encryption.formats import (
    CBC_CIPHER_ALIASES,
    CBC_IV_LENGTH,
    GCM_IV_LENGTH,
    KEY_COMMITMENT_LENGTH,
    MESSAGE_ID_LENGTH,
    V3_WRAP_CODES,
    ContentAlgorithm,
    FormatVersion,
    WrapAlgorithm,
)

# V1 / V2 keys
KEY_V1 = "x-amz-key"
KEY_V2 = "x-amz-key-v2"
WRAP_ALGORITHM = "x-amz-wrap-alg"
MATERIALS_DESCRIPTION = "x-amz-matdesc"
CONTENT_IV = "x-amz-iv"
CONTENT_CIPHER = "x-amz-cek-alg"
TAG_LENGTH = "x-amz-tag-len"
# V3 keys
CONTENT_CIPHER_V3 = "x-amz-c"
KEY_V3 = "x-amz-3"
MATERIALS_DESCRIPTION_V3 = "x-amz-m"
ENCRYPTION_CONTEXT_V3 = "x-amz-t"
WRAP_ALGORITHM_V3 = "x-amz-w"
KEY_COMMITMENT_V3 = "x-amz-d"
MESSAGE_ID_V3 = "x-amz-i"
# Marker on the instruction-file object itself.
INSTRUCTION_FILE_MARKER = "x-amz-crypto-instr-file"

DEFAULT_INSTRUCTION_FILE_SUFFIX = ".instruction"
INSTRUCTION_FILE_OBJECT_METADATA: dict[str, str] = {INSTRUCTION_FILE_MARKER: ""}
MAX_INSTRUCTION_FILE_SIZE = 64 * 1024
"""An honest instruction file is a few hundred bytes; refuse to parse anything huge."""

INSTRUCTION_FILE_KEYS = frozenset(
    {
        KEY_V1,
        KEY_V2,
        WRAP_ALGORITHM,
        MATERIALS_DESCRIPTION,
        CONTENT_IV,
        CONTENT_CIPHER,
        TAG_LENGTH,
        INSTRUCTION_FILE_MARKER,
        CONTENT_CIPHER_V3,
        KEY_V3,
        MATERIALS_DESCRIPTION_V3,
        ENCRYPTION_CONTEXT_V3,
        WRAP_ALGORITHM_V3,
        KEY_COMMITMENT_V3,
        MESSAGE_ID_V3,
    }
)
"""Python S3EC's allow-list: the only keys an instruction file may hold."""

ENVELOPE_KEYS = INSTRUCTION_FILE_KEYS - {INSTRUCTION_FILE_MARKER}
"""Metadata keys that belong to the envelope; callers may not set them as user metadata."""

V3_OBJECT_ONLY_KEYS = frozenset({CONTENT_CIPHER_V3, KEY_COMMITMENT_V3, MESSAGE_ID_V3})
"""V3 keys that always live on the object, never in the instruction file."""

_DATA_KEY_NAMES = (KEY_V1, KEY_V2, KEY_V3)
_V1_V2_CONTENT_KEYS = frozenset({CONTENT_CIPHER, CONTENT_IV, WRAP_ALGORITHM})
_V3_KEYS = frozenset(
    {
        CONTENT_CIPHER_V3,
        KEY_V3,
        MATERIALS_DESCRIPTION_V3,
        ENCRYPTION_CONTEXT_V3,
        WRAP_ALGORITHM_V3,
        KEY_COMMITMENT_V3,
        MESSAGE_ID_V3,
    }
)
_V1_V2_KEYS = frozenset(
    {KEY_V1, KEY_V2, WRAP_ALGORITHM, MATERIALS_DESCRIPTION, CONTENT_IV, CONTENT_CIPHER, TAG_LENGTH}
)
# Java infers the V1 wrap from the EDK size: AES-ECB of a 32-byte key is 48 bytes, RSA is more.
_V1_AES_MAX_KEY_LENGTH = 48


@dataclass(frozen=True)
class Envelope:
    """Everything needed to unwrap the data key and decrypt the content of one object.

    ``materials_description`` is the KMS encryption context for KMS wraps (including
    ``aws:x-amz-cek-alg``) and the raw keyring's materials description otherwise.
    ``iv`` is set for V1/V2, ``message_id`` and ``key_commitment`` for V3.
    """

    version: FormatVersion
    content_algorithm: ContentAlgorithm
    wrap_algorithm: WrapAlgorithm
    encrypted_data_key: bytes = field(repr=False)
    materials_description: Mapping[str, str] = field(default_factory=dict)
    iv: bytes | None = None
    message_id: bytes | None = None
    key_commitment: bytes | None = None
    from_instruction_file: bool = False

    @property
    def is_legacy(self) -> bool:
        """True when reading needs ``allow_legacy_formats`` (V1, CBC, or a legacy wrap)."""
        return (
            self.version is FormatVersion.V1
            or self.content_algorithm.is_legacy
            or self.wrap_algorithm.is_legacy
        )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _json_map(mapping: Mapping[str, str]) -> str:
    # Compact and sorted: metadata space is scarce (2 KB) and readers parse, not compare, it.
    return json.dumps(dict(mapping), separators=(",", ":"), sort_keys=True)


def encode_envelope(envelope: Envelope) -> dict[str, str]:
    """All envelope keys of ``envelope`` as S3 user metadata (no ``x-amz-meta-`` prefix).

    Writes V2 and V3 exactly as the official clients do. Raises ValueError for V1 (read-only)
    or for a legacy algorithm, which this client never writes.
    """
    if envelope.is_legacy:
        raise ValueError("legacy formats and algorithms are read-only")
    if envelope.version is FormatVersion.V3:
        if envelope.message_id is None or envelope.key_commitment is None:
            raise ValueError("a V3 envelope needs a message id and a key commitment")
        metadata = {
            CONTENT_CIPHER_V3: envelope.content_algorithm.value,
            KEY_V3: _b64(envelope.encrypted_data_key),
            WRAP_ALGORITHM_V3: envelope.wrap_algorithm.v3_code,
            KEY_COMMITMENT_V3: _b64(envelope.key_commitment),
            MESSAGE_ID_V3: _b64(envelope.message_id),
        }
        if envelope.wrap_algorithm is WrapAlgorithm.KMS_CONTEXT:
            metadata[ENCRYPTION_CONTEXT_V3] = _json_map(envelope.materials_description)
        elif envelope.materials_description:
            # The spec writes x-amz-m for raw keyrings only when there is something in it.
            metadata[MATERIALS_DESCRIPTION_V3] = _json_map(envelope.materials_description)
        return metadata
    if envelope.iv is None:
        raise ValueError("a V2 envelope needs a content IV")
    return {
        KEY_V2: _b64(envelope.encrypted_data_key),
        CONTENT_IV: _b64(envelope.iv),
        CONTENT_CIPHER: envelope.content_algorithm.value,
        TAG_LENGTH: "128",
        WRAP_ALGORITHM: envelope.wrap_algorithm.value,
        MATERIALS_DESCRIPTION: _json_map(envelope.materials_description),
    }


def split_for_instruction_file(envelope: Envelope) -> tuple[dict[str, str], bytes]:
    """Split ``envelope`` into (object metadata, instruction-file body) as Java writes them.

    V3 keeps the content keys (``x-amz-c``/``d``/``i``) on the object so re-wrapping the data
    key cannot break the commitment; V2 moves everything into the instruction file.
    """
    full = encode_envelope(envelope)
    if envelope.version is FormatVersion.V3:
        on_object = {k: v for k, v in full.items() if k in V3_OBJECT_ONLY_KEYS}
        in_file = {k: v for k, v in full.items() if k not in V3_OBJECT_ONLY_KEYS}
    else:
        on_object, in_file = {}, full
    return on_object, json.dumps(in_file, separators=(",", ":"), sort_keys=True).encode("ascii")


def parse_instruction_file(body: bytes) -> dict[str, str]:
    """Parse an instruction file body: a flat JSON object of allow-listed string keys.

    Raises TamperedMetadataError if it is too large, not JSON, not a flat string map, or holds
    a key outside the S3EC allow-list.
    """
    if len(body) > MAX_INSTRUCTION_FILE_SIZE:
        raise TamperedMetadataError("instruction file is implausibly large")
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise TamperedMetadataError("instruction file is not valid JSON") from exc
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
    ):
        raise TamperedMetadataError("instruction file must be a JSON object of strings")
    unknown = set(parsed) - INSTRUCTION_FILE_KEYS
    if unknown:
        raise TamperedMetadataError(f"instruction file holds non-S3EC keys: {sorted(unknown)}")
    return parsed


InstructionFileLoader = Callable[[], Mapping[str, str] | None]
"""Fetches and parses the instruction file; returns None if there is none."""


def decode_envelope(
    object_metadata: Mapping[str, str], load_instruction_file: InstructionFileLoader
) -> Envelope:
    """Detect the format of an object from its metadata (and instruction file) and decode it.

    ``load_instruction_file`` is called only when the object metadata says the envelope lives
    in ``<key>.instruction``.

    Raises UnknownFormatError if the object has no envelope (or an unknown algorithm), and
    TamperedMetadataError if the metadata is malformed or mixes format versions.
    """
    # S3 returns keys lower-cased; Go writes some optional keys as empty strings: treat as absent.
    meta = {k.lower(): v for k, v in object_metadata.items() if v != ""}
    envelope_on_object = {k: v for k, v in meta.items() if k in ENVELOPE_KEYS}

    def has(*keys: str) -> bool:
        return all(k in meta for k in keys)

    from_file = False
    v1_v2_on_object = has(CONTENT_IV) and (has(KEY_V1) or has(KEY_V2))
    v3_on_object = has(KEY_V3, KEY_COMMITMENT_V3, MESSAGE_ID_V3, CONTENT_CIPHER_V3)
    if v1_v2_on_object or v3_on_object:
        merged = envelope_on_object
    elif has(CONTENT_CIPHER_V3, KEY_COMMITMENT_V3, MESSAGE_ID_V3) and not has(KEY_V3):
        instruction = _require_instruction_file(load_instruction_file, "V3")
        forbidden = set(instruction) & V3_OBJECT_ONLY_KEYS
        if forbidden:
            raise TamperedMetadataError(
                f"instruction file holds object-only V3 keys {sorted(forbidden)}: tampered"
            )
        merged = {**_without_marker(instruction), **envelope_on_object}
        from_file = True
    elif not any(k in meta for k in _DATA_KEY_NAMES):
        if not envelope_on_object:
            instruction = _require_instruction_file(load_instruction_file, None)
        else:
            instruction = _require_instruction_file(load_instruction_file, "V1/V2")
        content_keys_on_object = set(envelope_on_object) & _V1_V2_CONTENT_KEYS
        if content_keys_on_object:
            raise TamperedMetadataError(
                "V1/V2 instruction-file object also carries content metadata "
                f"{sorted(content_keys_on_object)} on the object: tampered"
            )
        merged = {**_without_marker(instruction), **envelope_on_object}
        from_file = True
    else:
        raise UnknownFormatError(
            "incomplete client-side encryption metadata: keys "
            f"{sorted(envelope_on_object)} match no S3 Encryption Client format"
        )
    return _decode_merged(merged, from_instruction_file=from_file)


def _without_marker(instruction: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in instruction.items() if k != INSTRUCTION_FILE_MARKER}


def _require_instruction_file(
    load_instruction_file: InstructionFileLoader, expected: str | None
) -> Mapping[str, str]:
    instruction = load_instruction_file()
    if instruction is None:
        if expected is None:
            raise UnknownFormatError(
                "object is not client-side encrypted: it has no S3 Encryption Client "
                "metadata and no instruction file"
            )
        raise UnknownFormatError(f"{expected} object's instruction file is missing")
    return {k.lower(): v for k, v in instruction.items() if v != ""}


def _decode_merged(meta: Mapping[str, str], *, from_instruction_file: bool) -> Envelope:
    data_keys = [k for k in _DATA_KEY_NAMES if k in meta]
    if len(data_keys) > 1:
        raise TamperedMetadataError(
            f"metadata holds data keys of several format versions {data_keys}: tampered"
        )
    if not data_keys:
        raise UnknownFormatError("no encrypted data key in the envelope metadata")
    if data_keys[0] == KEY_V3:
        mixed = set(meta) & _V1_V2_KEYS
        if mixed:
            raise TamperedMetadataError(f"V3 envelope also holds V1/V2 keys {sorted(mixed)}")
        return _decode_v3(meta, from_instruction_file)
    # A V1/V2 data key next to V3 content keys is the forged-instruction-file downgrade attack.
    mixed = set(meta) & _V3_KEYS
    if mixed:
        raise TamperedMetadataError(f"V1/V2 envelope also holds V3 keys {sorted(mixed)}")
    return _decode_v1_v2(meta, data_keys[0], from_instruction_file)


def _decode_v3(meta: Mapping[str, str], from_instruction_file: bool) -> Envelope:
    for key in (CONTENT_CIPHER_V3, WRAP_ALGORITHM_V3, KEY_COMMITMENT_V3, MESSAGE_ID_V3):
        if key not in meta:
            raise UnknownFormatError(f"V3 envelope lacks {key}")
    if meta[CONTENT_CIPHER_V3] != ContentAlgorithm.AES_GCM_COMMITTING.value:
        raise UnknownFormatError(f"unsupported V3 content algorithm {meta[CONTENT_CIPHER_V3]!r}")
    wrap = V3_WRAP_CODES.get(meta[WRAP_ALGORITHM_V3])
    if wrap is None:
        raise UnknownFormatError(f"unsupported V3 wrap algorithm {meta[WRAP_ALGORITHM_V3]!r}")
    description_key = (
        ENCRYPTION_CONTEXT_V3 if wrap is WrapAlgorithm.KMS_CONTEXT else MATERIALS_DESCRIPTION_V3
    )
    return Envelope(
        version=FormatVersion.V3,
        content_algorithm=ContentAlgorithm.AES_GCM_COMMITTING,
        wrap_algorithm=wrap,
        encrypted_data_key=_b64decode(meta, KEY_V3),
        materials_description=_parse_json_map(meta.get(description_key), description_key),
        message_id=_b64decode(meta, MESSAGE_ID_V3, MESSAGE_ID_LENGTH),
        key_commitment=_b64decode(meta, KEY_COMMITMENT_V3, KEY_COMMITMENT_LENGTH),
        from_instruction_file=from_instruction_file,
    )


def _decode_v1_v2(meta: Mapping[str, str], key_name: str, from_instruction_file: bool) -> Envelope:
    version = FormatVersion.V1 if key_name == KEY_V1 else FormatVersion.V2
    if CONTENT_IV not in meta:
        raise UnknownFormatError(f"{version.name} envelope lacks {CONTENT_IV}")
    cipher = meta.get(CONTENT_CIPHER)
    if cipher is None or cipher in CBC_CIPHER_ALIASES:
        content, iv_length = ContentAlgorithm.AES_CBC, CBC_IV_LENGTH
    elif cipher == ContentAlgorithm.AES_GCM.value:
        content, iv_length = ContentAlgorithm.AES_GCM, GCM_IV_LENGTH
        if meta.get(TAG_LENGTH, "128") != "128":
            raise UnknownFormatError(f"unsupported GCM tag length {meta[TAG_LENGTH]!r}")
    else:
        raise UnknownFormatError(f"unsupported content algorithm {cipher!r}")
    encrypted_data_key = _b64decode(meta, key_name)
    label = meta.get(WRAP_ALGORITHM)
    if label is None:
        if version is FormatVersion.V2:
            raise UnknownFormatError(f"V2 envelope lacks {WRAP_ALGORITHM}")
        if MATERIALS_DESCRIPTION not in meta:
            raise UnknownFormatError(f"V1 envelope lacks {MATERIALS_DESCRIPTION}")
        small = len(encrypted_data_key) <= _V1_AES_MAX_KEY_LENGTH
        wrap = WrapAlgorithm.AES if small else WrapAlgorithm.RSA
    else:
        try:
            wrap = WrapAlgorithm(label)
        except ValueError:
            raise UnknownFormatError(f"unsupported wrap algorithm {label!r}") from None
    return Envelope(
        version=version,
        content_algorithm=content,
        wrap_algorithm=wrap,
        encrypted_data_key=encrypted_data_key,
        materials_description=_parse_json_map(meta.get(MATERIALS_DESCRIPTION), "x-amz-matdesc"),
        iv=_b64decode(meta, CONTENT_IV, iv_length),
        from_instruction_file=from_instruction_file,
    )


def _b64decode(meta: Mapping[str, str], key: str, length: int | None = None) -> bytes:
    try:
        value = base64.b64decode(meta[key], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TamperedMetadataError(f"{key} is not valid base64") from exc
    if length is not None and len(value) != length:
        raise TamperedMetadataError(f"{key} must be {length} bytes, not {len(value)}")
    if not value:
        raise TamperedMetadataError(f"{key} is empty")
    return value


def _parse_json_map(text: str | None, key: str) -> dict[str, str]:
    if text is None:
        return {}
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise TamperedMetadataError(f"{key} is not valid JSON") from exc
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
    ):
        raise TamperedMetadataError(f"{key} must be a JSON object of strings")
    return parsed
