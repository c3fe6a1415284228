"""The software backend for every key kind: what it makes is checked with `cryptography`
(never with the backend itself), what it rejects is rejected with the documented error."""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from backends import ed25519ph
from backends.base import (
    BackendUnavailableError,
    DecryptionFailedError,
    MaterialNotFoundError,
    MaterialRejectedError,
    UnsupportedMechanismError,
)
from backends.key_specs import (
    EC_CURVES,
    HMAC_SPECS,
    ML_DSA_SPECS,
    SIGNING_ALGORITHMS,
    SIGNING_HASHES,
    oaep_max_plaintext,
)
from backends.software import KEYSTORE_FILE, SOFTWARE_CAPABILITIES, SoftwareBackend
from tests.support.backends import material

ROOT_KEY = bytes(range(32))


@pytest.fixture
def backend(tmp_path: Path) -> SoftwareBackend:
    return SoftwareBackend(tmp_path, ROOT_KEY)


def _public(backend: SoftwareBackend, material_id: str):  # type: ignore[no-untyped-def]
    return serialization.load_der_public_key(backend.public_key(material_id))


def test_capabilities_cover_every_commercial_spec() -> None:
    caps = SOFTWARE_CAPABILITIES
    for spec in (
        "SYMMETRIC_DEFAULT",
        "RSA_2048",
        "RSA_3072",
        "RSA_4096",
        "ECC_NIST_P256",
        "ECC_NIST_P384",
        "ECC_NIST_P521",
        "ECC_SECG_P256K1",
        "ECC_NIST_EDWARDS25519",
        "HMAC_224",
        "HMAC_256",
        "HMAC_384",
        "HMAC_512",
    ):
        assert spec in caps.key_specs
    assert "SM2" not in caps.key_specs
    assert caps.encryption_algorithms == {"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"}
    assert caps.key_agreement_specs == {"ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"}
    assert "RSA_AES_KEY_WRAP_SHA_256" in caps.wrapping_algorithms
    assert caps.exportable


@pytest.mark.parametrize(
    ("spec", "algorithm"),
    [
        (spec, algorithm)
        for spec, algorithms in SIGNING_ALGORITHMS.items()
        if spec in SOFTWARE_CAPABILITIES.key_specs
        and spec not in ML_DSA_SPECS
        and spec != "RSA_4096"  # generation is slow; 2048/3072 cover the same code
        for algorithm in algorithms
    ],
)
def test_signatures_verify_offline(backend: SoftwareBackend, spec: str, algorithm: str) -> None:
    material_id = material()
    backend.create_material(material_id, spec)
    message = b"signed by the software backend"
    public = _public(backend, material_id)
    digest_type = SIGNING_HASHES[algorithm]
    if digest_type is None:
        signature = backend.sign(material_id, algorithm, message)
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(signature, message)
        return
    digest = hashes.Hash(digest_type())
    digest.update(message)
    payload = digest.finalize()
    signature = backend.sign(material_id, algorithm, payload)
    if isinstance(public, rsa.RSAPublicKey):
        assert public.key_size == int(spec.split("_")[1])
        scheme = (
            padding.PSS(mgf=padding.MGF1(digest_type()), salt_length=digest_type().digest_size)
            if "PSS" in algorithm
            else padding.PKCS1v15()
        )
        public.verify(signature, message, scheme, digest_type())
    elif isinstance(public, ec.EllipticCurvePublicKey):
        assert isinstance(public.curve, EC_CURVES[spec])
        public.verify(signature, message, ec.ECDSA(digest_type()))
        utils.decode_dss_signature(signature)  # DER, as AWS returns it
    else:
        assert isinstance(public, ed25519.Ed25519PublicKey)
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert ed25519ph.verify(raw, hashlib.sha512(message).digest(), signature)


@pytest.mark.parametrize("spec", [s for s in ML_DSA_SPECS if s in SOFTWARE_CAPABILITIES.key_specs])
def test_ml_dsa_signature_verifies_offline(backend: SoftwareBackend, spec: str) -> None:
    material_id = material()
    backend.create_material(material_id, spec)
    signature = backend.sign(material_id, "ML_DSA_SHAKE_256", b"post-quantum")
    _public(backend, material_id).verify(signature, b"post-quantum")


