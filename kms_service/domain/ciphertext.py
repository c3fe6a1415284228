"""Ciphertext blob framing and the canonical encryption-context encoding.

Blob layout (format version 1)::

    offset  size  field
    0       1     format version (0x01)
    1       1     backend code (backends.base.BACKEND_CODES)
    2       1     key id length N
    3       N     key id, ASCII (UUID or mrk- id)
    3+N     32    key-material id (the 64-hex KeyMaterialId, as bytes)
    35+N    12    AES-GCM nonce
    47+N    ...   AES-GCM ciphertext || 16-byte tag

Everything before the nonce is the header. The AES-GCM associated data is the header followed
by the canonical encoding of the encryption context, so neither can be changed without the tag
failing. Any blob that does not parse is reported as ``InvalidCiphertextException`` by the
caller; this module raises only :class:`MalformedCiphertextError`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

from backends.base import NONCE_SIZE, TAG_SIZE

FORMAT_VERSION = 1
MATERIAL_ID_BYTES = 32
_U32 = struct.Struct(">I")


class MalformedCiphertextError(ValueError):
    """The bytes are not a ciphertext blob this service wrote."""


@dataclass(frozen=True)
class CiphertextBlob:
    """A parsed blob. ``material_id`` is 64 lowercase hex digits."""

    backend_code: int
    key_id: str
    material_id: str
    nonce: bytes
    sealed: bytes
    header: bytes


def encode_header(backend_code: int, key_id: str, material_id: str) -> bytes:
    """The blob header for a key id and material id (see the module docstring)."""
    key_bytes = key_id.encode("ascii")
    return (
        bytes((FORMAT_VERSION, backend_code, len(key_bytes)))
        + key_bytes
        + bytes.fromhex(material_id)
    )


def encode_blob(header: bytes, nonce: bytes, sealed: bytes) -> bytes:
    """Join a header, the nonce and ``ciphertext || tag`` into one blob."""
    return header + nonce + sealed


def decode_blob(blob: bytes) -> CiphertextBlob:
    """Parse a blob; raises :class:`MalformedCiphertextError` for anything malformed."""
    if len(blob) < 3 or blob[0] != FORMAT_VERSION:
        raise MalformedCiphertextError("unknown format")
    key_length = blob[2]
    header_end = 3 + key_length + MATERIAL_ID_BYTES
    if key_length == 0 or len(blob) < header_end + NONCE_SIZE + TAG_SIZE:
        raise MalformedCiphertextError("truncated")
    try:
        key_id = blob[3 : 3 + key_length].decode("ascii")
    except UnicodeDecodeError:
        raise MalformedCiphertextError("bad key id") from None
    return CiphertextBlob(
        backend_code=blob[1],
        key_id=key_id,
        material_id=blob[3 + key_length : header_end].hex(),
        nonce=blob[header_end : header_end + NONCE_SIZE],
        sealed=blob[header_end + NONCE_SIZE :],
        header=blob[:header_end],
    )


def encode_context(context: Mapping[str, str] | None) -> bytes:
    """Canonical, unambiguous bytes for an encryption context.

    Pairs are sorted by the UTF-8 bytes of their key, then written as a count followed by
    length-prefixed key and value, so ``{"ab": "c"}`` and ``{"a": "bc"}`` differ and the order
    the caller gave does not matter. An absent context and ``{}`` encode the same.
    """
    if not context:
        return _U32.pack(0)
    pairs = sorted((k.encode("utf-8"), v.encode("utf-8")) for k, v in context.items())
    parts = [_U32.pack(len(pairs))]
    for key, value in pairs:
        parts.append(_U32.pack(len(key)))
        parts.append(key)
        parts.append(_U32.pack(len(value)))
        parts.append(value)
    return b"".join(parts)


def associated_data(header: bytes, context: Mapping[str, str] | None) -> bytes:
    """The AES-GCM associated data: header, then the canonical context."""
    return header + encode_context(context)
