"""Key objects of every kind inside a PKCS#11 token: generate them, find them again, and run
their private- and secret-key operations in the token.

A material id names one secret key (AES-256 or an HMAC generic secret) or one key pair (a
private and a public key object) whose ``CKA_ID`` is the 32 bytes of the id and whose
``CKA_LABEL`` is ``mock-kms:<id>``. Private and secret keys are token objects, ``PRIVATE``,
``SENSITIVE`` and never ``EXTRACTABLE``. Every function here runs with the caller holding the
backend's process lock (and, where it says so, the token's file lock); none of them retries.
What runs in the token and what outside is in ``docs/pkcs11-key-kinds.md``; unwrapping
imported key material into the token is :mod:`backends.pkcs11_unwrap`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pkcs11
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import KDF, Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass

from backends.base import (
    DecryptionFailedError,
    MaterialRejectedError,
    UnsupportedMechanismError,
)
from backends.key_specs import SIGNING_ALGORITHMS
from backends.pkcs11_capabilities import TokenFeatures
from backends.pkcs11_encoding import (
    decode_oid,
    ec_spki,
    ecdsa_der,
    ed25519_spki,
    encode_oid,
    oaep_decode,
    peer_point,
    rsa_spki,
)
from backends.pkcs11_specs import (
    HASHES,
    MAC_ALGORITHMS,
    OAEP_HASHES,
    SCHEME_KIND,
    KeySpecInfo,
    MaterialKind,
    SigningScheme,
    curve_for_oid,
    oaep_param,
    rsa_spec_for_bits,
    signing_algorithm,
)

KEY_LABEL_PREFIX = "mock-kms:"
WRAPPING_LABEL_PREFIX = "mock-kms-wrapping:"
#: Wrapping keys get their own ``CKA_ID`` space, so no material id can ever name one.
WRAPPING_ID_PREFIX = b"mock-kms-wrapping:"

_KeyObject = Any

#: What every private and secret key of the backend is: it never leaves the token, and
#: ``PRIVATE`` keeps SoftHSM from writing its value in clear to disk.
SECRET_TEMPLATE: dict[Attribute, Any] = {
    Attribute.SENSITIVE: True,
    # Explicit: the PKCS#11 default for EXTRACTABLE is up to the token.
    Attribute.EXTRACTABLE: False,
    Attribute.PRIVATE: True,
    Attribute.MODIFIABLE: False,
}
PUBLIC_TEMPLATE: dict[Attribute, Any] = {Attribute.PRIVATE: False, Attribute.MODIFIABLE: False}
#: An RSA public exponent of 65537, as AWS's keys have.
RSA_PUBLIC_EXPONENT = b"\x01\x00\x01"

#: Token answers to a ciphertext or wrapped key that does not open (SoftHSM 2.6.1 says
#: GeneralError; other tokens the specific codes).
DECRYPT_FAILURES = (
    pkcs11.GeneralError,
    pkcs11.EncryptedDataInvalid,
    pkcs11.EncryptedDataLenRange,
    pkcs11.DataInvalid,
    pkcs11.DataLenRange,
    pkcs11.WrappedKeyInvalid,
    pkcs11.WrappedKeyLenRange,
)


@dataclass(eq=False)
class TokenMaterial:
    """The token objects of one material id, as cached by a process."""

    kind: MaterialKind
    #: The secret key (AES, HMAC) or the private key of a pair.
    key: _KeyObject
    public: _KeyObject | None = None
    #: Filled on first use: the DER SubjectPublicKeyInfo, the AWS key spec of a pair.
    spki: bytes | None = None
    key_spec: str | None = None


# --- Finding -------------------------------------------------------------------------------


def find_objects(session: Any, object_id: bytes) -> list[_KeyObject]:
    """Every key object with ``CKA_ID == object_id``. Token file lock held."""
    return list(session.get_objects({Attribute.ID: object_id}))


def material_from_objects(objects: list[_KeyObject]) -> TokenMaterial | None:
    """The material the objects of one id make up, or ``None`` if there are none.

    Raises :class:`MaterialRejectedError` if the objects are not one key or one pair.
    """
    secrets = [item for item in objects if item.object_class == ObjectClass.SECRET_KEY]
    privates = [item for item in objects if item.object_class == ObjectClass.PRIVATE_KEY]
    publics = [item for item in objects if item.object_class == ObjectClass.PUBLIC_KEY]
    if not (secrets or privates):
        return None
    if len(secrets) + len(privates) > 1 or len(publics) > 1:
        raise MaterialRejectedError(
            f"the token holds {len(objects)} objects for one material id; remove the extras"
        )
    if secrets:
        key = secrets[0]
        kind = MaterialKind.AES if key.key_type == KeyType.AES else MaterialKind.HMAC
        return TokenMaterial(kind, key)
    key = privates[0]
    kinds = {
        KeyType.RSA: MaterialKind.RSA,
        KeyType.EC: MaterialKind.EC,
        KeyType.EC_EDWARDS: MaterialKind.ED25519,
    }
    if key.key_type not in kinds:
        raise MaterialRejectedError(f"the token holds a {key.key_type!r} key for this id")
    return TokenMaterial(kinds[key.key_type], key, publics[0] if publics else None)


def material_key_spec(material: TokenMaterial) -> str:
    """The AWS key spec of a key pair, from the token's public attributes (cached)."""
    if material.key_spec is not None:
        return material.key_spec
    spec: str | None
    if material.kind is MaterialKind.RSA:
        spec = rsa_spec_for_bits(len(material.key[Attribute.MODULUS].lstrip(b"\x00")) * 8)
    elif material.kind is MaterialKind.EC:
        spec = curve_for_oid(decode_oid(material.key[Attribute.EC_PARAMS]))[0]
    elif material.kind is MaterialKind.ED25519:
        spec = "ECC_NIST_EDWARDS25519"
    else:
        raise UnsupportedMechanismError(f"{material.kind} material has no key-pair spec")
    if spec is None:
        raise UnsupportedMechanismError("the token key is not of an AWS KMS key spec")
    material.key_spec = spec
    return spec