def test_sign_refuses_an_algorithm_of_another_spec(backend: SoftwareBackend) -> None:
    material_id = material()
    backend.create_material(material_id, "ECC_NIST_P256")
    with pytest.raises(UnsupportedMechanismError):
        backend.sign(material_id, "ECDSA_SHA_384", os.urandom(48))
    with pytest.raises(UnsupportedMechanismError):
        backend.generate_mac(material_id, "HMAC_SHA_256", b"x")
    with pytest.raises(UnsupportedMechanismError):
        backend.encrypt(material_id, os.urandom(12), b"x", b"")


def test_ed25519ph_matches_rfc8032_vector() -> None:
    seed = bytes.fromhex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
    expected = bytes.fromhex(
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
        "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
    )
    digest = hashlib.sha512(b"abc").digest()
    assert ed25519ph.public_key(seed).hex() == (
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf"
    )
    assert ed25519ph.sign(seed, digest) == expected
    assert ed25519ph.verify(ed25519ph.public_key(seed), digest, expected)
    assert not ed25519ph.verify(
        ed25519ph.public_key(seed), hashlib.sha512(b"abd").digest(), expected
    )


@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])
def test_rsa_oaep_decrypts_offline_ciphertext(backend: SoftwareBackend, algorithm: str) -> None:
    material_id = material()
    backend.create_material(material_id, "RSA_2048")
    public = _public(backend, material_id)
    digest = hashes.SHA1() if algorithm.endswith("_1") else hashes.SHA256()
    oaep = padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
    longest = os.urandom(oaep_max_plaintext("RSA_2048", algorithm))
    assert (
        backend.decrypt_asymmetric(material_id, algorithm, public.encrypt(longest, oaep)) == longest
    )
    with pytest.raises(DecryptionFailedError):
        backend.decrypt_asymmetric(material_id, algorithm, os.urandom(256))


def test_oaep_limits_are_awss() -> None:
    assert [
        oaep_max_plaintext(s, "RSAES_OAEP_SHA_1") for s in ("RSA_2048", "RSA_3072", "RSA_4096")
    ] == [214, 342, 470]
    assert [
        oaep_max_plaintext(s, "RSAES_OAEP_SHA_256") for s in ("RSA_2048", "RSA_3072", "RSA_4096")
    ] == [190, 318, 446]


