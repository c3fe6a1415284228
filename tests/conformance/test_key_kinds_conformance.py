"""One suite, every backend: the key kinds of ``backends.base.KeyBackend`` beyond AES.

RSA, EC, Ed25519 and HMAC material is created, used and checked with code no one here wrote:
public keys parse and signatures verify in ``cryptography`` and the ``openssl`` command line,
OAEP ciphertexts come from ``cryptography``, HMACs and ECDH secrets equal the standard
library's and ``cryptography``'s, and imported material is wrapped offline with
``cryptography`` and with ``openssl pkeyutl``/``openssl enc``. Each test runs against the
software keystore and a real SoftHSM token, for every spec and algorithm the backend declares;
without SoftHSM the PKCS#11 half is skipped locally and fails in CI (``CI`` set).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backends import ed25519ph
from backends.base import (
    DecryptionFailedError,
    KeyBackend,
    MaterialNotFoundError,
    MaterialRejectedError,
    UnsupportedMechanismError,
)
from backends.key_specs import (
    EC_CURVES,
    HMAC_SPECS,
    KEY_AGREEMENT_SPECS,
    RSA_SPECS,
    SIGNING_ALGORITHMS,
    SIGNING_HASHES,
)
from backends.software import SoftwareBackend
from tests.conftest import require_in_ci
from tests.support.backends import material, nonce, run_python
from tests.support.softhsm import (
    MISSING_REASON,
    new_in_process_token,
    shared_softhsm_dir,
    softhsm_available,
)

ALL_PAIR_SPECS = [*RSA_SPECS, *EC_CURVES, "ECC_NIST_EDWARDS25519"]
OAEP = {
    "RSAES_OAEP_SHA_1": hashes.SHA1,
    "RSAES_OAEP_SHA_256": hashes.SHA256,
}
PKCS8 = (
    serialization.Encoding.DER,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
)


# --- Subjects ------------------------------------------------------------------------------


class Subject:
    """A backend under test, with the material made for it once per module (RSA-4096
    generation in SoftHSM takes seconds)."""

    def __init__(self, kind: str, backend: KeyBackend, config: dict[str, str]) -> None:
        self.kind = kind
        self.backend = backend
        self.config = config
        self._materials: dict[str, str] = {}

    def material(self, key_spec: str) -> str:
        if key_spec not in self.backend.capabilities.key_specs:
            pytest.skip(f"{self.kind} does not declare {key_spec}")
        if key_spec not in self._materials:
            material_id = material()
            self.backend.create_material(material_id, key_spec)
            self._materials[key_spec] = material_id
        return self._materials[key_spec]

    def require(self, declared: frozenset[str], what: str) -> None:
        if what not in declared:
            pytest.skip(f"{self.kind} does not declare {what}")

    def reopen(self) -> KeyBackend:
        if self.kind == "software":
            return SoftwareBackend(
                Path(self.config["data_dir"]), bytes.fromhex(self.config["root_key"])
            )
        from backends.pkcs11 import Pkcs11Backend

        return Pkcs11Backend.open(
            self.config["module"],
            self.config["label"],
            None,
            Path(self.config["pin_file"]),
            Path(self.config["lock_dir"]),
        )


@pytest.fixture(scope="module", params=["software", "pkcs11"])
def subject(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Subject]:
    if request.param == "software":
        data_dir = tmp_path_factory.mktemp("software-kinds")
        root_key = os.urandom(32)
        made = Subject(
            "software",
            SoftwareBackend(data_dir, root_key),
            {"kind": "software", "data_dir": str(data_dir), "root_key": root_key.hex()},
        )
    else:
        if not softhsm_available():
            require_in_ci(MISSING_REASON)
        from backends.pkcs11 import Pkcs11Backend

        base = tmp_path_factory.getbasetemp() / "softhsm"
        token = new_in_process_token(base, prefix="kinds")
        lock_dir = shared_softhsm_dir(base)
        made = Subject(
            "pkcs11",
            Pkcs11Backend.open(token.module_path, token.label, None, token.pin_file, lock_dir),
            {
                "kind": "pkcs11",
                "module": token.module_path,
                "label": token.label,
                "pin_file": str(token.pin_file),
                "pin": token.read_pin(),
                "lock_dir": str(lock_dir),
            },
        )
    try:
        yield made
    finally:
        made.backend.close()


def public_key_of(subject: Subject, material_id: str) -> PublicKeyTypes:
    return serialization.load_der_public_key(subject.backend.public_key(material_id))


def digest_of(algorithm: str, message: bytes) -> bytes:
    digest = SIGNING_HASHES[algorithm]
    assert digest is not None
    hasher = hashes.Hash(digest())
    hasher.update(message)
    return hasher.finalize()


def verify(public: PublicKeyTypes, algorithm: str, message: bytes, signature: bytes) -> None:
    """Verify as an offline AWS user would (raises InvalidSignature)."""
    digest = SIGNING_HASHES[algorithm]
    if isinstance(public, rsa.RSAPublicKey):
        assert digest is not None
        if algorithm.startswith("RSASSA_PSS_"):
            scheme: padding.AsymmetricPadding = padding.PSS(
                mgf=padding.MGF1(digest()), salt_length=digest().digest_size
            )
        else:
            scheme = padding.PKCS1v15()
        public.verify(signature, message, scheme, digest())
    elif isinstance(public, ec.EllipticCurvePublicKey):
        assert digest is not None
        public.verify(signature, message, ec.ECDSA(digest()))
    elif isinstance(public, ed25519.Ed25519PublicKey):
        if algorithm == "ED25519_PH_SHA_512":
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            if not ed25519ph.verify(raw, hashlib.sha512(message).digest(), signature):
                raise InvalidSignature()
        else:
            public.verify(signature, message)
    else:
        raise AssertionError(f"unexpected public key {public!r}")


def use_material(backend: KeyBackend, key_spec: str, material_id: str) -> None:
    """One operation of the spec's kind on ``material_id``."""
    if key_spec == "SYMMETRIC_DEFAULT":
        backend.encrypt(material_id, nonce(), b"", b"")
    elif key_spec in HMAC_SPECS:
        backend.generate_mac(material_id, HMAC_SPECS[key_spec][0], b"m")
    else:
        backend.public_key(material_id)