# --- Generating ----------------------------------------------------------------------------


def generate(session: Any, spec: KeySpecInfo, key_id: bytes, label: str) -> TokenMaterial:
    """Generate the material of ``spec`` in the token as token objects. File lock held."""
    common = {"id": key_id, "label": label, "store": True}
    if spec.kind is MaterialKind.AES:
        key = session.generate_key(
            KeyType.AES,
            spec.bits,
            capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
            template=dict(SECRET_TEMPLATE),
            **common,
        )
        return TokenMaterial(MaterialKind.AES, key)
    if spec.kind is MaterialKind.HMAC:
        key = session.generate_key(
            KeyType.GENERIC_SECRET,
            spec.bits,
            mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            template=dict(SECRET_TEMPLATE),
            **common,
        )
        return TokenMaterial(MaterialKind.HMAC, key)
    if spec.kind is MaterialKind.RSA:
        public, private = session.generate_keypair(
            KeyType.RSA,
            spec.bits,
            capabilities=(
                MechanismFlag.SIGN
                | MechanismFlag.VERIFY
                | MechanismFlag.ENCRYPT
                | MechanismFlag.DECRYPT
            ),
            public_template={**PUBLIC_TEMPLATE, Attribute.PUBLIC_EXPONENT: RSA_PUBLIC_EXPONENT},
            private_template=dict(SECRET_TEMPLATE),
            **common,
        )
        return TokenMaterial(MaterialKind.RSA, private, public)
    assert spec.curve_oid is not None
    edwards = spec.kind is MaterialKind.ED25519
    public, private = session.generate_keypair(
        KeyType.EC_EDWARDS if edwards else KeyType.EC,
        mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN if edwards else Mechanism.EC_KEY_PAIR_GEN,
        capabilities=MechanismFlag.SIGN
        | MechanismFlag.VERIFY
        | (MechanismFlag(0) if edwards else MechanismFlag.DERIVE),
        public_template={**PUBLIC_TEMPLATE, Attribute.EC_PARAMS: encode_oid(spec.curve_oid)},
        private_template=dict(SECRET_TEMPLATE),
        **common,
    )
    return TokenMaterial(spec.kind, private, public)


def generate_wrapping_key(session: Any, bits: int, object_id: bytes, label: str) -> _KeyObject:
    """An RSA key pair for imports: the private key only unwraps. File lock held.

    Returns the public key object.
    """
    public, _private = session.generate_keypair(
        KeyType.RSA,
        bits,
        id=object_id,
        label=label,
        store=True,
        capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP,
        public_template={**PUBLIC_TEMPLATE, Attribute.PUBLIC_EXPONENT: RSA_PUBLIC_EXPONENT},
        private_template=dict(SECRET_TEMPLATE),
    )
    return public


# --- Public keys ---------------------------------------------------------------------------


def public_key_der(material: TokenMaterial) -> bytes:
    """The DER SubjectPublicKeyInfo of a key pair, from its public object (cached)."""
    if material.spki is not None:
        return material.spki
    if material.public is None:
        raise UnsupportedMechanismError(f"{material.kind} material has no public key")
    public = material.public
    if material.kind is MaterialKind.RSA:
        der = rsa_spki(public[Attribute.MODULUS], public[Attribute.PUBLIC_EXPONENT])
    elif material.kind is MaterialKind.EC:
        der = ec_spki(public[Attribute.EC_PARAMS], public[Attribute.EC_POINT])
    else:
        der = ed25519_spki(public[Attribute.EC_POINT])
    material.spki = der
    return der


# --- Operations ----------------------------------------------------------------------------


