"""The PKCS#11 backend's encodings, checked against ``cryptography``: OAEP decoding of raw RSA
blocks (the SHA-256 path on tokens whose OAEP is SHA-1 only), DER ECDSA signatures, EC points
and the public point recovered from ``x``."""

from __future__ import annotations

import hashlib
import os

import pytest
from asn1crypto.core import OctetString  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from backends.base import DecryptionFailedError, MaterialRejectedError
from backends.pkcs11_encoding import (
    ec_point_bytes,
    ec_public_point_from_x,
    ecdsa_der,
    oaep_decode,
    peer_point,
)

KEY = rsa.generate_private_key(65537, 2048)
MODULUS_BYTES = 256
DIGESTS = {"SHA_1": hashes.SHA1, "SHA_256": hashes.SHA256}


def raw_block(ciphertext: bytes) -> bytes:
    """What CKM_RSA_X_509 returns: c^d mod n, left-padded to the modulus length."""
    numbers = KEY.private_numbers()
    value = pow(int.from_bytes(ciphertext, "big"), numbers.d, numbers.public_numbers.n)
    return value.to_bytes(MODULUS_BYTES, "big")


def encrypt(plaintext: bytes, hash_name: str) -> bytes:
    digest = DIGESTS[hash_name]
    return KEY.public_key().encrypt(
        plaintext, padding.OAEP(mgf=padding.MGF1(digest()), algorithm=digest(), label=None)
    )


@pytest.mark.parametrize("hash_name", sorted(DIGESTS))
@pytest.mark.parametrize("size", [0, 1, 32, 190])
def test_oaep_decode_recovers_what_cryptography_encrypted(hash_name: str, size: int) -> None:
    plaintext = os.urandom(size)
    block = raw_block(encrypt(plaintext, hash_name))
    assert oaep_decode(block, MODULUS_BYTES, hash_name) == plaintext


def _tamper(block: bytes, index: int) -> bytes:
    return block[:index] + bytes([block[index] ^ 0x40]) + block[index + 1 :]


@pytest.mark.parametrize("index", [0, 1, 40, 100, 255])
def test_oaep_decode_rejects_every_damaged_block_the_same_way(index: int) -> None:
    block = raw_block(encrypt(b"secret", "SHA_256"))
    with pytest.raises(DecryptionFailedError) as caught:
        oaep_decode(_tamper(block, index), MODULUS_BYTES, "SHA_256")
    assert str(caught.value) == ""


def test_oaep_decode_rejects_the_other_hash_and_random_blocks() -> None:
    block = raw_block(encrypt(b"secret", "SHA_1"))
    with pytest.raises(DecryptionFailedError):
        oaep_decode(block, MODULUS_BYTES, "SHA_256")
    with pytest.raises(DecryptionFailedError):
        oaep_decode(b"\x00" + os.urandom(MODULUS_BYTES - 1), MODULUS_BYTES, "SHA_256")
    with pytest.raises(DecryptionFailedError):
        oaep_decode(block + b"\x00", MODULUS_BYTES, "SHA_1")


def test_ecdsa_der_verifies_in_cryptography() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    digest = hashlib.sha384(b"m").digest()
    r, s = utils.decode_dss_signature(key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA384()))))
    raw = r.to_bytes(48, "big") + s.to_bytes(48, "big")
    assert utils.decode_dss_signature(ecdsa_der(raw)) == (r, s)


def test_ec_point_bytes_accepts_der_and_bare_points() -> None:
    point = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    assert ec_point_bytes(OctetString(point).dump(), 32) == point
    assert ec_point_bytes(point, 32) == point


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP521R1(), ec.SECP256K1()])
def test_public_point_is_recovered_from_x_and_a_signature(curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve)
    field = (curve.key_size + 7) // 8
    x = key.public_key().public_numbers().x.to_bytes(field, "big")
    digest = hashlib.sha256(b"pick y").digest()
    r, s = utils.decode_dss_signature(key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256()))))
    raw = r.to_bytes(field, "big") + s.to_bytes(field, "big")

    public = ec_public_point_from_x(curve, x, digest, hashes.SHA256(), raw)

    assert public.public_numbers() == key.public_key().public_numbers()
    other = ec.generate_private_key(curve)
    r2, s2 = utils.decode_dss_signature(
        other.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    )
    with pytest.raises(MaterialRejectedError):
        ec_public_point_from_x(
            curve, x, digest, hashes.SHA256(), r2.to_bytes(field, "big") + s2.to_bytes(field, "big")
        )


def test_peer_point_refuses_other_curves_and_other_key_types() -> None:
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert peer_point(p256.public_bytes(*spki), ec.SECP256R1())[:1] == b"\x04"
    with pytest.raises(MaterialRejectedError):
        peer_point(p256.public_bytes(*spki), ec.SECP384R1())
    with pytest.raises(MaterialRejectedError):
        peer_point(KEY.public_key().public_bytes(*spki), ec.SECP256R1())
    with pytest.raises(MaterialRejectedError):
        peer_point(b"\x30\x00", ec.SECP256R1())