def sign_message(subject: Subject, material_id: str, algorithm: str, message: bytes) -> bytes:
    """What the service does for MessageType RAW: digest here, sign in the backend."""
    if SIGNING_HASHES[algorithm] is None:
        return subject.backend.sign(material_id, algorithm, message)
    return subject.backend.sign(material_id, algorithm, digest_of(algorithm, message))


# --- Declared kinds ------------------------------------------------------------------------


def test_declares_the_kinds_softhsm_serves(subject: Subject) -> None:
    capabilities = subject.backend.capabilities
    for spec in [*RSA_SPECS, "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521", *HMAC_SPECS]:
        assert spec in capabilities.key_specs
    assert {"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"} <= capabilities.encryption_algorithms
    assert set(KEY_AGREEMENT_SPECS) <= capabilities.key_agreement_specs
    assert {"RSAES_OAEP_SHA_1", "RSA_AES_KEY_WRAP_SHA_1"} <= capabilities.wrapping_algorithms
    assert capabilities.exportable is (subject.kind == "software")


@pytest.mark.parametrize("key_spec", ALL_PAIR_SPECS)
def test_public_key_is_der_spki_of_the_spec(subject: Subject, key_spec: str) -> None:
    public = public_key_of(subject, subject.material(key_spec))
    if key_spec in RSA_SPECS:
        assert isinstance(public, rsa.RSAPublicKey)
        assert public.key_size == RSA_SPECS[key_spec]
        assert public.public_numbers().e == 65537
    elif key_spec in EC_CURVES:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert isinstance(public.curve, EC_CURVES[key_spec])
    else:
        assert isinstance(public, ed25519.Ed25519PublicKey)


@pytest.mark.parametrize(
    ("key_spec", "algorithm"),
    [(spec, algorithm) for spec in ALL_PAIR_SPECS for algorithm in SIGNING_ALGORITHMS[spec]],
)
def test_signatures_verify_offline(subject: Subject, key_spec: str, algorithm: str) -> None:
    subject.require(subject.backend.capabilities.signing_algorithms, algorithm)
    material_id = subject.material(key_spec)
    public = public_key_of(subject, material_id)
    message = os.urandom(100)

    signature = sign_message(subject, material_id, algorithm, message)

    verify(public, algorithm, message, signature)
    with pytest.raises(InvalidSignature):
        verify(public, algorithm, message + b"!", signature)


