"""Encodings between what a PKCS#11 token returns and what AWS KMS returns: DER public keys
from key attributes, DER ECDSA signatures from ``r || s``, OAEP decoding of a raw RSA block,
and the public point of an EC key whose ``x`` coordinate the token derived.

Pure functions over public values or over the plaintext the caller receives anyway; no key
material passes through here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

from asn1crypto.core import ObjectIdentifier, OctetString  # type: ignore[import-untyped]
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    encode_dss_signature,
)

from backends.base import DecryptionFailedError, MaterialRejectedError
from backends.pkcs11_specs import curve_for_oid

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def decode_oid(ec_params: bytes) -> str:
    """The dotted OID in a DER ``CKA_EC_PARAMS`` (a named curve)."""
    return str(ObjectIdentifier.load(ec_params).dotted)


def encode_oid(oid: str) -> bytes:
    """DER ``CKA_EC_PARAMS`` for a named curve."""
    return bytes(ObjectIdentifier(oid).dump())


def ec_point_bytes(ec_point: bytes, field_bytes: int) -> bytes:
    """The raw point of a ``CKA_EC_POINT``: PKCS#11 says DER OCTET STRING, some tokens
    return the bare point; both are accepted."""
    if len(ec_point) in (2 * field_bytes + 1, field_bytes) and ec_point[0] in (0x04, 0x40):
        # A bare uncompressed point (or a bare Edwards key) cannot also be a valid OCTET
        # STRING of that length, so this test is unambiguous.
        return ec_point
    return bytes(OctetString.load(ec_point).native)


def rsa_spki(modulus: bytes, public_exponent: bytes) -> bytes:
    """DER SubjectPublicKeyInfo of an RSA key from ``CKA_MODULUS``/``CKA_PUBLIC_EXPONENT``."""
    numbers = rsa.RSAPublicNumbers(
        int.from_bytes(public_exponent, "big"), int.from_bytes(modulus, "big")
    )
    return numbers.public_key().public_bytes(*_SPKI)


def ec_public_key(ec_params: bytes, ec_point: bytes) -> ec.EllipticCurvePublicKey:
    """The public key of ``CKA_EC_PARAMS``/``CKA_EC_POINT`` of a named-curve key."""
    _spec, curve = curve_for_oid(decode_oid(ec_params))
    field_bytes = (curve.key_size + 7) // 8
    return ec.EllipticCurvePublicKey.from_encoded_point(
        curve, ec_point_bytes(ec_point, field_bytes)
    )


def ec_spki(ec_params: bytes, ec_point: bytes) -> bytes:
    """DER SubjectPublicKeyInfo of a named-curve EC key."""
    return ec_public_key(ec_params, ec_point).public_bytes(*_SPKI)


def ed25519_spki(ec_point: bytes) -> bytes:
    """DER SubjectPublicKeyInfo of an Ed25519 key from its ``CKA_EC_POINT``."""
    raw = ec_point_bytes(ec_point, 32)
    return ed25519.Ed25519PublicKey.from_public_bytes(raw).public_bytes(*_SPKI)


def ecdsa_der(raw_signature: bytes) -> bytes:
    """DER ``ECDSA-Sig-Value`` from PKCS#11's ``r || s`` (each half the field size)."""
    half = len(raw_signature) // 2
    r = int.from_bytes(raw_signature[:half], "big")
    s = int.from_bytes(raw_signature[half:], "big")
    return encode_dss_signature(r, s)


def peer_point(peer_public_key: bytes, curve: ec.EllipticCurve) -> bytes:
    """The uncompressed point of a DER SubjectPublicKeyInfo on ``curve``, for ECDH.

    Loading checks the point is on the curve. Raises :class:`MaterialRejectedError` for
    anything that is not an EC public key on ``curve``.
    """
    try:
        key = serialization.load_der_public_key(peer_public_key)
    except (ValueError, TypeError, IndexError) as exc:
        raise MaterialRejectedError(f"the peer public key is not a valid key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != curve.name:
        raise MaterialRejectedError(f"the peer public key is not a point on curve {curve.name}")
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def ec_public_point_from_x(
    curve: ec.EllipticCurve,
    x: bytes,
    digest: bytes,
    hash_algorithm: hashes.HashAlgorithm,
    raw_signature: bytes,
) -> ec.EllipticCurvePublicKey:
    """The public key ``(x, y)`` of a private key whose ``x`` the token returned (ECDH with
    the generator) and which signed ``digest`` (``r || s``): of the two points with that
    ``x``, the one that verifies the signature.

    Raises :class:`MaterialRejectedError` if neither does.
    """
    signature = ecdsa_der(raw_signature)
    for prefix in (b"\x02", b"\x03"):
        try:
            candidate = ec.EllipticCurvePublicKey.from_encoded_point(curve, prefix + x)
            candidate.verify(signature, digest, ec.ECDSA(Prehashed(hash_algorithm)))
        except (ValueError, InvalidSignature):
            continue
        return candidate
    raise MaterialRejectedError("the unwrapped EC key does not match its own public point")


def oaep_decode(block: bytes, modulus_bytes: int, hash_name: str) -> bytes:
    """RFC 8017 section 7.1.2 step 3 (EME-OAEP decoding, empty label) of a raw RSA block.

    Every check is computed before any is acted on and the separator scan visits every byte,
    so how long it takes does not depend on where decoding fails (as far as Python allows).
    Raises :class:`DecryptionFailedError`, always the same, for any failure.
    """
    algorithm: Callable[[bytes], Any] = {"SHA_1": hashlib.sha1, "SHA_256": hashlib.sha256}[
        hash_name
    ]
    h_len = algorithm(b"").digest_size
    block = block.rjust(modulus_bytes, b"\x00")
    if len(block) != modulus_bytes or modulus_bytes < 2 * h_len + 2:
        raise DecryptionFailedError()
    first = block[0]
    masked_seed = block[1 : 1 + h_len]
    masked_db = block[1 + h_len :]
    seed = _xor(masked_seed, _mgf1(algorithm, masked_db, h_len))
    db = _xor(masked_db, _mgf1(algorithm, seed, len(masked_db)))
    label_ok = hmac.compare_digest(db[:h_len], algorithm(b"").digest())
    # Find the 0x01 after the zero padding without stopping early.
    separator = 0
    looking = 1
    bad_padding = 0
    for index in range(h_len, len(db)):
        byte = db[index]
        is_one = int(byte == 1)
        is_zero = int(byte == 0)
        found_here = looking & is_one
        separator = separator | (index * found_here)
        bad_padding |= looking & (1 - is_one) & (1 - is_zero)
        looking &= 1 - found_here
    valid = (first == 0) & label_ok & (looking == 0) & (bad_padding == 0)
    if not valid:
        raise DecryptionFailedError()
    return db[separator + 1 :]


def _xor(left: bytes, right: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(left, right, strict=True))


def _mgf1(algorithm: Callable[[bytes], Any], seed: bytes, length: int) -> bytes:
    output = bytearray()
    counter = 0
    while len(output) < length:
        output += algorithm(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return bytes(output[:length])
