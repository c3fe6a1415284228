"""What a PKCS#11 token can do, found once when the backend is opened, and the
:class:`BackendCapabilities` it declares from that.

The token's own mechanism list (``C_GetMechanismList``, ``C_GetMechanismInfo``) decides most
of it. Four things the list cannot say are tried once on throwaway session objects: OAEP with
SHA-256 (SoftHSM accepts only SHA-1), Ed25519ph (SoftHSM 2.6.1 accepts the flag and ignores
it), the secp256k1 curve, and unwrapping an Ed25519 private key (SoftHSM 2.6.1 cannot). See
``docs/pkcs11-key-kinds.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import asdict, dataclass
from typing import Any

import pkcs11
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.constants import DEFAULT

from backends.base import BackendCapabilities
from backends.pkcs11_encoding import encode_oid
from backends.pkcs11_specs import (
    CURVE_OIDS,
    ED25519_OID,
    HASHES,
    HMAC_KEY_BYTES,
    RSA_BITS,
    oaep_param,
)

# Attributes python-pkcs11 puts in every unwrap template that a private key does not have.
NOT_PRIVATE_KEY_ATTRIBUTES: dict[Attribute, Any] = {
    Attribute.ENCRYPT: DEFAULT,
    Attribute.WRAP: DEFAULT,
    Attribute.VERIFY: DEFAULT,
}


@dataclass(frozen=True)
class TokenFeatures:
    """The facts about a token the backend's capabilities and choices rest on."""

    mechanisms: frozenset[int]
    #: Mechanisms whose ``CKF_UNWRAP`` flag is set.
    unwrap_mechanisms: frozenset[int]
    rsa_max_bits: int = 0
    ec_max_bits: int = 0
    oaep_sha256: bool = False
    eddsa_prehash: bool = False
    secp256k1: bool = False
    ed25519_unwrap: bool = False

    def has(self, *mechanisms: Mechanism) -> bool:
        return all(int(mechanism) in self.mechanisms for mechanism in mechanisms)

    def can_unwrap(self, mechanism: Mechanism) -> bool:
        return int(mechanism) in self.unwrap_mechanisms

    def to_json(self) -> dict[str, Any]:
        answer = asdict(self)
        answer["mechanisms"] = sorted(self.mechanisms)
        answer["unwrap_mechanisms"] = sorted(self.unwrap_mechanisms)
        return answer

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TokenFeatures:
        return cls(
            mechanisms=frozenset(int(value) for value in data["mechanisms"]),
            unwrap_mechanisms=frozenset(int(value) for value in data["unwrap_mechanisms"]),
            rsa_max_bits=int(data["rsa_max_bits"]),
            ec_max_bits=int(data["ec_max_bits"]),
            oaep_sha256=bool(data["oaep_sha256"]),
            eddsa_prehash=bool(data["eddsa_prehash"]),
            secp256k1=bool(data["secp256k1"]),
            ed25519_unwrap=bool(data["ed25519_unwrap"]),
        )


def probe_token(session: Any) -> TokenFeatures:
    """Read the token's mechanism list and try what it cannot tell, on session objects only.

    ``session`` is a logged-in read-write python-pkcs11 session. Raises ``PKCS11Error`` only
    when the token fails outright (a refused probe is a ``False``, not an error).
    """
    slot = session.token.slot
    mechanisms = {int(mechanism): mechanism for mechanism in slot.get_mechanisms()}
    unwrap: set[int] = set()
    max_bits: dict[int, int] = {}
    for number, mechanism in mechanisms.items():
        if not isinstance(mechanism, Mechanism):
            continue
        info = slot.get_mechanism_info(mechanism)
        if info.flags & MechanismFlag.UNWRAP:
            unwrap.add(number)
        max_bits[number] = int(info.max_key_length)
    features = TokenFeatures(
        mechanisms=frozenset(mechanisms),
        unwrap_mechanisms=frozenset(unwrap),
        rsa_max_bits=max_bits.get(int(Mechanism.RSA_PKCS_KEY_PAIR_GEN), 0),
        ec_max_bits=max_bits.get(int(Mechanism.EC_KEY_PAIR_GEN), 0),
    )
    return TokenFeatures(
        **{
            **asdict(features),
            "oaep_sha256": _probe_oaep_sha256(session, features),
            "eddsa_prehash": _probe_eddsa_prehash(session, features),
            "secp256k1": _probe_secp256k1(session, features),
            "ed25519_unwrap": _probe_ed25519_unwrap(session, features),
        }
    )