@pytest.mark.parametrize(
    ("key_spec", "algorithm", "digest"),
    [
        ("ECC_NIST_P256", "ECDSA_SHA_256", "sha256"),
        ("ECC_SECG_P256K1", "ECDSA_SHA_256", "sha256"),
        ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256", "sha256"),
        ("RSA_3072", "RSASSA_PSS_SHA_384", "sha384"),
    ],
)
def test_openssl_verifies_signatures(
    subject: Subject, tmp_path: Path, key_spec: str, algorithm: str, digest: str
) -> None:
    material_id = subject.material(key_spec)
    message = b"signed by a KMS key, checked by openssl"
    (tmp_path / "message").write_bytes(message)
    (tmp_path / "signature").write_bytes(sign_message(subject, material_id, algorithm, message))
    (tmp_path / "public.der").write_bytes(subject.backend.public_key(material_id))
    options = []
    if "PSS" in algorithm:
        options = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]

    result = subprocess.run(
        [
            *("openssl", "dgst", f"-{digest}", "-verify", "public.der", "-keyform", "DER"),
            *options,
            *("-signature", "signature", "message"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "Verified OK" in result.stdout


def test_signing_algorithm_of_another_spec_is_refused(subject: Subject) -> None:
    p256 = subject.material("ECC_NIST_P256")
    with pytest.raises(UnsupportedMechanismError):
        subject.backend.sign(p256, "ECDSA_SHA_384", bytes(48))
    with pytest.raises(UnsupportedMechanismError):
        subject.backend.sign(p256, "RSASSA_PSS_SHA_256", bytes(32))


# --- RSA-OAEP ------------------------------------------------------------------------------


@pytest.mark.parametrize("key_spec", ["RSA_2048", "RSA_4096"])
@pytest.mark.parametrize("algorithm", sorted(OAEP))
def test_oaep_decrypts_what_cryptography_encrypted(
    subject: Subject, key_spec: str, algorithm: str
) -> None:
    material_id = subject.material(key_spec)
    public = public_key_of(subject, material_id)
    assert isinstance(public, rsa.RSAPublicKey)
    digest = OAEP[algorithm]
    scheme = padding.OAEP(mgf=padding.MGF1(digest()), algorithm=digest(), label=None)
    longest = public.key_size // 8 - 2 * digest().digest_size - 2

    for plaintext in (b"", b"x", os.urandom(longest)):
        ciphertext = public.encrypt(plaintext, scheme)
        assert subject.backend.decrypt_asymmetric(material_id, algorithm, ciphertext) == plaintext


@pytest.mark.parametrize("algorithm", sorted(OAEP))
def test_oaep_failures_all_look_the_same(subject: Subject, algorithm: str) -> None:
    material_id = subject.material("RSA_2048")
    public = public_key_of(subject, material_id)
    assert isinstance(public, rsa.RSAPublicKey)
    good = public.encrypt(
        b"secret",
        padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
    )
    other = "RSAES_OAEP_SHA_256" if algorithm == "RSAES_OAEP_SHA_1" else "RSAES_OAEP_SHA_1"
    tampered = good[:-1] + bytes([good[-1] ^ 1])
    cases = [tampered, good[:-1], good + b"\x00", b"\xff" * 256]
    if algorithm == other:
        cases.append(good)
    for ciphertext in cases:
        with pytest.raises(DecryptionFailedError):
            subject.backend.decrypt_asymmetric(material_id, algorithm, ciphertext)
    if algorithm == "RSAES_OAEP_SHA_256":
        # The SHA-1 ciphertext under the SHA-256 algorithm.
        with pytest.raises(DecryptionFailedError):
            subject.backend.decrypt_asymmetric(material_id, algorithm, good)


# --- HMAC ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key_spec", sorted(HMAC_SPECS))
def test_generated_hmac_is_consistent(subject: Subject, key_spec: str) -> None:
    material_id = subject.material(key_spec)
    algorithm, digest, _, _ = HMAC_SPECS[key_spec]

    first = subject.backend.generate_mac(material_id, algorithm, b"message")

    assert len(first) == digest().digest_size
    assert subject.backend.generate_mac(material_id, algorithm, b"message") == first
    assert subject.backend.generate_mac(material_id, algorithm, b"message!") != first
    other = material()
    subject.backend.create_material(other, key_spec)
    assert subject.backend.generate_mac(other, algorithm, b"message") != first


# --- ECDH ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key_spec", KEY_AGREEMENT_SPECS)
def test_ecdh_equals_cryptography(subject: Subject, key_spec: str) -> None:
    subject.require(subject.backend.capabilities.key_agreement_specs, key_spec)
    material_id = subject.material(key_spec)
    public = public_key_of(subject, material_id)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    peer = ec.generate_private_key(EC_CURVES[key_spec]())
    peer_der = peer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    secret = subject.backend.derive_shared_secret(material_id, peer_der)

    assert secret == peer.exchange(ec.ECDH(), public)


def test_ecdh_refuses_a_peer_of_another_curve_or_garbage(subject: Subject) -> None:
    material_id = subject.material("ECC_NIST_P256")
    other_curve = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for peer in (other_curve, b"\x30\x03\x02\x01\x00", b"not a key"):
        with pytest.raises(MaterialRejectedError):
            subject.backend.derive_shared_secret(material_id, peer)


# --- Import --------------------------------------------------------------------------------


def wrapping_key(subject: Subject, key_spec: str = "RSA_2048") -> tuple[str, rsa.RSAPublicKey]:
    wrapping_key_id = material()
    public = serialization.load_der_public_key(
        subject.backend.create_wrapping_key(wrapping_key_id, key_spec)
    )
    assert isinstance(public, rsa.RSAPublicKey)
    return wrapping_key_id, public


def wrap(public: rsa.RSAPublicKey, algorithm: str, key_material: bytes) -> bytes:
    """Wrap as the AWS documentation's Python example does."""
    digest = hashes.SHA256 if algorithm.endswith("SHA_256") else hashes.SHA1
    scheme = padding.OAEP(mgf=padding.MGF1(digest()), algorithm=digest(), label=None)
    if algorithm.startswith("RSAES_OAEP_"):
        return public.encrypt(key_material, scheme)
    ephemeral = os.urandom(32)
    return public.encrypt(ephemeral, scheme) + keywrap.aes_key_wrap_with_padding(
        ephemeral, key_material
    )


def wrap_with_openssl(
    tmp_path: Path, public_der: bytes, algorithm: str, key_material: bytes
) -> bytes:
    """Wrap with the openssl commands of AWS's "Encrypt key material" page."""
    if shutil.which("openssl") is None:
        require_in_ci("openssl is not installed")
    (tmp_path / "wrapping.der").write_bytes(public_der)
    (tmp_path / "material.bin").write_bytes(key_material)
    md = "sha256" if algorithm.endswith("SHA_256") else "sha1"
    oaep = [
        "openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", "wrapping.der", "-keyform", "DER",
        "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", f"rsa_oaep_md:{md}",
        "-pkeyopt", f"rsa_mgf1_md:{md}",
    ]  # fmt: skip
    if algorithm.startswith("RSAES_OAEP_"):
        return _run(tmp_path, [*oaep, "-in", "material.bin"])
    ephemeral = os.urandom(32)
    (tmp_path / "ephemeral.bin").write_bytes(ephemeral)
    wrapped_key = _run(tmp_path, [*oaep, "-in", "ephemeral.bin"])
    wrapped_material = _run(
        tmp_path,
        [
            *("openssl", "enc", "-id-aes256-wrap-pad", "-K", ephemeral.hex()),
            *("-iv", "A65959A6", "-in", "material.bin"),
        ],
    )
    return wrapped_key + wrapped_material


def _run(cwd: Path, command: list[str]) -> bytes:
    result = subprocess.run(command, cwd=cwd, capture_output=True, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def unwrap(
    subject: Subject, key_spec: str, algorithm: str, key_material: bytes, tmp_path: Path | None
) -> str:
    subject.require(subject.backend.capabilities.wrapping_algorithms, algorithm)
    wrapping_key_id, public = wrapping_key(subject)
    if tmp_path is None:
        wrapped = wrap(public, algorithm, key_material)
    else:
        public_der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        wrapped = wrap_with_openssl(tmp_path, public_der, algorithm, key_material)
    material_id = material()
    subject.backend.unwrap_material(material_id, key_spec, wrapping_key_id, algorithm, wrapped)
    return material_id


SYMMETRIC_WRAPPINGS = [
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "RSA_AES_KEY_WRAP_SHA_1",
    "RSA_AES_KEY_WRAP_SHA_256",
]


@pytest.mark.parametrize("algorithm", SYMMETRIC_WRAPPINGS)
@pytest.mark.parametrize("tool", ["cryptography", "openssl"])
def test_imported_aes_key_encrypts_as_the_known_key(
    subject: Subject, tmp_path: Path, algorithm: str, tool: str
) -> None:
    known = os.urandom(32)
    material_id = unwrap(
        subject, "SYMMETRIC_DEFAULT", algorithm, known, tmp_path if tool == "openssl" else None
    )
    iv = nonce()

    ciphertext = subject.backend.encrypt(material_id, iv, b"imported", b"aad")

    assert ciphertext == AESGCM(known).encrypt(iv, b"imported", b"aad")
    assert subject.backend.decrypt(material_id, iv, ciphertext, b"aad") == b"imported"


@pytest.mark.parametrize("key_spec", sorted(HMAC_SPECS))
@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_1", "RSA_AES_KEY_WRAP_SHA_1"])
def test_imported_hmac_key_equals_pythons_hmac(
    subject: Subject, tmp_path: Path, key_spec: str, algorithm: str
) -> None:
    mac_algorithm, digest, shortest, _ = HMAC_SPECS[key_spec]
    known = os.urandom(shortest)
    material_id = unwrap(subject, key_spec, algorithm, known, tmp_path)

    mac = subject.backend.generate_mac(material_id, mac_algorithm, b"message")

    assert mac == hmac.new(known, b"message", digest.name).digest()


def _private_key(key_spec: str) -> PrivateKeyTypes:
    if key_spec in RSA_SPECS:
        return rsa.generate_private_key(65537, RSA_SPECS[key_spec])
    if key_spec in EC_CURVES:
        return ec.generate_private_key(EC_CURVES[key_spec]())
    return ed25519.Ed25519PrivateKey.generate()


@pytest.mark.parametrize(
    "key_spec",
    ["RSA_2048", "ECC_NIST_P256", "ECC_NIST_P521", "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519"],
)
@pytest.mark.parametrize("tool", ["cryptography", "openssl"])
def test_imported_private_key_signs_for_its_public_key(
    subject: Subject, tmp_path: Path, key_spec: str, tool: str
) -> None:
    private = _private_key(key_spec)
    try:
        material_id = unwrap(
            subject,
            key_spec,
            "RSA_AES_KEY_WRAP_SHA_1",
            private.private_bytes(*PKCS8),
            tmp_path if tool == "openssl" else None,
        )
    except UnsupportedMechanismError:
        # Declared per token: SoftHSM 2.6.1 cannot unwrap Ed25519 keys (see the docs page).
        assert subject.kind == "pkcs11" and key_spec == "ECC_NIST_EDWARDS25519"
        return
    expected = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert subject.backend.public_key(material_id) == expected
    algorithm = SIGNING_ALGORITHMS[key_spec][0]
    message = b"signed with imported material"
    verify(
        private.public_key(),
        algorithm,
        message,
        sign_message(subject, material_id, algorithm, message),
    )
    if key_spec in RSA_SPECS:
        assert isinstance(private, rsa.RSAPrivateKey)
        scheme = padding.OAEP(
            mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
        )
        ciphertext = private.public_key().encrypt(b"to the imported key", scheme)
        plaintext = subject.backend.decrypt_asymmetric(
            material_id, "RSAES_OAEP_SHA_256", ciphertext
        )
        assert plaintext == b"to the imported key"
    if key_spec in KEY_AGREEMENT_SPECS:
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        peer = ec.generate_private_key(private.curve)
        peer_der = peer.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert subject.backend.derive_shared_secret(material_id, peer_der) == private.exchange(
            ec.ECDH(), peer.public_key()
        )


def test_reimport_of_the_same_material_is_idempotent_and_other_material_refused(
    subject: Subject,
) -> None:
    known = os.urandom(32)
    wrapping_key_id, public = wrapping_key(subject)
    material_id = material()
    backend = subject.backend
    backend.unwrap_material(
        material_id,
        "SYMMETRIC_DEFAULT",
        wrapping_key_id,
        "RSAES_OAEP_SHA_1",
        wrap(public, "RSAES_OAEP_SHA_1", known),
    )
    backend.unwrap_material(
        material_id,
        "SYMMETRIC_DEFAULT",
        wrapping_key_id,
        "RSAES_OAEP_SHA_1",
        wrap(public, "RSAES_OAEP_SHA_1", known),
    )
    with pytest.raises(MaterialRejectedError):
        backend.unwrap_material(
            material_id,
            "SYMMETRIC_DEFAULT",
            wrapping_key_id,
            "RSAES_OAEP_SHA_1",
            wrap(public, "RSAES_OAEP_SHA_1", os.urandom(32)),
        )
    iv = nonce()
    assert backend.encrypt(material_id, iv, b"x", b"") == AESGCM(known).encrypt(iv, b"x", b"")


@pytest.mark.parametrize(
    ("key_spec", "algorithm", "make"),
    [
        ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", lambda: os.urandom(16)),
        ("SYMMETRIC_DEFAULT", "RSA_AES_KEY_WRAP_SHA_1", lambda: os.urandom(24)),
        ("HMAC_256", "RSA_AES_KEY_WRAP_SHA_1", lambda: os.urandom(20)),
        ("HMAC_384", "RSAES_OAEP_SHA_1", lambda: os.urandom(32)),
        (
            "RSA_2048",
            "RSA_AES_KEY_WRAP_SHA_1",
            lambda: _private_key("ECC_NIST_P256").private_bytes(*PKCS8),
        ),
        (
            "RSA_3072",
            "RSA_AES_KEY_WRAP_SHA_1",
            lambda: _private_key("RSA_2048").private_bytes(*PKCS8),
        ),
        (
            "ECC_NIST_P384",
            "RSA_AES_KEY_WRAP_SHA_1",
            lambda: _private_key("ECC_NIST_P256").private_bytes(*PKCS8),
        ),
        ("ECC_NIST_P256", "RSA_AES_KEY_WRAP_SHA_1", lambda: os.urandom(120)),
    ],
)
def test_material_that_is_not_a_key_of_the_spec_is_rejected(
    subject: Subject, key_spec: str, algorithm: str, make: Any
) -> None:
    wrapping_key_id, public = wrapping_key(subject)
    material_id = material()
    with pytest.raises(MaterialRejectedError):
        subject.backend.unwrap_material(
            material_id, key_spec, wrapping_key_id, algorithm, wrap(public, algorithm, make())
        )
    # Nothing was kept under the id.
    with pytest.raises(MaterialNotFoundError):
        use_material(subject.backend, key_spec, material_id)


@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_1", "RSA_AES_KEY_WRAP_SHA_1"])
def test_wrapped_bytes_that_do_not_unwrap_fail_decryption(subject: Subject, algorithm: str) -> None:
    wrapping_key_id, public = wrapping_key(subject)
    good = wrap(public, algorithm, os.urandom(32))
    for wrapped in (good[:-1] + bytes([good[-1] ^ 1]), os.urandom(len(good)), good[:100]):
        with pytest.raises(DecryptionFailedError):
            subject.backend.unwrap_material(
                material(), "SYMMETRIC_DEFAULT", wrapping_key_id, algorithm, wrapped
            )
    # Under another wrapping key.
    other_id, _ = wrapping_key(subject)
    with pytest.raises(DecryptionFailedError):
        subject.backend.unwrap_material(material(), "SYMMETRIC_DEFAULT", other_id, algorithm, good)


def test_unknown_or_destroyed_wrapping_key_is_not_found(subject: Subject) -> None:
    wrapping_key_id, public = wrapping_key(subject)
    wrapped = wrap(public, "RSAES_OAEP_SHA_1", os.urandom(32))
    subject.backend.destroy_wrapping_key(wrapping_key_id)
    subject.backend.destroy_wrapping_key(wrapping_key_id)
    for key_id in (wrapping_key_id, material()):
        with pytest.raises(MaterialNotFoundError):
            subject.backend.unwrap_material(
                material(), "SYMMETRIC_DEFAULT", key_id, "RSAES_OAEP_SHA_1", wrapped
            )


@pytest.mark.parametrize("key_spec", ["RSA_2048", "RSA_3072", "RSA_4096"])
def test_wrapping_keys_of_every_size(subject: Subject, key_spec: str) -> None:
    subject.require(subject.backend.capabilities.wrapping_key_specs, key_spec)
    wrapping_key_id, public = wrapping_key(subject, key_spec)
    assert public.key_size == RSA_SPECS[key_spec]
    known = os.urandom(32)
    material_id = material()
    subject.backend.unwrap_material(
        material_id,
        "HMAC_256",
        wrapping_key_id,
        "RSAES_OAEP_SHA_1",
        wrap(public, "RSAES_OAEP_SHA_1", known),
    )
    assert (
        subject.backend.generate_mac(material_id, "HMAC_SHA_256", b"m")
        == hmac.new(known, b"m", "sha256").digest()
    )
    subject.backend.destroy_wrapping_key(wrapping_key_id)


# --- Refusals ------------------------------------------------------------------------------


def test_undeclared_specs_and_algorithms_are_refused(subject: Subject) -> None:
    backend = subject.backend
    capabilities = backend.capabilities
    for spec in ("SM2", "NOT_A_SPEC"):
        assert spec not in capabilities.key_specs
        with pytest.raises(UnsupportedMechanismError):
            backend.create_material(material(), spec)
    every_signing = {name for names in SIGNING_ALGORITHMS.values() for name in names}
    for algorithm in sorted(every_signing - capabilities.signing_algorithms):
        with pytest.raises(UnsupportedMechanismError):
            backend.sign(material(), algorithm, bytes(64))
    for algorithm in sorted(set(SYMMETRIC_WRAPPINGS) - capabilities.wrapping_algorithms):
        with pytest.raises(UnsupportedMechanismError):
            backend.unwrap_material(material(), "SYMMETRIC_DEFAULT", material(), algorithm, b"x")
    with pytest.raises(UnsupportedMechanismError):
        backend.decrypt_asymmetric(
            subject.material("ECC_NIST_P256"), "RSAES_OAEP_SHA_1", bytes(256)
        )
    with pytest.raises(UnsupportedMechanismError):
        backend.generate_mac(subject.material("RSA_2048"), "HMAC_SHA_256", b"m")


def test_pkcs11_never_takes_or_gives_plaintext_material(subject: Subject) -> None:
    if subject.kind != "pkcs11":
        pytest.skip("the software keystore imports and exports plaintext by design")
    with pytest.raises(UnsupportedMechanismError):
        subject.backend.import_material(material(), "HMAC_256", os.urandom(32))
    with pytest.raises(UnsupportedMechanismError):
        subject.backend.export_material(subject.material("HMAC_256"))


# --- Token objects (PKCS#11 only) ----------------------------------------------------------

INSPECT_PROGRAM = """
import json, sys
import pkcs11
from pkcs11 import Attribute, KeyType, ObjectClass

def read(key, attribute):
    try:
        return key[attribute]
    except pkcs11.PKCS11Error as exc:
        return type(exc).__name__

request = json.load(sys.stdin)
token = pkcs11.lib(request["module"]).get_token(token_label=request["label"])
found = []
with token.open(rw=True, user_pin=request["pin"]) as session:
    for key in session.get_objects({Attribute.ID: bytes.fromhex(request["id"])}):
        entry = {"class": int(key[Attribute.CLASS]), "token": bool(key[Attribute.TOKEN])}
        if key.object_class != ObjectClass.PUBLIC_KEY:
            entry.update({
                "private": bool(key[Attribute.PRIVATE]),
                "sensitive": bool(key[Attribute.SENSITIVE]),
                "extractable": bool(key[Attribute.EXTRACTABLE]),
                "value": read(key, Attribute.PRIVATE_EXPONENT
                              if key.key_type == KeyType.RSA else Attribute.VALUE),
            })
        found.append(entry)
print(json.dumps(found))
"""


def token_objects(subject: Subject, material_id: str) -> list[dict[str, Any]]:
    """The objects of one id, read with python-pkcs11 directly in a child process."""
    objects: list[dict[str, Any]] = run_python(
        INSPECT_PROGRAM,
        {
            "module": subject.config["module"],
            "label": subject.config["label"],
            "pin": subject.config["pin"],
            "id": material_id,
        },
    )
    return objects


@pytest.mark.parametrize(
    ("key_spec", "classes"),
    [
        ("RSA_2048", [2, 3]),
        ("ECC_NIST_P256", [2, 3]),
        ("ECC_NIST_EDWARDS25519", [2, 3]),
        ("HMAC_256", [4]),
    ],
)
def test_pkcs11_keys_are_sensitive_token_objects(
    subject: Subject, key_spec: str, classes: list[int]
) -> None:
    if subject.kind != "pkcs11":
        pytest.skip("token objects exist only in the PKCS#11 backend")
    objects = token_objects(subject, subject.material(key_spec))
    assert sorted(item["class"] for item in objects) == classes
    for item in objects:
        assert item["token"] is True
        if item["class"] != 2:  # CKO_PUBLIC_KEY
            assert item["private"] is True
            assert item["sensitive"] is True
            assert item["extractable"] is False
            assert item["value"] == "AttributeSensitive"


def test_pkcs11_imported_keys_are_sensitive_token_objects(subject: Subject) -> None:
    if subject.kind != "pkcs11":
        pytest.skip("token objects exist only in the PKCS#11 backend")
    imported = [
        unwrap(subject, "HMAC_256", "RSAES_OAEP_SHA_1", os.urandom(32), None),
        unwrap(
            subject,
            "ECC_NIST_P256",
            "RSA_AES_KEY_WRAP_SHA_1",
            _private_key("ECC_NIST_P256").private_bytes(*PKCS8),
            None,
        ),
    ]
    for material_id, classes in zip(imported, ([4], [2, 3]), strict=True):
        objects = token_objects(subject, material_id)
        assert sorted(item["class"] for item in objects) == classes
        for item in objects:
            if item["class"] != 2:
                assert (item["sensitive"], item["extractable"], item["private"]) == (
                    True,
                    False,
                    True,
                )
                assert item["value"] == "AttributeSensitive"


# --- Destroy and restart -------------------------------------------------------------------


@pytest.mark.parametrize("key_spec", ["ECC_NIST_P256", "HMAC_224"])
def test_destroy_removes_every_object_of_the_material(subject: Subject, key_spec: str) -> None:
    subject.require(subject.backend.capabilities.key_specs, key_spec)
    material_id = material()
    subject.backend.create_material(material_id, key_spec)
    if key_spec.startswith("ECC"):
        subject.backend.public_key(material_id)

    subject.backend.destroy_material(material_id)
    subject.backend.destroy_material(material_id)

    with pytest.raises(MaterialNotFoundError):
        use_material(subject.backend, key_spec, material_id)
    reopened = subject.reopen()
    try:
        with pytest.raises(MaterialNotFoundError):
            use_material(reopened, key_spec, material_id)
    finally:
        reopened.close()
    if subject.kind == "pkcs11":
        assert token_objects(subject, material_id) == []


CHILD_PROGRAM = """
import json, sys, hashlib
from pathlib import Path
request = json.load(sys.stdin)
config = request["config"]
if config["kind"] == "software":
    from backends.software import SoftwareBackend
    backend = SoftwareBackend(Path(config["data_dir"]), bytes.fromhex(config["root_key"]))
else:
    from backends.pkcs11 import Pkcs11Backend
    backend = Pkcs11Backend.open(config["module"], config["label"], None,
                                 Path(config["pin_file"]), Path(config["lock_dir"]))
digest = hashlib.sha256(b"after restart").digest()
answer = {
    "public_key": backend.public_key(request["ec"]).hex(),
    "signature": backend.sign(request["ec"], "ECDSA_SHA_256", digest).hex(),
    "mac": backend.generate_mac(request["hmac"], "HMAC_SHA_256", b"after restart").hex(),
}
backend.close()
print(json.dumps(answer))
"""


def test_a_new_process_finds_and_uses_every_kind(subject: Subject) -> None:
    ec_id, hmac_id = subject.material("ECC_NIST_P256"), subject.material("HMAC_256")
    public_der = subject.backend.public_key(ec_id)

    answer = run_python(
        CHILD_PROGRAM,
        {"config": subject.config, "ec": ec_id, "hmac": hmac_id},
    )

    assert bytes.fromhex(answer["public_key"]) == public_der
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(
        bytes.fromhex(answer["signature"]),
        hashlib.sha256(b"after restart").digest(),
        ec.ECDSA(utils.Prehashed(hashes.SHA256())),
    )
    assert bytes.fromhex(answer["mac"]) == subject.backend.generate_mac(
        hmac_id, "HMAC_SHA_256", b"after restart"
    )


# --- Threads and processes -----------------------------------------------------------------


def test_several_threads_sign_and_mac_at_once(subject: Subject) -> None:
    ec_id, hmac_id = subject.material("ECC_NIST_P256"), subject.material("HMAC_256")
    public = public_key_of(subject, ec_id)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    expected_mac = subject.backend.generate_mac(hmac_id, "HMAC_SHA_256", b"threads")
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for round_number in range(25):
                message = f"{threading.get_ident()}:{round_number}".encode()
                signature = sign_message(subject, ec_id, "ECDSA_SHA_256", message)
                public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
                mac = subject.backend.generate_mac(hmac_id, "HMAC_SHA_256", b"threads")
                assert mac == expected_mac
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not any(thread.is_alive() for thread in threads)
    assert failures == []


OTHER_PROCESS_PROGRAM = """
import json, sys
from pathlib import Path
request = json.load(sys.stdin)
config = request["config"]
if config["kind"] == "software":
    from backends.software import SoftwareBackend
    backend = SoftwareBackend(Path(config["data_dir"]), bytes.fromhex(config["root_key"]))
else:
    from backends.pkcs11 import Pkcs11Backend
    backend = Pkcs11Backend.open(config["module"], config["label"], None,
                                 Path(config["pin_file"]), Path(config["lock_dir"]))
answer = {}
if request["action"] == "create":
    backend.create_material(request["material_id"], request["key_spec"])
    answer["public_key"] = backend.public_key(request["material_id"]).hex()
else:
    backend.destroy_material(request["material_id"])
backend.close()
print(json.dumps(answer))
"""


def in_other_process(subject: Subject, action: str, material_id: str, key_spec: str = "") -> Any:
    return run_python(
        OTHER_PROCESS_PROGRAM,
        {
            "config": subject.config,
            "action": action,
            "material_id": material_id,
            "key_spec": key_spec,
        },
    )


def test_processes_creating_one_id_at_once_end_up_with_one_pair(subject: Subject) -> None:
    material_id = material()
    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(
            pool.map(
                lambda _: in_other_process(subject, "create", material_id, "ECC_NIST_P256"),
                range(3),
            )
        )

    public_keys = {answer["public_key"] for answer in answers}
    assert public_keys == {subject.backend.public_key(material_id).hex()}
    if subject.kind == "pkcs11":
        assert sorted(item["class"] for item in token_objects(subject, material_id)) == [2, 3]


def test_material_destroyed_by_another_process_is_gone_here(subject: Subject) -> None:
    if subject.kind == "software":
        # The software keystore keeps opened private keys per process (the service's key
        # state, shared by every worker, is what stops a deleted key from being used).
        pytest.skip("the software keystore caches opened keys per process")
    material_id = material()
    subject.backend.create_material(material_id, "ECC_NIST_P256")
    sign_message(subject, material_id, "ECDSA_SHA_256", b"cached here")

    in_other_process(subject, "destroy", material_id)

    with pytest.raises(MaterialNotFoundError):
        sign_message(subject, material_id, "ECDSA_SHA_256", b"after the other process")
