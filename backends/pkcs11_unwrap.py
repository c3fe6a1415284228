"""ImportKeyMaterial in a PKCS#11 token: unwrap wrapped key material into the token, check
it is a key of the requested spec, compare it with what a material id may hold already, and
give an unwrapped private key its public token object.

The wrapping keys themselves are made by :func:`backends.pkcs11_keys.generate_wrapping_key`;
:meth:`backends.pkcs11.Pkcs11Backend.unwrap_material` drives the flow. Every function here
runs with the caller holding the backend's process lock (and, where it says so, the token's
file lock); none of them retries. What runs in the token and what outside is in
``docs/pkcs11-key-kinds.md``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import pkcs11
from asn1crypto.core import OctetString  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, GCMParams, KeyType, Mechanism, MechanismFlag, ObjectClass

from backends.base import (
    DecryptionFailedError,
    MaterialRejectedError,
    UnsupportedMechanismError,
)
from backends.pkcs11_capabilities import NOT_PRIVATE_KEY_ATTRIBUTES, TokenFeatures
from backends.pkcs11_encoding import (
    decode_oid,
    ec_point_bytes,
    ec_public_key,
    ec_public_point_from_x,
    encode_oid,
)
from backends.pkcs11_keys import (
    DECRYPT_FAILURES,
    PUBLIC_TEMPLATE,
    SECRET_TEMPLATE,
    TokenMaterial,
    ecdh,
)
from backends.pkcs11_specs import (
    ED25519_OID,
    HASHES,
    HMAC_KEY_BYTES,
    HMAC_MAX_IMPORT_BYTES,
    OAEP_HASHES,
    RSA_AES_KEY_WRAP_HASHES,
    KeySpecInfo,
    MaterialKind,
    curve_for_oid,
    oaep_param,
)

_KeyObject = Any

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
    x = ecdh(material.key, curve, generator)
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
