"""Property tests (hypothesis) against the real server: any plaintext and any encryption
context round-trip; any single-byte change of the blob, or any change of the context, fails
with InvalidCiphertextException."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.support.kms_ops import KmsClient, account_client, create_key
from tests.support.server import RunningServer

#: Modest counts: every example is a few HTTP round trips on a shared 2-core machine.
PROPERTY_SETTINGS = settings(
    max_examples=75,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

plaintexts = st.binary(min_size=1, max_size=4096)
context_text = st.text(min_size=0, max_size=40)
contexts = st.dictionaries(st.text(min_size=1, max_size=40), context_text, max_size=6)


@pytest.fixture(scope="module")
def property_kms(kms_server: RunningServer) -> Iterator[tuple[KmsClient, str]]:
    """One client in a fresh account and one key for every example of this module."""
    client = account_client(kms_server.endpoint)
    yield client, create_key(client)["KeyId"]


def _decrypt_error(client: KmsClient, blob: bytes, context: dict[str, str]) -> str:
    """The error code (and message) Decrypt gives, or ``"succeeded"``."""
    try:
        client.decrypt(CiphertextBlob=blob, EncryptionContext=context)
    except ClientError as error:
        return f"{error.response['Error']['Code']}:{error.response['Error'].get('Message', '')}"
    return "succeeded"


@PROPERTY_SETTINGS
@given(plaintext=plaintexts, context=contexts)
def test_round_trip(
    property_kms: tuple[KmsClient, str], plaintext: bytes, context: dict[str, str]
) -> None:
    client, key_id = property_kms
    blob = client.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=context)[
        "CiphertextBlob"
    ]
    assert len(blob) <= 6144
    reordered = dict(reversed(list(context.items())))
    decrypted = client.decrypt(CiphertextBlob=blob, EncryptionContext=reordered)
    assert decrypted["Plaintext"] == plaintext
    assert decrypted["KeyId"].endswith(f":key/{key_id}")


@PROPERTY_SETTINGS
@given(data=st.data(), plaintext=st.binary(min_size=1, max_size=64), context=contexts)
def test_any_single_byte_change_fails(
    property_kms: tuple[KmsClient, str],
    data: st.DataObject,
    plaintext: bytes,
    context: dict[str, str],
) -> None:
    client, key_id = property_kms
    blob = client.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=context)[
        "CiphertextBlob"
    ]
    index = data.draw(st.integers(min_value=0, max_value=len(blob) - 1), label="index")
    flip = data.draw(st.integers(min_value=1, max_value=255), label="xor")
    tampered = bytearray(blob)
    tampered[index] ^= flip
    assert _decrypt_error(client, bytes(tampered), context) == "InvalidCiphertextException:"


@PROPERTY_SETTINGS
@given(original=contexts, changed=contexts)
def test_any_context_change_fails(
    property_kms: tuple[KmsClient, str], original: dict[str, str], changed: dict[str, str]
) -> None:
    assume(original != changed)
    client, key_id = property_kms
    blob = client.encrypt(KeyId=key_id, Plaintext=b"bound", EncryptionContext=original)[
        "CiphertextBlob"
    ]
    assert _decrypt_error(client, blob, changed) == "InvalidCiphertextException:"


@PROPERTY_SETTINGS
@given(
    pairs=st.lists(
        st.tuples(st.text(min_size=1, max_size=8), context_text),
        min_size=1,
        max_size=4,
        unique_by=lambda pair: pair[0],
    ),
    data=st.data(),
)
def test_moving_characters_between_key_and_value_fails(
    property_kms: tuple[KmsClient, str], pairs: list[tuple[str, str]], data: st.DataObject
) -> None:
    """Re-splitting the concatenated key+value of one pair is a different context."""
    client, key_id = property_kms
    original = dict(pairs)
    victim = data.draw(st.sampled_from(sorted(original)), label="pair")
    joined = victim + original[victim]
    cut = data.draw(st.integers(min_value=1, max_value=len(joined)), label="cut")
    assume(cut != len(victim))
    changed = {k: v for k, v in original.items() if k != victim}
    assume(joined[:cut] not in changed)
    changed[joined[:cut]] = joined[cut:]
    blob = client.encrypt(KeyId=key_id, Plaintext=b"split", EncryptionContext=original)[
        "CiphertextBlob"
    ]
    assert _decrypt_error(client, blob, changed) == "InvalidCiphertextException:"
