"""Ciphertext blob framing and the canonical encryption-context encoding (docs/formats.md)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backends.base import BACKEND_CODES, NONCE_SIZE, TAG_SIZE
from kms_service.domain.ciphertext import (
    FORMAT_VERSION,
    MATERIAL_ID_BYTES,
    MalformedCiphertextError,
    associated_data,
    decode_blob,
    encode_blob,
    encode_context,
    encode_header,
)

KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
MRK_ID = "mrk-1234abcd12ab34cd56ef1234567890ab"
MATERIAL_ID = "ab" * 32
NONCE = bytes(range(NONCE_SIZE))
SEALED = b"ciphertext" + b"T" * TAG_SIZE

contexts = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=4)


def test_header_layout_matches_the_documented_format() -> None:
    """version, backend code, key id length, key id, 32-byte material id."""
    header = encode_header(BACKEND_CODES["software"], KEY_ID, MATERIAL_ID)
    assert header[0] == FORMAT_VERSION == 1
    assert header[1] == BACKEND_CODES["software"]
    assert header[2] == len(KEY_ID)
    assert header[3 : 3 + len(KEY_ID)] == KEY_ID.encode()
    assert header[3 + len(KEY_ID) :] == bytes.fromhex(MATERIAL_ID)
    assert len(header) == 3 + len(KEY_ID) + MATERIAL_ID_BYTES


@pytest.mark.parametrize("key_id", [KEY_ID, MRK_ID])
@pytest.mark.parametrize("backend", sorted(BACKEND_CODES))
def test_blob_round_trip(key_id: str, backend: str) -> None:
    """Every field written comes back, multi-region ids included."""
    header = encode_header(BACKEND_CODES[backend], key_id, MATERIAL_ID)
    blob = encode_blob(header, NONCE, SEALED)
    parsed = decode_blob(blob)
    assert parsed.backend_code == BACKEND_CODES[backend]
    assert parsed.key_id == key_id
    assert parsed.material_id == MATERIAL_ID
    assert parsed.nonce == NONCE
    assert parsed.sealed == SEALED
    assert parsed.header == header
    assert blob == header + NONCE + SEALED


def _valid_blob() -> bytes:
    return encode_blob(encode_header(1, KEY_ID, MATERIAL_ID), NONCE, SEALED)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"\x01",
        b"\x01\x01",
        b"\x02" + _valid_blob()[1:],  # unknown format version
        b"\x00" + _valid_blob()[1:],
        _valid_blob()[:2] + b"\x00" + _valid_blob()[3:],  # empty key id
        _valid_blob()[: 3 + len(KEY_ID) + MATERIAL_ID_BYTES + NONCE_SIZE + TAG_SIZE - 1],
        _valid_blob()[:2] + b"\xff" + _valid_blob()[3:],  # key id longer than the blob
        b"\x01\x01\x04\xff\xfe\xfd\xfc" + bytes(MATERIAL_ID_BYTES + NONCE_SIZE + TAG_SIZE),
    ],
    ids=[
        "empty",
        "one-byte",
        "two-bytes",
        "version-2",
        "version-0",
        "empty-key-id",
        "truncated-tag",
        "key-id-overflows",
        "non-ascii-key-id",
    ],
)
def test_malformed_blobs_are_rejected(blob: bytes) -> None:
    """Anything not written by this module raises MalformedCiphertextError (nothing else)."""
    with pytest.raises(MalformedCiphertextError):
        decode_blob(blob)


def test_shortest_valid_blob_has_an_empty_ciphertext_and_a_tag() -> None:
    """Header + nonce + tag is the minimum (an empty plaintext is never sent, but parses)."""
    header = encode_header(1, KEY_ID, MATERIAL_ID)
    parsed = decode_blob(header + NONCE + b"t" * TAG_SIZE)
    assert parsed.sealed == b"t" * TAG_SIZE


def test_context_encoding_vector() -> None:
    """Count, then big-endian u32 length-prefixed UTF-8 key and value, keys sorted."""
    encoded = encode_context({"b": "2", "a": "1"})
    expected = (
        struct.pack(">I", 2)
        + struct.pack(">I", 1)
        + b"a"
        + struct.pack(">I", 1)
        + b"1"
        + struct.pack(">I", 1)
        + b"b"
        + struct.pack(">I", 1)
        + b"2"
    )
    assert encoded == expected


def test_context_encoding_is_unambiguous() -> None:
    """{"ab":"c"} and {"a":"bc"} (docs/formats.md's example) must not collide."""
    assert encode_context({"ab": "c"}) != encode_context({"a": "bc"})
    assert encode_context({"a": "b", "c": "d"}) != encode_context({"a": "bcd"})
    assert encode_context({"": "ab"}) != encode_context({"a": "b"})


def test_absent_and_empty_context_encode_the_same() -> None:
    assert encode_context(None) == encode_context({}) == struct.pack(">I", 0)


def test_context_keys_sort_by_utf8_bytes() -> None:
    """Sorting is on UTF-8 bytes, so non-ASCII keys have one canonical order."""
    encoded = encode_context({"é": "1", "z": "2"})
    assert encoded.index(b"z") < encoded.index("é".encode())


def test_associated_data_is_header_then_context() -> None:
    header = encode_header(1, KEY_ID, MATERIAL_ID)
    assert associated_data(header, {"k": "v"}) == header + encode_context({"k": "v"})


@given(contexts, contexts)
def test_context_encoding_is_injective(first: dict[str, str], second: dict[str, str]) -> None:
    """Two contexts encode the same exactly when they are equal."""
    assert (encode_context(first) == encode_context(second)) == (first == second)


@given(contexts)
def test_context_encoding_ignores_insertion_order(context: dict[str, str]) -> None:
    reversed_context = dict(reversed(list(context.items())))
    assert encode_context(context) == encode_context(reversed_context)


@given(st.binary(min_size=0, max_size=64))
def test_decoding_arbitrary_bytes_never_raises_anything_else(data: bytes) -> None:
    """A caller's random blob is either parsed or MalformedCiphertextError, never a crash."""
    try:
        parsed = decode_blob(data)
    except MalformedCiphertextError:
        return
    assert parsed.header + parsed.nonce + parsed.sealed == data
