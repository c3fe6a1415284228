"""What each AWS key spec and algorithm is in PKCS#11 terms: key types, sizes, curves and the
mechanisms (with their parameters) that serve them inside a token.

Pure tables and lookups: nothing here talks to a token. See ``docs/pkcs11-key-kinds.md`` for
which operation runs where.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import MGF, KeyType, Mechanism

from backends.base import UnsupportedMechanismError
from backends.key_specs import HMAC_SPECS, RSA_SPECS


class MaterialKind(StrEnum):
    """The kinds of key objects a material id can name in the token."""

    AES = "aes"
    HMAC = "hmac"
    RSA = "rsa"
    EC = "ec"
    ED25519 = "ed25519"


#: Object identifiers of the named curves, as the ``CKA_EC_PARAMS`` of a key holds them.
CURVE_OIDS: dict[str, str] = {
    "ECC_NIST_P256": "1.2.840.10045.3.1.7",
    "ECC_NIST_P384": "1.3.132.0.34",
    "ECC_NIST_P521": "1.3.132.0.35",
    "ECC_SECG_P256K1": "1.3.132.0.10",
}
#: RFC 8410 ``id-Ed25519``; PKCS#11 3.0 accepts the OID as ``CKA_EC_PARAMS`` of Edwards keys.
ED25519_OID = "1.3.101.112"

_CURVES: dict[str, ec.EllipticCurve] = {
    "ECC_NIST_P256": ec.SECP256R1(),
    "ECC_NIST_P384": ec.SECP384R1(),
    "ECC_NIST_P521": ec.SECP521R1(),
    "ECC_SECG_P256K1": ec.SECP256K1(),
}

RSA_BITS: dict[str, int] = dict(RSA_SPECS)
#: HMAC key specs and the length, in bytes, of the keys AWS generates for them (the shortest
#: AWS imports), and the longest AWS imports.
HMAC_KEY_BYTES: dict[str, int] = {spec: row[2] for spec, row in HMAC_SPECS.items()}
HMAC_MAX_IMPORT_BYTES: dict[str, int] = {spec: row[3] for spec, row in HMAC_SPECS.items()}
SYMMETRIC_KEY_BYTES = 32


@dataclass(frozen=True)
class KeySpecInfo:
    """One AWS key spec as the token sees it."""

    kind: MaterialKind
    #: RSA modulus bits, EC field bits, or secret key bytes x 8.
    bits: int
    #: The curve's OID for EC and Edwards specs.
    curve_oid: str | None = None


def key_spec_info(key_spec: str) -> KeySpecInfo:
    """The PKCS#11 shape of ``key_spec``. Raises :class:`UnsupportedMechanismError`."""
    if key_spec == "SYMMETRIC_DEFAULT":
        return KeySpecInfo(MaterialKind.AES, SYMMETRIC_KEY_BYTES * 8)
    if key_spec in RSA_BITS:
        return KeySpecInfo(MaterialKind.RSA, RSA_BITS[key_spec])
    if key_spec in CURVE_OIDS:
        return KeySpecInfo(MaterialKind.EC, _CURVES[key_spec].key_size, CURVE_OIDS[key_spec])
    if key_spec == "ECC_NIST_EDWARDS25519":
        return KeySpecInfo(MaterialKind.ED25519, 255, ED25519_OID)
    if key_spec in HMAC_KEY_BYTES:
        return KeySpecInfo(MaterialKind.HMAC, HMAC_KEY_BYTES[key_spec] * 8)
    raise UnsupportedMechanismError(f"the PKCS#11 backend does not serve key spec {key_spec}")


def curve_for_oid(oid: str) -> tuple[str, ec.EllipticCurve]:
    """The AWS key spec and ``cryptography`` curve of a named-curve OID.

    Raises :class:`UnsupportedMechanismError` for a curve AWS does not offer.
    """
    for spec, known in CURVE_OIDS.items():
        if known == oid:
            return spec, _CURVES[spec]
    raise UnsupportedMechanismError(f"curve {oid} is not an AWS KMS key spec")


# --- Signing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HashInfo:
    """A hash as PKCS#11 names it, with the DER ``DigestInfo`` prefix PKCS#1 v1.5 needs."""

    size: int
    mechanism: Mechanism
    mgf: MGF
    hmac_mechanism: Mechanism
    #: RFC 8017 section 9.2, note 1: DER of DigestInfo up to the digest bytes.
    digest_info_prefix: bytes


