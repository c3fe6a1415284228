"""AWS KMS key specs and algorithms, and what each means in `cryptography` terms.

One table for both the backends and the service (which sits above them and imports from here),
so that "RSASSA_PSS_SHA_256 hashes with SHA-256" is written once. The AWS rules these tables
follow are in docs/key-types.md (with the AWS pages they come from).
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

SYMMETRIC_DEFAULT: Final = "SYMMETRIC_DEFAULT"

RSA_SPECS: Final = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}

#: Elliptic-curve specs usable for ECDSA (and, for the NIST curves, ECDH).
EC_CURVES: Final[dict[str, type[ec.EllipticCurve]]] = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}

ED25519_SPEC: Final = "ECC_NIST_EDWARDS25519"

#: ML-DSA (FIPS 204) parameter sets.
ML_DSA_SPECS: Final = ("ML_DSA_44", "ML_DSA_65", "ML_DSA_87")

#: HMAC key spec -> (MAC algorithm, hash, minimum and maximum key length in bytes). Generated
#: keys have the minimum length (the spec's bit size); imported keys may be longer, up to the
#: maximum, as AWS accepts them.
HMAC_SPECS: Final[dict[str, tuple[str, type[hashes.HashAlgorithm], int, int]]] = {
    "HMAC_224": ("HMAC_SHA_224", hashes.SHA224, 28, 64),
    "HMAC_256": ("HMAC_SHA_256", hashes.SHA256, 32, 64),
    "HMAC_384": ("HMAC_SHA_384", hashes.SHA384, 48, 128),
    "HMAC_512": ("HMAC_SHA_512", hashes.SHA512, 64, 128),
}

#: MAC algorithm -> hash.
MAC_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    algorithm: digest for algorithm, digest, _, _ in HMAC_SPECS.values()
}

#: Asymmetric key-pair specs (the ones with a public key).
ASYMMETRIC_SPECS: Final = frozenset([*RSA_SPECS, *EC_CURVES, ED25519_SPEC, *ML_DSA_SPECS])

#: Signing algorithm -> the hash a RAW message is digested with before the private-key
#: operation (``None``: the algorithm signs the message itself).
SIGNING_HASHES: Final[dict[str, type[hashes.HashAlgorithm] | None]] = {
    "RSASSA_PSS_SHA_256": hashes.SHA256,
    "RSASSA_PSS_SHA_384": hashes.SHA384,
    "RSASSA_PSS_SHA_512": hashes.SHA512,
    "RSASSA_PKCS1_V1_5_SHA_256": hashes.SHA256,
    "RSASSA_PKCS1_V1_5_SHA_384": hashes.SHA384,
    "RSASSA_PKCS1_V1_5_SHA_512": hashes.SHA512,
    "ECDSA_SHA_256": hashes.SHA256,
    "ECDSA_SHA_384": hashes.SHA384,
    "ECDSA_SHA_512": hashes.SHA512,
    "ED25519_SHA_512": None,
    "ED25519_PH_SHA_512": hashes.SHA512,
    "ML_DSA_SHAKE_256": None,
}

RSA_SIGNING: Final = (
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
)

#: Key spec -> the signing algorithms AWS lists for it (in AWS's order).
SIGNING_ALGORITHMS: Final[dict[str, tuple[str, ...]]] = {
    **dict.fromkeys(RSA_SPECS, RSA_SIGNING),
    "ECC_NIST_P256": ("ECDSA_SHA_256",),
    "ECC_NIST_P384": ("ECDSA_SHA_384",),
    "ECC_NIST_P521": ("ECDSA_SHA_512",),
    "ECC_SECG_P256K1": ("ECDSA_SHA_256",),
    ED25519_SPEC: ("ED25519_SHA_512", "ED25519_PH_SHA_512"),
    **dict.fromkeys(ML_DSA_SPECS, ("ML_DSA_SHAKE_256",)),
}

RSA_ENCRYPTION: Final = ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256")

#: RSA-OAEP algorithm -> hash (MGF1 uses the same hash; no label).
OAEP_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "RSAES_OAEP_SHA_1": hashes.SHA1,
    "RSAES_OAEP_SHA_256": hashes.SHA256,
}

#: Specs that can do ECDH (KEY_AGREEMENT usage).
KEY_AGREEMENT_SPECS: Final = ("ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521")

#: Import wrapping algorithms and wrapping key specs.
WRAPPING_ALGORITHMS: Final = (
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "RSA_AES_KEY_WRAP_SHA_1",
    "RSA_AES_KEY_WRAP_SHA_256",
)
WRAPPING_KEY_SPECS: Final = tuple(RSA_SPECS)
WRAPPING_HASHES: Final[dict[str, type[hashes.HashAlgorithm]]] = {
    "RSAES_OAEP_SHA_1": hashes.SHA1,
    "RSAES_OAEP_SHA_256": hashes.SHA256,
    "RSA_AES_KEY_WRAP_SHA_1": hashes.SHA1,
    "RSA_AES_KEY_WRAP_SHA_256": hashes.SHA256,
}


def oaep_max_plaintext(key_spec: str, algorithm: str) -> int:
    """The longest plaintext RSA-OAEP under ``algorithm`` can encrypt with an RSA key of
    ``key_spec``: ``k - 2*hLen - 2`` (RFC 8017 section 7.1.1), i.e. AWS's 214/342/470 bytes
    for SHA-1 and 190/318/446 for SHA-256."""
    modulus_bytes = RSA_SPECS[key_spec] // 8
    return modulus_bytes - 2 * OAEP_HASHES[algorithm]().digest_size - 2