@pytest.mark.parametrize("spec", list(HMAC_SPECS))
def test_hmac_equals_pythons(backend: SoftwareBackend, spec: str) -> None:
    material_id = material()
    backend.create_material(material_id, spec)
    algorithm, _, length, _ = HMAC_SPECS[spec]
    key = backend.export_material(material_id)
    assert len(key) == length
    name = "sha" + algorithm.rsplit("_", 1)[1]
    assert (
        backend.generate_mac(material_id, algorithm, b"msg") == hmac.new(key, b"msg", name).digest()
    )


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"])
def test_ecdh_equals_offline(backend: SoftwareBackend, spec: str) -> None:
    material_id = material()
    backend.create_material(material_id, spec)
    peer = ec.generate_private_key(EC_CURVES[spec]())
    peer_der = peer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ours = _public(backend, material_id)
    assert isinstance(ours, ec.EllipticCurvePublicKey)
    assert backend.derive_shared_secret(material_id, peer_der) == peer.exchange(ec.ECDH(), ours)
    other_curve = (
        ec.generate_private_key(ec.SECP256K1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(MaterialRejectedError):
        backend.derive_shared_secret(material_id, other_curve)
    with pytest.raises(MaterialRejectedError):
        backend.derive_shared_secret(material_id, b"not der")


def test_import_validates_every_kind(backend: SoftwareBackend) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs8 = rsa_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pkcs1 = rsa_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    with pytest.raises(MaterialRejectedError, match="PKCS#8"):
        backend.import_material(material(), "RSA_2048", pkcs1)
    with pytest.raises(MaterialRejectedError, match="not a RSA_3072"):
        backend.import_material(material(), "RSA_3072", pkcs8)
    with pytest.raises(MaterialRejectedError):
        backend.import_material(material(), "HMAC_256", os.urandom(31))
    with pytest.raises(MaterialRejectedError):
        backend.import_material(material(), "HMAC_384", os.urandom(129))
    with pytest.raises(MaterialRejectedError):
        backend.import_material(material(), "SYMMETRIC_DEFAULT", os.urandom(16))
    ec_key = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(MaterialRejectedError):
        backend.import_material(material(), "ECC_NIST_P256", ec_key)
    with pytest.raises(UnsupportedMechanismError):
        backend.import_material(material(), "SM2", ec_key)

    material_id = material()
    backend.import_material(material_id, "RSA_2048", pkcs8)
    backend.import_material(material_id, "RSA_2048", pkcs8)  # idempotent
    assert backend.export_material(material_id) == pkcs8
    assert backend.public_key(material_id) == rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(MaterialRejectedError, match="already holds"):
        backend.import_material(material_id, "RSA_2048", _other_rsa())


def _other_rsa() -> bytes:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_hmac_import_accepts_longer_keys(backend: SoftwareBackend) -> None:
    material_id = material()
    key = os.urandom(64)
    backend.import_material(material_id, "HMAC_256", key)
    assert (
        backend.generate_mac(material_id, "HMAC_SHA_256", b"m")
        == hmac.new(key, b"m", "sha256").digest()
    )


@pytest.mark.parametrize(
    "algorithm",
    [
        "RSAES_OAEP_SHA_1",
        "RSAES_OAEP_SHA_256",
        "RSA_AES_KEY_WRAP_SHA_1",
        "RSA_AES_KEY_WRAP_SHA_256",
    ],
)
def test_unwrap_imports_wrapped_material(backend: SoftwareBackend, algorithm: str) -> None:
    wrapping_id = material()
    spki = backend.create_wrapping_key(wrapping_id, "RSA_2048")
    public = serialization.load_der_public_key(spki)
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    digest = hashes.SHA1() if algorithm.endswith("_1") else hashes.SHA256()
    oaep = padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
    if algorithm.startswith("RSA_AES"):
        key_material = _other_rsa()
        spec = "RSA_2048"
        aes_key = os.urandom(32)
        wrapped = public.encrypt(aes_key, oaep) + keywrap.aes_key_wrap_with_padding(
            aes_key, key_material
        )
    else:
        key_material = os.urandom(32)
        spec = "SYMMETRIC_DEFAULT"
        wrapped = public.encrypt(key_material, oaep)
    material_id = material()
    backend.unwrap_material(material_id, spec, wrapping_id, algorithm, wrapped)
    assert backend.export_material(material_id) == key_material
    with pytest.raises(DecryptionFailedError):
        backend.unwrap_material(material(), spec, wrapping_id, algorithm, os.urandom(len(wrapped)))
    backend.destroy_wrapping_key(wrapping_id)
    with pytest.raises(MaterialNotFoundError):
        backend.unwrap_material(material(), spec, wrapping_id, algorithm, wrapped)


def test_material_survives_a_reopen_and_is_bound_to_its_spec(tmp_path: Path) -> None:
    backend = SoftwareBackend(tmp_path, ROOT_KEY)
    material_id = material()
    backend.create_material(material_id, "HMAC_256")
    mac = backend.generate_mac(material_id, "HMAC_SHA_256", b"m")
    backend.close()
    again = SoftwareBackend(tmp_path, ROOT_KEY)
    assert again.generate_mac(material_id, "HMAC_SHA_256", b"m") == mac
    again.close()
    # Relabelling the stored spec (an HMAC_256 key is 32 bytes like an AES key) must not work.
    with sqlite3.connect(tmp_path / KEYSTORE_FILE) as connection:
        connection.execute(
            "UPDATE material SET key_spec = 'SYMMETRIC_DEFAULT' WHERE material_id = ?",
            (material_id,),
        )
    with pytest.raises(BackendUnavailableError):
        SoftwareBackend(tmp_path, ROOT_KEY).export_material(material_id)


def test_store_from_before_key_kinds_is_migrated(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    material_id = material()
    key = os.urandom(32)
    nonce = os.urandom(12)
    with sqlite3.connect(tmp_path / KEYSTORE_FILE) as connection:
        connection.execute(
            "CREATE TABLE material (material_id TEXT PRIMARY KEY, nonce BLOB NOT NULL,"
            " wrapped BLOB NOT NULL)"
        )
        connection.execute(
            "INSERT INTO material VALUES (?, ?, ?)",
            (material_id, nonce, AESGCM(ROOT_KEY).encrypt(nonce, key, material_id.encode())),
        )
    backend = SoftwareBackend(tmp_path, ROOT_KEY)
    assert backend.export_material(material_id) == key
