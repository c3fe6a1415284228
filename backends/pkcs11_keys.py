"""Key objects of every kind inside a PKCS#11 token: generate them, find them again, and run
their private- and secret-key operations in the token.

A material id names one secret key (AES-256 or an HMAC generic secret) or one key pair (a
private and a public key object) whose ``CKA_ID`` is the 32 bytes of the id and whose
``CKA_LABEL`` is ``mock-kms:<id>``. Private and secret keys are token objects, ``PRIVATE``,
``SENSITIVE`` and never ``EXTRACTABLE``. Every function here runs with the caller holding the
backend's process lock (and, where it says so, the token's file lock); none of them retries.
What runs in the token and what outside is in ``docs/pkcs11-key-kinds.md``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import pkcs11
from asn1crypto.core import OctetString  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import KDF, Attribute, GCMParams, KeyType, Mechanism, MechanismFlag, ObjectClass

from backends.base import (
    DecryptionFailedError,
    MaterialRejectedError,
    UnsupportedMechanismError,
)
from backends.key_specs import SIGNING_ALGORITHMS
from backends.pkcs11_capabilities import NOT_PRIVATE_KEY_ATTRIBUTES, TokenFeatures
from backends.pkcs11_encoding import (
    decode_oid,
    ec_point_bytes,
    ec_public_key,
    ec_public_point_from_x,
    ec_spki,
    ecdsa_der,
    ed25519_spki,
    encode_oid,
    oaep_decode,
    peer_point,
    rsa_spki,
)
from backends.pkcs11_specs import (
    ED25519_OID,
    HASHES,
    HMAC_KEY_BYTES,
    HMAC_MAX_IMPORT_BYTES,
    MAC_ALGORITHMS,
    OAEP_HASHES,
    RSA_AES_KEY_WRAP_HASHES,
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
#: Token answers to unwrapped bytes that are not a key of the requested type.
UNWRAP_REJECTIONS = (
    pkcs11.FunctionFailed,
    pkcs11.TemplateInconsistent,
    pkcs11.AttributeValueInvalid,
    pkcs11.KeySizeRange,
    pkcs11.DomainParamsInvalid,
)
#: SoftHSM refuses an HMAC key shorter than the hash (KeySizeRange) and an AES key of a
#: length AES does not have (MechanismInvalid).
_KEY_LENGTH_REFUSALS = (pkcs11.KeySizeRange, pkcs11.MechanismInvalid, pkcs11.KeyTypeInconsistent)


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
    return _ecdh(material.key, curve, point)


def _ecdh(private: _KeyObject, curve: ec.EllipticCurve, point: bytes) -> bytes:
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


# --- Import (unwrap in the token) ----------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """What an unwrapped key becomes."""

    object_class: ObjectClass
    key_type: KeyType
    capabilities: MechanismFlag
    template: dict[Attribute, Any]


def _target(spec: KeySpecInfo) -> _Target:
    secret = ObjectClass.SECRET_KEY
    private = ObjectClass.PRIVATE_KEY
    private_template = {**NOT_PRIVATE_KEY_ATTRIBUTES, **SECRET_TEMPLATE}
    if spec.kind is MaterialKind.AES:
        flags = MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
        return _Target(secret, KeyType.AES, flags, dict(SECRET_TEMPLATE))
    if spec.kind is MaterialKind.HMAC:
        flags = MechanismFlag.SIGN | MechanismFlag.VERIFY
        return _Target(secret, KeyType.GENERIC_SECRET, flags, dict(SECRET_TEMPLATE))
    if spec.kind is MaterialKind.RSA:
        flags = MechanismFlag.SIGN | MechanismFlag.DECRYPT
        return _Target(private, KeyType.RSA, flags, private_template)
    if spec.kind is MaterialKind.EC:
        flags = MechanismFlag.SIGN | MechanismFlag.DERIVE
        return _Target(private, KeyType.EC, flags, private_template)
    return _Target(private, KeyType.EC_EDWARDS, MechanismFlag.SIGN, private_template)


@dataclass
class Unwrapper:
    """One ImportKeyMaterial in the token: the wrapping private key, the algorithm, the
    wrapped bytes, and (for RSA_AES_KEY_WRAP) the ephemeral AES key, a session object that
    :meth:`close` destroys."""

    wrapping_key: _KeyObject
    algorithm: str
    wrapped: bytes
    features: TokenFeatures
    spec_name: str
    spec: KeySpecInfo
    _ephemeral: _KeyObject | None = None
    _wrapped_key: bytes = b""

    def open(self) -> None:
        """Check the algorithm and, for RSA_AES_KEY_WRAP, unwrap the ephemeral AES key.

        Raises :class:`UnsupportedMechanismError`, :class:`DecryptionFailedError`.
        """
        modulus_bytes = len(self.wrapping_key[Attribute.MODULUS].lstrip(b"\x00"))
        two_step = self.algorithm in RSA_AES_KEY_WRAP_HASHES
        hash_name = RSA_AES_KEY_WRAP_HASHES.get(self.algorithm) or OAEP_HASHES.get(self.algorithm)
        if hash_name is None:
            raise UnsupportedMechanismError(f"{self.algorithm} is not a wrapping algorithm")
        if hash_name != "SHA_1" and not self.features.oaep_sha256:
            raise UnsupportedMechanismError(
                f"this token cannot unwrap {self.algorithm}: its RSA-OAEP is SHA-1 only"
            )
        if self.spec.kind is MaterialKind.ED25519 and not self.features.ed25519_unwrap:
            raise UnsupportedMechanismError("this token cannot unwrap Ed25519 private keys")
        if not two_step:
            if self.spec.kind not in (MaterialKind.AES, MaterialKind.HMAC):
                raise UnsupportedMechanismError(
                    f"{self.spec_name} key material must be wrapped with RSA_AES_KEY_WRAP_*"
                )
            if len(self.wrapped) != modulus_bytes:
                raise DecryptionFailedError()
            self._wrapped_key = self.wrapped
            return
        if len(self.wrapped) <= modulus_bytes + 8:
            raise DecryptionFailedError()
        self._wrapped_key = self.wrapped[modulus_bytes:]
        self._ephemeral = self._unwrap_with(
            self.wrapping_key,
            self.wrapped[:modulus_bytes],
            _Target(
                ObjectClass.SECRET_KEY,
                KeyType.AES,
                MechanismFlag.UNWRAP,
                dict(SECRET_TEMPLATE) | {Attribute.MODIFIABLE: False},
            ),
            mechanism=Mechanism.RSA_PKCS_OAEP,
            param=oaep_param(hash_name),
        )

    def close(self) -> None:
        if self._ephemeral is not None:
            with contextlib.suppress(pkcs11.PKCS11Error):
                self._ephemeral.destroy()
            self._ephemeral = None

    def unwrap(self, *, store: bool, key_id: bytes = b"", label: str = "") -> TokenMaterial:
        """Unwrap the material as the spec's key: a session object to check, or (``store``)
        the token object with ``key_id`` and ``label``. Raises :class:`DecryptionFailedError`,
        :class:`MaterialRejectedError`."""
        target = _target(self.spec)
        template = dict(target.template)
        if store:
            template |= {Attribute.ID: key_id, Attribute.LABEL: label}
            # SoftHSM 2.6.1 sets CKA_ID and CKA_LABEL after creating the unwrapped object and
            # then refuses them on a non-modifiable one (AttributeReadOnly). Leaving it
            # modifiable costs nothing that matters: PKCS#11 forbids turning SENSITIVE off
            # or EXTRACTABLE on again.
            template.pop(Attribute.MODIFIABLE, None)
        target = _Target(target.object_class, target.key_type, target.capabilities, template)
        key = self._unwrap_with(
            self._ephemeral if self._ephemeral is not None else self.wrapping_key,
            self._wrapped_key,
            target,
            mechanism=Mechanism.AES_KEY_WRAP_PAD
            if self._ephemeral is not None
            else Mechanism.RSA_PKCS_OAEP,
            param=None if self._ephemeral is not None else oaep_param(OAEP_HASHES[self.algorithm]),
            store=store,
        )
        return TokenMaterial(self.spec.kind, key)

    def check(self, candidate: TokenMaterial) -> None:
        """Reject a session-object candidate that is not a key of the spec.

        Secret lengths are checked as far as the token lets them be seen without reading
        them: see ``docs/pkcs11-key-kinds.md``. Raises :class:`MaterialRejectedError`.
        """
        key = candidate.key
        if self.spec.kind in (MaterialKind.AES, MaterialKind.HMAC):
            self._check_secret_length(key)
            return
        if self.spec.kind is MaterialKind.RSA:
            bits = len(key[Attribute.MODULUS].lstrip(b"\x00")) * 8
            if bits != self.spec.bits:
                raise MaterialRejectedError(f"the private key is not a {self.spec_name} key")
            return
        oid = _ec_params_oid(key)
        if oid != self.spec.curve_oid and not (
            self.spec.kind is MaterialKind.ED25519 and oid == "edwards25519"
        ):
            raise MaterialRejectedError(f"the private key is not a {self.spec_name} key")

    def _check_secret_length(self, key: _KeyObject) -> None:
        rejected = MaterialRejectedError(f"the key material is not a {self.spec_name} key")
        if self.spec.kind is MaterialKind.AES:
            shortest = longest = self.spec.bits // 8
            try:
                # AES runs only with 16, 24 or 32 bytes.
                key.encrypt(
                    bytes(16),
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(bytes(12), b"", 128),
                )
            except _KEY_LENGTH_REFUSALS:
                raise rejected from None
            if self._ephemeral is None:
                # No wrapped length to bound it: tell 32 bytes from 16 or 24 with a generic
                # copy, which SoftHSM refuses for HMAC-SHA256 when shorter than 32 bytes.
                self._check_generic_copy(rejected)
        else:
            shortest = HMAC_KEY_BYTES[self.spec_name]
            longest = HMAC_MAX_IMPORT_BYTES[self.spec_name]
            hmac_mechanism = HASHES[f"SHA_{shortest * 8}"].hmac_mechanism
            try:
                # SoftHSM refuses an HMAC key shorter than AWS's minimum for the spec.
                key.sign(b"length check", mechanism=hmac_mechanism)
            except _KEY_LENGTH_REFUSALS:
                raise rejected from None
        if self._ephemeral is not None:
            # RFC 5649 pads to 8 bytes and adds 8: the wrapped length bounds the key length.
            padded = len(self._wrapped_key) - 8
            if not (shortest + 7) // 8 * 8 <= padded <= (longest + 7) // 8 * 8:
                raise rejected

    def _check_generic_copy(self, rejected: MaterialRejectedError) -> None:
        copy = self._unwrap_with(
            self.wrapping_key,
            self._wrapped_key,
            _Target(
                ObjectClass.SECRET_KEY,
                KeyType.GENERIC_SECRET,
                MechanismFlag.SIGN,
                dict(SECRET_TEMPLATE),
            ),
            mechanism=Mechanism.RSA_PKCS_OAEP,
            param=oaep_param(OAEP_HASHES[self.algorithm]),
        )
        try:
            copy.sign(b"length check", mechanism=HASHES["SHA_256"].hmac_mechanism)
        except _KEY_LENGTH_REFUSALS:
            raise rejected from None
        finally:
            with contextlib.suppress(pkcs11.PKCS11Error):
                copy.destroy()

    def same_as(self, existing: TokenMaterial, candidate: TokenMaterial) -> bool:
        """Whether ``candidate`` is the material ``existing`` holds, compared in the token."""
        if existing.kind is not candidate.kind:
            return False
        if existing.kind is MaterialKind.AES:
            param = GCMParams(bytes(12), b"mock-kms same-material check", 128)

            def probe(key: _KeyObject) -> bytes:
                return bytes(
                    key.encrypt(bytes(16), mechanism=Mechanism.AES_GCM, mechanism_param=param)
                )

            return probe(existing.key) == probe(candidate.key)
        if existing.kind is MaterialKind.HMAC:
            mechanism = HASHES["SHA_256"].hmac_mechanism

            def mac(key: _KeyObject) -> bytes:
                return bytes(key.sign(b"mock-kms same-material check", mechanism=mechanism))

            return mac(existing.key) == mac(candidate.key)
        if existing.kind is MaterialKind.RSA:
            return bool(existing.key[Attribute.MODULUS] == candidate.key[Attribute.MODULUS])
        if existing.public is None:
            return False
        point = public_point(candidate)
        existing_point = ec_point_bytes(existing.public[Attribute.EC_POINT], len(point) // 2)
        return existing_point == point

    def _unwrap_with(
        self,
        unwrapping_key: _KeyObject,
        data: bytes,
        target: _Target,
        *,
        mechanism: Mechanism,
        param: Any,
        store: bool = False,
    ) -> _KeyObject:
        try:
            return unwrapping_key.unwrap_key(
                target.object_class,
                target.key_type,
                data,
                mechanism=mechanism,
                mechanism_param=param,
                store=store,
                capabilities=target.capabilities,
                template=target.template,
            )
        except DECRYPT_FAILURES:
            unwrapping_key[Attribute.CLASS]
            raise DecryptionFailedError() from None
        except UNWRAP_REJECTIONS:
            # SoftHSM says FunctionFailed when the unwrapped bytes do not parse as a key of
            # the type; check the token still answers before blaming the material.
            unwrapping_key[Attribute.CLASS]
            raise MaterialRejectedError(f"the key material is not a {self.spec_name} key") from None


def _ec_params_oid(key: _KeyObject) -> str:
    params = bytes(key[Attribute.EC_PARAMS])
    if params[:1] == b"\x13":
        # A PrintableString curve name, as PKCS#11 3.0 allows for Edwards curves.
        return params[2:].decode("ascii", "replace")
    return decode_oid(params)


def public_point(material: TokenMaterial) -> bytes:
    """The uncompressed public point of an unwrapped EC private key, worked out in the token:
    ECDH with the generator gives ``x`` (public, so it may leave the token), and a signature
    by the key picks ``y`` from the two candidates."""
    _spec, curve = curve_for_oid(decode_oid(material.key[Attribute.EC_PARAMS]))
    generator = (
        ec.derive_private_key(1, curve)
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    x = _ecdh(material.key, curve, generator)
    digest_algorithm = hashes.SHA256()
    digest = hashes.Hash(digest_algorithm)
    digest.update(b"mock-kms public point")
    value = digest.finalize()
    signature = bytes(material.key.sign(value, mechanism=Mechanism.ECDSA))
    public = ec_public_point_from_x(curve, x, value, digest_algorithm, signature)
    return public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def create_public_object(
    session: Any, material: TokenMaterial, key_id: bytes, label: str
) -> _KeyObject:
    """The public token object of an unwrapped private key (RSA from its modulus and
    exponent, EC from :func:`public_point`). File lock held."""
    base = {
        Attribute.CLASS: ObjectClass.PUBLIC_KEY,
        Attribute.TOKEN: True,
        Attribute.ID: key_id,
        Attribute.LABEL: label,
        Attribute.VERIFY: True,
        **PUBLIC_TEMPLATE,
    }
    key = material.key
    if material.kind is MaterialKind.RSA:
        return session.create_object(
            {
                **base,
                Attribute.KEY_TYPE: KeyType.RSA,
                Attribute.MODULUS: key[Attribute.MODULUS],
                Attribute.PUBLIC_EXPONENT: key[Attribute.PUBLIC_EXPONENT],
            }
        )
    if material.kind is MaterialKind.EC:
        point = public_point(material)
        # Check the point decodes on the key's curve before storing it.
        ec_public_key(key[Attribute.EC_PARAMS], point)
        return session.create_object(
            {
                **base,
                Attribute.KEY_TYPE: KeyType.EC,
                Attribute.EC_PARAMS: key[Attribute.EC_PARAMS],
                Attribute.EC_POINT: OctetString(point).dump(),
            }
        )
    return session.create_object(
        {
            **base,
            Attribute.KEY_TYPE: KeyType.EC_EDWARDS,
            Attribute.EC_PARAMS: encode_oid(ED25519_OID),
            Attribute.EC_POINT: key[Attribute.EC_POINT],
        }
    )