def sign(material: TokenMaterial, algorithm: str, payload: bytes, features: TokenFeatures) -> bytes:
    """Sign ``payload`` (a digest, or the message for pure Ed25519) in the token."""
    info = signing_algorithm(algorithm)
    if SCHEME_KIND[info.scheme] is not material.kind:
        raise UnsupportedMechanismError(f"{algorithm} does not apply to {material.kind} keys")
    spec = material_key_spec(material)
    if algorithm not in SIGNING_ALGORITHMS.get(spec, ()):
        raise UnsupportedMechanismError(f"{algorithm} does not apply to {spec}")
    digest = info.digest
    if digest is not None and len(payload) != digest.size:
        raise UnsupportedMechanismError(
            f"{algorithm} signs a {digest.size}-byte digest, got {len(payload)} bytes"
        )
    key = material.key
    if info.scheme is SigningScheme.RSA_PKCS1_V1_5:
        assert digest is not None
        return bytes(key.sign(digest.digest_info_prefix + payload, mechanism=Mechanism.RSA_PKCS))
    if info.scheme is SigningScheme.RSA_PSS:
        assert digest is not None
        # AWS's PSS: MGF1 with the message hash, salt as long as the hash.
        param = (digest.mechanism, digest.mgf, digest.size)
        return bytes(key.sign(payload, mechanism=Mechanism.RSA_PKCS_PSS, mechanism_param=param))
    if info.scheme is SigningScheme.ECDSA:
        # Raw ECDSA over the caller's digest; PKCS#11 returns r || s, AWS returns DER.
        return ecdsa_der(bytes(key.sign(payload, mechanism=Mechanism.ECDSA)))
    if info.scheme is SigningScheme.ED25519_PH:
        if not features.eddsa_prehash:
            raise UnsupportedMechanismError("this token does not sign Ed25519ph")
        return bytes(key.sign(payload, mechanism=Mechanism.EDDSA, mechanism_param=(True, None)))
    return bytes(key.sign(payload, mechanism=Mechanism.EDDSA))


def decrypt_oaep(
    material: TokenMaterial, algorithm: str, ciphertext: bytes, features: TokenFeatures
) -> bytes:
    """RSA-OAEP decrypt. In the token with ``CKM_RSA_PKCS_OAEP`` where the token has the hash;
    otherwise raw RSA (``CKM_RSA_X_509``) in the token and OAEP decoding here.

    Raises :class:`DecryptionFailedError` for any ciphertext that does not decrypt.
    """
    hash_name = OAEP_HASHES.get(algorithm)
    if hash_name is None or material.kind is not MaterialKind.RSA:
        raise UnsupportedMechanismError(f"{algorithm} does not apply to {material.kind} keys")
    key = material.key
    modulus_bytes = len(key[Attribute.MODULUS].lstrip(b"\x00"))
    if len(ciphertext) != modulus_bytes:
        raise DecryptionFailedError()
    native = hash_name == "SHA_1" or features.oaep_sha256
    try:
        if native:
            return bytes(
                key.decrypt(
                    ciphertext,
                    mechanism=Mechanism.RSA_PKCS_OAEP,
                    mechanism_param=oaep_param(hash_name),
                )
            )
        block = bytes(key.decrypt(ciphertext, mechanism=Mechanism.RSA_X_509))
    except DECRYPT_FAILURES:
        # GeneralError is also what a failing device says: if the key still answers, the
        # token is fine and the ciphertext was not (otherwise this raises and the caller
        # reconnects).
        key[Attribute.ID]
        raise DecryptionFailedError() from None
    return oaep_decode(block, modulus_bytes, hash_name)


def generate_mac(material: TokenMaterial, algorithm: str, message: bytes) -> bytes:
    """HMAC in the token."""
    hash_name = MAC_ALGORITHMS.get(algorithm)
    if hash_name is None or material.kind is not MaterialKind.HMAC:
        raise UnsupportedMechanismError(f"{algorithm} does not apply to {material.kind} keys")
    try:
        return bytes(material.key.sign(message, mechanism=HASHES[hash_name].hmac_mechanism))
    except pkcs11.KeySizeRange:
        raise UnsupportedMechanismError(f"the key is too short for {algorithm}") from None


def derive_shared_secret(material: TokenMaterial, peer_public_key: bytes) -> bytes:
    """ECDH in the token. The derived secret is a session object, extractable only so that
    its value (what AWS returns to the caller anyway) can be read, and destroyed at once."""
    if material.kind is not MaterialKind.EC:
        raise UnsupportedMechanismError(f"ECDH does not apply to {material.kind} keys")
    _spec, curve = curve_for_oid(decode_oid(material.key[Attribute.EC_PARAMS]))
    point = peer_point(peer_public_key, curve)
    return ecdh(material.key, curve, point)


def ecdh(private: _KeyObject, curve: ec.EllipticCurve, point: bytes) -> bytes:
    field_bytes = (curve.key_size + 7) // 8
    derived = private.derive_key(
        KeyType.GENERIC_SECRET,
        field_bytes * 8,
        mechanism=Mechanism.ECDH1_DERIVE,
        mechanism_param=(KDF.NULL, None, point),
        store=False,
        capabilities=MechanismFlag(0),
        template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True, Attribute.PRIVATE: True},
    )
    try:
        return bytes(derived[Attribute.VALUE])
    finally:
        derived.destroy()