def capabilities_for(features: TokenFeatures) -> BackendCapabilities:
    """Exactly what the backend serves on a token with ``features``."""
    specs = {"SYMMETRIC_DEFAULT"}
    signing: set[str] = set()
    encryption: set[str] = set()
    macs: set[str] = set()
    agreement: set[str] = set()
    wrapping: set[str] = set()
    wrapping_specs: set[str] = set()

    rsa_specs = {spec for spec, bits in RSA_BITS.items() if bits <= features.rsa_max_bits} & _if(
        features.has(Mechanism.RSA_PKCS_KEY_PAIR_GEN), set(RSA_BITS)
    )
    specs |= rsa_specs
    if rsa_specs:
        if features.has(Mechanism.RSA_PKCS):
            signing |= {f"RSASSA_PKCS1_V1_5_{name}" for name in ("SHA_256", "SHA_384", "SHA_512")}
        if features.has(Mechanism.RSA_PKCS_PSS):
            signing |= {f"RSASSA_PSS_{name}" for name in ("SHA_256", "SHA_384", "SHA_512")}
        if features.has(Mechanism.RSA_PKCS_OAEP):
            encryption.add("RSAES_OAEP_SHA_1")
        if features.oaep_sha256 or features.has(Mechanism.RSA_X_509):
            # Without SHA-256 OAEP the token decrypts raw (CKM_RSA_X_509) and the service
            # removes the padding: the plaintext leaves the token either way.
            encryption.add("RSAES_OAEP_SHA_256")
        wrapping_specs = set(rsa_specs)
        # Unwrapping must stay in the token, so there is no raw-RSA fallback here.
        if features.can_unwrap(Mechanism.RSA_PKCS_OAEP):
            wrapping.add("RSAES_OAEP_SHA_1")
            if features.oaep_sha256:
                wrapping.add("RSAES_OAEP_SHA_256")
            if features.can_unwrap(Mechanism.AES_KEY_WRAP_PAD):
                wrapping.add("RSA_AES_KEY_WRAP_SHA_1")
                if features.oaep_sha256:
                    wrapping.add("RSA_AES_KEY_WRAP_SHA_256")
    if features.has(Mechanism.EC_KEY_PAIR_GEN, Mechanism.ECDSA):
        curves = {"ECC_NIST_P256": 256, "ECC_NIST_P384": 384, "ECC_NIST_P521": 521}
        nist = {spec for spec, bits in curves.items() if bits <= features.ec_max_bits}
        specs |= nist
        if features.secp256k1:
            specs.add("ECC_SECG_P256K1")
        if nist or features.secp256k1:
            signing |= {"ECDSA_SHA_256", "ECDSA_SHA_384", "ECDSA_SHA_512"}
        if features.has(Mechanism.ECDH1_DERIVE):
            agreement |= nist
    if features.has(Mechanism.EC_EDWARDS_KEY_PAIR_GEN, Mechanism.EDDSA):
        specs.add("ECC_NIST_EDWARDS25519")
        signing.add("ED25519_SHA_512")
        if features.eddsa_prehash:
            signing.add("ED25519_PH_SHA_512")
    if features.has(Mechanism.GENERIC_SECRET_KEY_GEN):
        for spec, size in HMAC_KEY_BYTES.items():
            hash_name = f"SHA_{size * 8}"
            if features.has(HASHES[hash_name].hmac_mechanism):
                specs.add(spec)
                macs.add(f"HMAC_{hash_name}")
    return BackendCapabilities(
        key_specs=frozenset(specs),
        signing_algorithms=frozenset(signing),
        encryption_algorithms=frozenset(encryption),
        mac_algorithms=frozenset(macs),
        key_agreement_specs=frozenset(agreement),
        wrapping_algorithms=frozenset(wrapping),
        wrapping_key_specs=frozenset(wrapping_specs),
        exportable=False,
    )


def _if(condition: bool, values: set[str]) -> set[str]:
    return values if condition else set()


# --- Probes (session objects only, destroyed at once) --------------------------------------

_REFUSALS = (pkcs11.PKCS11Error,)


