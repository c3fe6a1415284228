"""Key kinds in seed files: which KeyUsage goes with which KeySpec, and the material of each
kind read from text (hex or base64 for AES and HMAC keys, PEM for private keys) into the form
the backends keep (raw bytes, or a PKCS#8 DER private key).

The usage rules are AWS's (https://docs.aws.amazon.com/kms/latest/developerguide/symm-asymm-choose-key-spec.html).
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from backends.base import MaterialRejectedError
from backends.key_specs import EC_CURVES, ED25519_SPEC, HMAC_SPECS, ML_DSA_SPECS, RSA_SPECS
from backends.software import validate_material
from kms_service.seeding.document import Node

SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
AES_BYTES = 32

#: Key spec -> the key usages AWS allows for it (the first is the seed files' default).
USAGES: dict[str, tuple[str, ...]] = {
    SYMMETRIC_DEFAULT: ("ENCRYPT_DECRYPT",),
    **dict.fromkeys(RSA_SPECS, ("ENCRYPT_DECRYPT", "SIGN_VERIFY")),
    "ECC_NIST_P256": ("SIGN_VERIFY", "KEY_AGREEMENT"),
    "ECC_NIST_P384": ("SIGN_VERIFY", "KEY_AGREEMENT"),
    "ECC_NIST_P521": ("SIGN_VERIFY", "KEY_AGREEMENT"),
    "ECC_SECG_P256K1": ("SIGN_VERIFY",),
    ED25519_SPEC: ("SIGN_VERIFY",),
    **dict.fromkeys(ML_DSA_SPECS, ("SIGN_VERIFY",)),
    **dict.fromkeys(HMAC_SPECS, ("GENERATE_VERIFY_MAC",)),
}


def is_secret_spec(key_spec: str) -> bool:
    """AES and HMAC keys: material is raw bytes (hex in seed files)."""
    return key_spec == SYMMETRIC_DEFAULT or key_spec in HMAC_SPECS


def check_usage(node: Node, key_spec: str, usage: str | None) -> str:
    """The key usage of a ``key_spec`` key (its default when ``usage`` is None). Raises
    :class:`SeedError` at ``node`` for a spec mock-kms does not know or a usage AWS forbids."""
    allowed = USAGES.get(key_spec)
    if allowed is None:
        raise node.error(f"unknown key spec {key_spec!r}: one of {', '.join(USAGES)}")
    if usage is None:
        if key_spec in RSA_SPECS:
            raise node.error("an RSA key needs its key usage: ENCRYPT_DECRYPT or SIGN_VERIFY")
        return allowed[0]
    if usage not in allowed:
        raise node.error(f"KeyUsage {usage} is not compatible with KeySpec {key_spec}")
    return usage


def spec_of_private_key(key: PrivateKeyTypes) -> str | None:
    """The AWS key spec of a private key, or None for a kind AWS does not offer."""
    if isinstance(key, rsa.RSAPrivateKey):
        return next((spec for spec, bits in RSA_SPECS.items() if bits == key.key_size), None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return next((s for s, c in EC_CURVES.items() if isinstance(key.curve, c)), None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return ED25519_SPEC
    return None


def private_key_from_pem(node: Node) -> tuple[str, bytes]:
    """``(key spec, PKCS#8 DER)`` of an unencrypted PEM private key in ``node`` (PKCS#8,
    SEC1 ``EC PRIVATE KEY`` or PKCS#1 ``RSA PRIVATE KEY``). Raises :class:`SeedError`."""
    try:
        key = serialization.load_pem_private_key(node.string().strip().encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise node.error(
            "must be an unencrypted PEM private key (PKCS#8 BEGIN PRIVATE KEY, or "
            "BEGIN EC PRIVATE KEY / BEGIN RSA PRIVATE KEY)"
        ) from None
    spec = spec_of_private_key(key)
    if spec is None:
        raise node.error(
            "the private key is not of a kind AWS KMS offers (RSA 2048/3072/4096, "
            "ECC P-256/P-384/P-521/secp256k1, Ed25519)"
        )
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return spec, der


def secp256k1_from_hex(node: Node) -> bytes:
    """PKCS#8 DER of a secp256k1 key given as its 32-byte private scalar in hex."""
    text = node.string().strip().removeprefix("0x")
    try:
        scalar = int.from_bytes(bytes.fromhex(text), "big")
        key = ec.derive_private_key(scalar, ec.SECP256K1())
    except ValueError:
        raise node.error("must be a secp256k1 private key: 64 hex digits") from None
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def secret_bytes(node: Node, key_spec: str) -> bytes:
    """AES or HMAC key material from hex (either case) or base64, checked for ``key_spec``."""
    text = node.string().strip()
    decoded: bytes | None = None
    if len(text) % 2 == 0:
        try:
            decoded = bytes.fromhex(text)
        except ValueError:
            decoded = None
    if decoded is None:
        try:
            decoded = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise node.error("must be key material in hex (or base64)") from None
    check_material(node, key_spec, decoded)
    return decoded


def check_material(node: Node, key_spec: str, material: bytes) -> None:
    """Raise :class:`SeedError` at ``node`` unless ``material`` is a key of ``key_spec``."""
    if key_spec == SYMMETRIC_DEFAULT and len(material) != AES_BYTES:
        raise node.error("must be a 256-bit key: 64 hex digits or 44 base64 characters")
    try:
        validate_material(key_spec, material)
    except MaterialRejectedError as exc:
        raise node.error(str(exc)) from None