HASHES: dict[str, HashInfo] = {
    "SHA_1": HashInfo(
        20,
        Mechanism.SHA_1,
        MGF.SHA1,
        Mechanism.SHA_1_HMAC,
        bytes.fromhex("3021300906052b0e03021a05000414"),
    ),
    "SHA_224": HashInfo(
        28,
        Mechanism.SHA224,
        MGF.SHA224,
        Mechanism.SHA224_HMAC,
        bytes.fromhex("302d300d06096086480165030402040500041c"),
    ),
    "SHA_256": HashInfo(
        32,
        Mechanism.SHA256,
        MGF.SHA256,
        Mechanism.SHA256_HMAC,
        bytes.fromhex("3031300d060960864801650304020105000420"),
    ),
    "SHA_384": HashInfo(
        48,
        Mechanism.SHA384,
        MGF.SHA384,
        Mechanism.SHA384_HMAC,
        bytes.fromhex("3041300d060960864801650304020205000430"),
    ),
    "SHA_512": HashInfo(
        64,
        Mechanism.SHA512,
        MGF.SHA512,
        Mechanism.SHA512_HMAC,
        bytes.fromhex("3051300d060960864801650304020305000440"),
    ),
}


class SigningScheme(StrEnum):
    RSA_PKCS1_V1_5 = "RSASSA_PKCS1_V1_5"
    RSA_PSS = "RSASSA_PSS"
    ECDSA = "ECDSA"
    ED25519 = "ED25519"
    ED25519_PH = "ED25519_PH"


@dataclass(frozen=True)
class SigningAlgorithmInfo:
    scheme: SigningScheme
    #: The hash of the digest the caller passes (``None`` for pure Ed25519: the message).
    hash_name: str | None

    @property
    def digest(self) -> HashInfo | None:
        return HASHES[self.hash_name] if self.hash_name else None


SIGNING_ALGORITHMS: dict[str, SigningAlgorithmInfo] = {
    **{
        f"RSASSA_PKCS1_V1_5_{name}": SigningAlgorithmInfo(SigningScheme.RSA_PKCS1_V1_5, name)
        for name in ("SHA_256", "SHA_384", "SHA_512")
    },
    **{
        f"RSASSA_PSS_{name}": SigningAlgorithmInfo(SigningScheme.RSA_PSS, name)
        for name in ("SHA_256", "SHA_384", "SHA_512")
    },
    **{
        f"ECDSA_{name}": SigningAlgorithmInfo(SigningScheme.ECDSA, name)
        for name in ("SHA_256", "SHA_384", "SHA_512")
    },
    "ED25519_SHA_512": SigningAlgorithmInfo(SigningScheme.ED25519, None),
    "ED25519_PH_SHA_512": SigningAlgorithmInfo(SigningScheme.ED25519_PH, "SHA_512"),
}

#: The key kind each signing scheme needs.
SCHEME_KIND: dict[SigningScheme, MaterialKind] = {
    SigningScheme.RSA_PKCS1_V1_5: MaterialKind.RSA,
    SigningScheme.RSA_PSS: MaterialKind.RSA,
    SigningScheme.ECDSA: MaterialKind.EC,
    SigningScheme.ED25519: MaterialKind.ED25519,
    SigningScheme.ED25519_PH: MaterialKind.ED25519,
}


def signing_algorithm(algorithm: str) -> SigningAlgorithmInfo:
    """Raises :class:`UnsupportedMechanismError` for an unknown signing algorithm."""
    try:
        return SIGNING_ALGORITHMS[algorithm]
    except KeyError:
        raise UnsupportedMechanismError(f"unknown signing algorithm {algorithm}") from None


#: RSAES_OAEP_* decryption and wrapping: the hash of OAEP and of MGF1 (no label, as AWS).
OAEP_HASHES: dict[str, str] = {"RSAES_OAEP_SHA_1": "SHA_1", "RSAES_OAEP_SHA_256": "SHA_256"}
#: RSA_AES_KEY_WRAP_*: OAEP with this hash for the ephemeral AES key, then RFC 5649.
RSA_AES_KEY_WRAP_HASHES: dict[str, str] = {
    "RSA_AES_KEY_WRAP_SHA_1": "SHA_1",
    "RSA_AES_KEY_WRAP_SHA_256": "SHA_256",
}
MAC_ALGORITHMS: dict[str, str] = {
    "HMAC_SHA_224": "SHA_224",
    "HMAC_SHA_256": "SHA_256",
    "HMAC_SHA_384": "SHA_384",
    "HMAC_SHA_512": "SHA_512",
}
#: Key types python-pkcs11 knows for each kind.
KEY_TYPES: dict[MaterialKind, KeyType] = {
    MaterialKind.AES: KeyType.AES,
    MaterialKind.HMAC: KeyType.GENERIC_SECRET,
    MaterialKind.RSA: KeyType.RSA,
    MaterialKind.EC: KeyType.EC,
    MaterialKind.ED25519: KeyType.EC_EDWARDS,
}


def oaep_param(hash_name: str) -> tuple[Mechanism, MGF, None]:
    """python-pkcs11's ``CK_RSA_PKCS_OAEP_PARAMS``: hash, MGF1 with the same hash, no label."""
    info = HASHES[hash_name]
    return (info.mechanism, info.mgf, None)


def rsa_spec_for_bits(bits: int) -> str | None:
    """The RSA key spec of a modulus size, or ``None``."""
    for spec, size in RSA_BITS.items():
        if size == bits:
            return spec
    return None
