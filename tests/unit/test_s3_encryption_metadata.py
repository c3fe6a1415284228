"""Envelope metadata: exact keys written, format detection, instruction files, confusion."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping

import pytest

from clients.s3_encryption.errors import TamperedMetadataError, UnknownFormatError
from clients.s3_encryption.formats import ContentAlgorithm, FormatVersion, WrapAlgorithm
from clients.s3_encryption.metadata import (
    Envelope,
    decode_envelope,
    encode_envelope,
    parse_instruction_file,
    split_for_instruction_file,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


V3_KMS = Envelope(
    version=FormatVersion.V3,
    content_algorithm=ContentAlgorithm.AES_GCM_COMMITTING,
    wrap_algorithm=WrapAlgorithm.KMS_CONTEXT,
    encrypted_data_key=b"kms-blob" * 20,
    materials_description={"tenant": "t1", "aws:x-amz-cek-alg": "115"},
    message_id=bytes(range(28)),
    key_commitment=bytes(range(28, 56)),
)
V2_KMS = Envelope(
    version=FormatVersion.V2,
    content_algorithm=ContentAlgorithm.AES_GCM,
    wrap_algorithm=WrapAlgorithm.KMS_CONTEXT,
    encrypted_data_key=b"kms-blob" * 20,
    materials_description={"aws:x-amz-cek-alg": "AES/GCM/NoPadding"},
    iv=bytes(12),
)


def no_instruction_file() -> None:
    raise AssertionError("the instruction file must not be fetched for this object")


def loader(instruction: Mapping[str, str] | None):
    return lambda: instruction


def test_v3_kms_writes_exactly_the_official_keys() -> None:
    metadata = encode_envelope(V3_KMS)
    assert set(metadata) == {"x-amz-c", "x-amz-3", "x-amz-w", "x-amz-d", "x-amz-i", "x-amz-t"}
    assert metadata["x-amz-c"] == "115"
    assert metadata["x-amz-w"] == "12"
    assert json.loads(metadata["x-amz-t"]) == {"tenant": "t1", "aws:x-amz-cek-alg": "115"}
    assert base64.b64decode(metadata["x-amz-i"]) == bytes(range(28))


def test_v3_raw_keyring_writes_matdesc_only_when_not_empty() -> None:
    raw = Envelope(
        version=FormatVersion.V3,
        content_algorithm=ContentAlgorithm.AES_GCM_COMMITTING,
        wrap_algorithm=WrapAlgorithm.AES_GCM,
        encrypted_data_key=bytes(60),
        message_id=bytes(28),
        key_commitment=bytes(28),
    )
    assert "x-amz-m" not in encode_envelope(raw)
    assert "x-amz-t" not in encode_envelope(raw)
    labelled = Envelope(**{**raw.__dict__, "materials_description": {"key": "one"}})
    assert json.loads(encode_envelope(labelled)["x-amz-m"]) == {"key": "one"}
    rsa = Envelope(**{**raw.__dict__, "wrap_algorithm": WrapAlgorithm.RSA_OAEP_SHA1})
    assert encode_envelope(rsa)["x-amz-w"] == "22"


def test_v2_writes_exactly_the_official_keys() -> None:
    metadata = encode_envelope(V2_KMS)
    assert metadata == {
        "x-amz-key-v2": b64(b"kms-blob" * 20),
        "x-amz-iv": b64(bytes(12)),
        "x-amz-cek-alg": "AES/GCM/NoPadding",
        "x-amz-tag-len": "128",
        "x-amz-wrap-alg": "kms+context",
        "x-amz-matdesc": '{"aws:x-amz-cek-alg":"AES/GCM/NoPadding"}',
    }


@pytest.mark.parametrize("envelope", [V2_KMS, V3_KMS])
def test_object_metadata_round_trip(envelope: Envelope) -> None:
    assert decode_envelope(encode_envelope(envelope), no_instruction_file) == envelope


def test_legacy_envelopes_are_never_written() -> None:
    legacy = Envelope(**{**V2_KMS.__dict__, "content_algorithm": ContentAlgorithm.AES_CBC})
    with pytest.raises(ValueError, match="read-only"):
        encode_envelope(legacy)


def test_v3_instruction_file_split_keeps_content_keys_on_the_object() -> None:
    on_object, body = split_for_instruction_file(V3_KMS)
    assert set(on_object) == {"x-amz-c", "x-amz-d", "x-amz-i"}
    instruction = parse_instruction_file(body)
    assert set(instruction) == {"x-amz-3", "x-amz-w", "x-amz-t"}
    decoded = decode_envelope(on_object, loader(instruction))
    assert decoded.from_instruction_file
    assert decoded.encrypted_data_key == V3_KMS.encrypted_data_key
    assert decoded.key_commitment == V3_KMS.key_commitment


def test_v2_instruction_file_holds_everything() -> None:
    on_object, body = split_for_instruction_file(V2_KMS)
    assert on_object == {}
    decoded = decode_envelope({"user-key": "kept"}, loader(parse_instruction_file(body)))
    assert decoded.iv == V2_KMS.iv and decoded.from_instruction_file


def test_plain_object_without_instruction_file_is_unknown_format() -> None:
    with pytest.raises(UnknownFormatError, match="not client-side encrypted"):
        decode_envelope({"content-owner": "me"}, loader(None))


def test_v3_instruction_file_missing_is_reported() -> None:
    on_object, _ = split_for_instruction_file(V3_KMS)
    with pytest.raises(UnknownFormatError, match="instruction file is missing"):
        decode_envelope(on_object, loader(None))


@pytest.mark.parametrize("forbidden", ["x-amz-c", "x-amz-d", "x-amz-i"])
def test_v3_instruction_file_may_not_carry_object_only_keys(forbidden: str) -> None:
    on_object, body = split_for_instruction_file(V3_KMS)
    instruction = {**parse_instruction_file(body), forbidden: on_object[forbidden]}
    with pytest.raises(TamperedMetadataError, match="object-only"):
        decode_envelope(on_object, loader(instruction))


def test_forged_v2_instruction_file_for_a_v3_object_is_rejected() -> None:
    """Format confusion: swap in a V2 envelope to skip the V3 key commitment."""
    on_object, _ = split_for_instruction_file(V3_KMS)
    forged = encode_envelope(V2_KMS)
    with pytest.raises(TamperedMetadataError):
        decode_envelope(on_object, loader(forged))


def test_keys_of_two_versions_on_one_object_are_rejected() -> None:
    mixed = {**encode_envelope(V3_KMS), "x-amz-key-v2": b64(b"x" * 32), "x-amz-iv": b64(bytes(12))}
    with pytest.raises(TamperedMetadataError, match="several format versions"):
        decode_envelope(mixed, no_instruction_file)


def test_v2_keys_with_v3_content_keys_are_rejected() -> None:
    mixed = {**encode_envelope(V2_KMS), "x-amz-d": b64(bytes(28))}
    with pytest.raises(TamperedMetadataError, match="V3 keys"):
        decode_envelope(mixed, no_instruction_file)


def test_v1_v2_instruction_file_object_may_not_carry_content_metadata() -> None:
    _, body = split_for_instruction_file(V2_KMS)
    with pytest.raises(TamperedMetadataError, match="content metadata"):
        decode_envelope(
            {"x-amz-cek-alg": "AES/GCM/NoPadding"}, loader(parse_instruction_file(body))
        )


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"x-amz-3": 5}', b'{"x-amz-3": "a", "evil": "b"}', b" " * 70000],
)
def test_instruction_file_parser_is_strict(body: bytes) -> None:
    with pytest.raises(TamperedMetadataError):
        parse_instruction_file(body)


def test_instruction_file_marker_is_allowed_and_ignored() -> None:
    _, body = split_for_instruction_file(V2_KMS)
    instruction = {**parse_instruction_file(body), "x-amz-crypto-instr-file": ""}
    assert parse_instruction_file(json.dumps(instruction).encode()) == instruction
    assert decode_envelope({}, loader(instruction)).iv == V2_KMS.iv


def test_keys_are_case_insensitive_and_empty_values_absent() -> None:
    """S3 lower-cases keys; Go writes empty x-amz-m / x-amz-t entries."""
    metadata = {k.upper(): v for k, v in encode_envelope(V3_KMS).items()}
    metadata["X-AMZ-M"] = ""
    metadata["x-amz-unencrypted-content-length"] = ""
    assert decode_envelope(metadata, no_instruction_file) == V3_KMS
    without_t = {k: v for k, v in encode_envelope(V3_KMS).items() if k != "x-amz-t"}
    assert decode_envelope(without_t, no_instruction_file).materials_description == {}


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("x-amz-c", "116", UnknownFormatError),
        ("x-amz-w", "32", UnknownFormatError),
        ("x-amz-i", b64(bytes(27)), TamperedMetadataError),
        ("x-amz-d", "!!notbase64!!", TamperedMetadataError),
        ("x-amz-t", "{not json", TamperedMetadataError),
        ("x-amz-t", '{"a": 1}', TamperedMetadataError),
    ],
)
def test_bad_v3_values(key: str, value: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_envelope({**encode_envelope(V3_KMS), key: value}, no_instruction_file)


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("x-amz-cek-alg", "AES/XTS/NoPadding", UnknownFormatError),
        ("x-amz-tag-len", "96", UnknownFormatError),
        ("x-amz-wrap-alg", "ROT13", UnknownFormatError),
        ("x-amz-iv", b64(bytes(16)), TamperedMetadataError),
    ],
)
def test_bad_v2_values(key: str, value: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_envelope({**encode_envelope(V2_KMS), key: value}, no_instruction_file)


def test_incomplete_envelope_is_unknown_format() -> None:
    with pytest.raises(UnknownFormatError, match="incomplete"):
        decode_envelope({"x-amz-3": b64(b"k"), "x-amz-c": "115"}, no_instruction_file)


def test_v2_without_cek_alg_is_legacy_cbc() -> None:
    metadata = encode_envelope(V2_KMS)
    del metadata["x-amz-cek-alg"], metadata["x-amz-tag-len"]
    metadata["x-amz-iv"] = b64(bytes(16))
    metadata["x-amz-wrap-alg"] = "kms"
    envelope = decode_envelope(metadata, no_instruction_file)
    assert envelope.content_algorithm is ContentAlgorithm.AES_CBC
    assert envelope.wrap_algorithm is WrapAlgorithm.KMS
    assert envelope.is_legacy


@pytest.mark.parametrize(
    ("key_length", "wrap"), [(48, WrapAlgorithm.AES), (256, WrapAlgorithm.RSA)]
)
def test_v1_detection_infers_the_wrap_from_the_key_size(
    key_length: int, wrap: WrapAlgorithm
) -> None:
    v1 = {
        "x-amz-key": b64(os.urandom(key_length)),
        "x-amz-iv": b64(bytes(16)),
        "x-amz-matdesc": "{}",
        "x-amz-unencrypted-content-length": "5",
    }
    envelope = decode_envelope(v1, no_instruction_file)
    assert envelope.version is FormatVersion.V1
    assert envelope.content_algorithm is ContentAlgorithm.AES_CBC
    assert envelope.wrap_algorithm is wrap
    assert envelope.is_legacy


def test_v1_requires_matdesc() -> None:
    with pytest.raises(UnknownFormatError, match="matdesc"):
        decode_envelope(
            {"x-amz-key": b64(bytes(48)), "x-amz-iv": b64(bytes(16))}, no_instruction_file
        )


def test_v3_and_v2_are_not_legacy() -> None:
    assert not V3_KMS.is_legacy and not V2_KMS.is_legacy