def _probe_oaep_sha256(session: Any, features: TokenFeatures) -> bool:
    if not features.has(Mechanism.RSA_PKCS_KEY_PAIR_GEN, Mechanism.RSA_PKCS_OAEP):
        return False
    public, private = _throwaway_rsa_pair(session)
    if public is None:
        return False
    try:
        secret = os.urandom(16)
        param = oaep_param("SHA_256")
        with contextlib.suppress(*_REFUSALS):
            encrypted = public.encrypt(
                secret, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=param
            )
            decrypted = private.decrypt(
                encrypted, mechanism=Mechanism.RSA_PKCS_OAEP, mechanism_param=param
            )
            return bool(decrypted == secret)
        return False
    finally:
        _destroy(public, private)


def _probe_eddsa_prehash(session: Any, features: TokenFeatures) -> bool:
    if not features.has(Mechanism.EC_EDWARDS_KEY_PAIR_GEN, Mechanism.EDDSA):
        return False
    try:
        public, private = _edwards_keypair(session)
    except _REFUSALS:
        return False
    try:
        digest = hashlib.sha512(b"mock-kms probe").digest()
        with contextlib.suppress(*_REFUSALS):
            prehashed = private.sign(
                digest, mechanism=Mechanism.EDDSA, mechanism_param=(True, None)
            )
            pure = private.sign(digest, mechanism=Mechanism.EDDSA)
            # EdDSA is deterministic: a token that ignores the prehash flag signs the digest
            # as a message and gives the pure signature.
            return bool(prehashed != pure)
        return False
    finally:
        _destroy(public, private)


def _probe_secp256k1(session: Any, features: TokenFeatures) -> bool:
    if not features.has(Mechanism.EC_KEY_PAIR_GEN):
        return False
    try:
        public, private = session.generate_keypair(
            KeyType.EC,
            store=False,
            public_template={Attribute.EC_PARAMS: encode_oid(CURVE_OIDS["ECC_SECG_P256K1"])},
        )
    except _REFUSALS:
        return False
    _destroy(public, private)
    return True


def _probe_ed25519_unwrap(session: Any, features: TokenFeatures) -> bool:
    if not (
        features.has(Mechanism.EC_EDWARDS_KEY_PAIR_GEN)
        and features.can_unwrap(Mechanism.AES_KEY_WRAP_PAD)
    ):
        return False
    # A throwaway key wrapped under a throwaway key: nothing here is ever used again.
    wrapping_value = os.urandom(32)
    try:
        wrapping_key = _aes_session_key(session, wrapping_value)
    except _REFUSALS:
        return False
    try:
        pkcs8 = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            unwrapped = wrapping_key.unwrap_key(
                ObjectClass.PRIVATE_KEY,
                KeyType.EC_EDWARDS,
                aes_key_wrap_with_padding(wrapping_value, pkcs8),
                mechanism=Mechanism.AES_KEY_WRAP_PAD,
                store=False,
                capabilities=MechanismFlag.SIGN,
                template=dict(NOT_PRIVATE_KEY_ATTRIBUTES),
            )
        except _REFUSALS:
            return False
        try:
            # The public key of an imported pair comes from the private object; Ed25519
            # cannot be worked out in the token otherwise.
            unwrapped[Attribute.EC_POINT]
        except _REFUSALS:
            return False
        finally:
            _destroy(unwrapped)
        return True
    finally:
        _destroy(wrapping_key)


def _throwaway_rsa_pair(session: Any) -> tuple[Any, Any]:
    # 1024 bits keeps opening fast (SoftHSM takes about a second for 2048 on a busy machine);
    # a token that refuses short keys gets the size it accepts.
    for bits in (1024, 2048):
        try:
            return tuple(session.generate_keypair(KeyType.RSA, bits, store=False))
        except _REFUSALS:
            continue
    return None, None


def _aes_session_key(session: Any, value: bytes) -> Any:
    return session.create_object(
        {
            Attribute.CLASS: ObjectClass.SECRET_KEY,
            Attribute.KEY_TYPE: KeyType.AES,
            Attribute.VALUE: value,
            Attribute.TOKEN: False,
            Attribute.UNWRAP: True,
        }
    )


def _edwards_keypair(session: Any) -> tuple[Any, Any]:
    return tuple(
        session.generate_keypair(
            KeyType.EC_EDWARDS,
            store=False,
            mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
            public_template={Attribute.EC_PARAMS: encode_oid(ED25519_OID)},
        )
    )


def _destroy(*objects: Any) -> None:
    for item in objects:
        with contextlib.suppress(pkcs11.PKCS11Error):
            item.destroy()
