"""Software keystore: key material of every AWS key spec in a database, wrapped under a root key.

The database (a SQLite file in the data directory, or the PostgreSQL database of
``--database-url``, shared by every host) holds only ``AES-GCM(root key, material)`` with
the material id (and, for anything but an AES key, the key spec) as associated data, so a
wrapped key cannot be moved to another id or passed off as another spec. Material is the raw
key for ``SYMMETRIC_DEFAULT`` and ``HMAC_*`` specs and a PKCS#8 DER private key for key
pairs. Import wrapping key pairs live in their own table, wrapped the same way. The root key
comes from ``MOCK_KMS_ROOT_KEY`` or a 0600 file in the data directory (see
:func:`local_secrets.root_key.load_root_key`).
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidKey, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backends import ed25519ph
from backends.base import (
    NONCE_SIZE,
    BackendCapabilities,
    BackendHealth,
    BackendUnavailableError,
    DecryptionFailedError,
    MaterialNotFoundError,
    MaterialRejectedError,
    UnsupportedMechanismError,
)
from backends.key_specs import (
    EC_CURVES,
    ED25519_SPEC,
    HMAC_SPECS,
    KEY_AGREEMENT_SPECS,
    MAC_HASHES,
    ML_DSA_SPECS,
    OAEP_HASHES,
    RSA_ENCRYPTION,
    RSA_SPECS,
    SIGNING_ALGORITHMS,
    SIGNING_HASHES,
    SYMMETRIC_DEFAULT,
    WRAPPING_ALGORITHMS,
    WRAPPING_HASHES,
    WRAPPING_KEY_SPECS,
)
from database import Database, DatabaseError, DatabaseUnavailableError, Rows, open_database
from database.dialect import is_read

KEYSTORE_FILE = "software-keystore.sqlite3"

_MlDsaPrivateKey = mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey
_ML_DSA_CLASSES: dict[str, type[_MlDsaPrivateKey]] = {
    "ML_DSA_44": mldsa.MLDSA44PrivateKey,
    "ML_DSA_65": mldsa.MLDSA65PrivateKey,
    "ML_DSA_87": mldsa.MLDSA87PrivateKey,
}


@dataclass(frozen=True)
class _Material:
    """Unwrapped material of one id, ready to use (cached per process)."""

    key_spec: str
    raw: bytes
    aes: AESGCM | None = None
    private_key: PrivateKeyTypes | None = None


def _associated_data(material_id: str, key_spec: str) -> bytes:
    # AES material keeps the id alone as associated data, as stores written before other key
    # kinds existed have it; every other spec binds the spec too.
    if key_spec == SYMMETRIC_DEFAULT:
        return material_id.encode()
    return f"{material_id}\x00{key_spec}".encode()


def _is_pkcs8(der: bytes) -> bool:
    """Whether ``der`` is shaped like a PKCS#8 ``PrivateKeyInfo`` (SEQUENCE { INTEGER,
    SEQUENCE AlgorithmIdentifier, ... }), not a PKCS#1 ``RSAPrivateKey`` or SEC1
    ``ECPrivateKey`` (whose second member is an INTEGER or an OCTET STRING)."""
    if len(der) < 8 or der[0] != 0x30:
        return False
    offset = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)
    if offset + 3 > len(der) or der[offset] != 0x02:
        return False
    offset += 2 + der[offset + 1]
    return offset < len(der) and der[offset] == 0x30


def _check_private_key(key_spec: str, key: PrivateKeyTypes) -> bool:
    if key_spec in RSA_SPECS:
        return isinstance(key, rsa.RSAPrivateKey) and key.key_size == RSA_SPECS[key_spec]
    if key_spec in EC_CURVES:
        return isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(
            key.curve, EC_CURVES[key_spec]
        )
    if key_spec == ED25519_SPEC:
        return isinstance(key, ed25519.Ed25519PrivateKey)
    if key_spec in _ML_DSA_CLASSES:
        return isinstance(key, _ML_DSA_CLASSES[key_spec])
    return False


def _generate_private_key(key_spec: str) -> PrivateKeyTypes:
    if key_spec in RSA_SPECS:
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_SPECS[key_spec])
    if key_spec in EC_CURVES:
        return ec.generate_private_key(EC_CURVES[key_spec]())
    if key_spec == ED25519_SPEC:
        return ed25519.Ed25519PrivateKey.generate()
    return _ML_DSA_CLASSES[key_spec].generate()


def _pkcs8(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _spki(key: PrivateKeyTypes) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _available(key_spec: str) -> bool:
    """Whether the installed `cryptography` (and the OpenSSL under it) can make a key pair of
    ``key_spec``: secp256k1, Ed25519 and ML-DSA depend on how OpenSSL was built."""
    try:
        _generate_private_key(key_spec)
    except (UnsupportedAlgorithm, ValueError):
        return False
    return True


def _software_capabilities() -> BackendCapabilities:
    """Every spec the installed `cryptography` serves. SM2 is never among them (AWS offers it
    only in its China Regions, and `cryptography` has no SM2)."""
    key_specs = {SYMMETRIC_DEFAULT, *RSA_SPECS, *EC_CURVES, ED25519_SPEC, *HMAC_SPECS}
    key_specs.update(ML_DSA_SPECS)
    for optional in ("ECC_SECG_P256K1", ED25519_SPEC, *ML_DSA_SPECS):
        if not _available(optional):
            key_specs.discard(optional)
    signing = {
        algorithm
        for spec, algorithms in SIGNING_ALGORITHMS.items()
        if spec in key_specs
        for algorithm in algorithms
    }
    return BackendCapabilities(
        key_specs=frozenset(key_specs),
        signing_algorithms=frozenset(signing),
        encryption_algorithms=frozenset(RSA_ENCRYPTION),
        mac_algorithms=frozenset(MAC_HASHES),
        key_agreement_specs=frozenset(KEY_AGREEMENT_SPECS),
        wrapping_algorithms=frozenset(WRAPPING_ALGORITHMS),
        wrapping_key_specs=frozenset(WRAPPING_KEY_SPECS),
        exportable=True,
    )


#: Computed once per process: key generation is the only reliable probe of ML-DSA support.
SOFTWARE_CAPABILITIES = _software_capabilities()


def validate_material(key_spec: str, material: bytes) -> PrivateKeyTypes | None:
    """Check that ``material`` is a key of ``key_spec`` in :meth:`SoftwareBackend.import_material`'s
    form and return the loaded private key (``None`` for AES and HMAC keys).

    Raises :class:`MaterialRejectedError` with a message that never quotes the material.
    """
    if key_spec == SYMMETRIC_DEFAULT:
        if len(material) != 32:
            raise MaterialRejectedError("key material must be 32 bytes (AES-256)")
        return None
    if key_spec in HMAC_SPECS:
        _, _, shortest, longest = HMAC_SPECS[key_spec]
        if not shortest <= len(material) <= longest:
            raise MaterialRejectedError(
                f"{key_spec} key material must be {shortest} to {longest} bytes"
            )
        return None
    if not _is_pkcs8(material):
        raise MaterialRejectedError(f"{key_spec} key material must be a PKCS#8 DER private key")
    try:
        key = serialization.load_der_private_key(material, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise MaterialRejectedError(
            f"{key_spec} key material is not a valid PKCS#8 DER private key"
        ) from None
    if not _check_private_key(key_spec, key):
        raise MaterialRejectedError(f"the private key is not a {key_spec} key")
    return key


class SoftwareBackend:
    """Every key kind with `cryptography`, material wrapped under the root key in a database.

    Thread-safe (the database gives each thread its connection); unwrapped keys are cached per
    process (material never changes under an id, so the cache can't go stale, on any host; a
    destroyed id is only ever reached again through metadata that no longer exists).
    """

    def __init__(self, data_dir: Path, root_key: bytes, database_url: str | None = None) -> None:
        """Open (creating its tables) the keystore in ``database_url`` if given, else in
        ``data_dir``. Raises :class:`BackendUnavailableError`."""
        self._db: Database = open_database(database_url or data_dir / KEYSTORE_FILE)
        self._root = AESGCM(root_key)
        self._cache: dict[str, _Material] = {}
        self._wrapping_cache: dict[str, rsa.RSAPrivateKey] = {}
        try:
            with self._db.transaction(invalidates_caches=False):
                self._db.run_script(
                    "CREATE TABLE IF NOT EXISTS material ("
                    " material_id TEXT PRIMARY KEY, nonce BLOB NOT NULL, wrapped BLOB NOT NULL)"
                )
                if "key_spec" not in self._db.table_columns("material"):
                    # Stores written before other key kinds existed hold AES keys only.
                    self._db.run_script(
                        "ALTER TABLE material ADD COLUMN key_spec TEXT NOT NULL"
                        f" DEFAULT '{SYMMETRIC_DEFAULT}'"
                    )
                self._db.run_script(
                    "CREATE TABLE IF NOT EXISTS wrapping_key ("
                    " wrapping_key_id TEXT PRIMARY KEY, key_spec TEXT NOT NULL,"
                    " nonce BLOB NOT NULL, wrapped BLOB NOT NULL)"
                )
                # One row: a constant wrapped under the root key the keystore was created
                # with, so a host started with another root key is refused before it writes
                # material no other host can open (docs/several-hosts.md).
                self._db.run_script(
                    "CREATE TABLE IF NOT EXISTS root_key_check ("
                    " id INTEGER PRIMARY KEY, nonce BLOB NOT NULL, wrapped BLOB NOT NULL)"
                )
        except DatabaseError as exc:
            raise BackendUnavailableError(f"software keystore: {exc}") from None

    @property
    def name(self) -> str:
        return "software"

    @property
    def capabilities(self) -> BackendCapabilities:
        return SOFTWARE_CAPABILITIES

    def _execute(self, sql: str, parameters: tuple[object, ...]) -> Rows:
        """Run one statement; a write is its own transaction unless the caller's thread is
        already in one (PostgreSQL: the key store's). Raises BackendUnavailableError."""
        try:
            if is_read(sql):
                return self._db.execute(sql, parameters)
            # Material ids are never reused, so no cache anywhere needs invalidating.
            with self._db.transaction(invalidates_caches=False):
                return self._db.execute(sql, parameters)
        except DatabaseUnavailableError:
            # Not the keystore's fault: the request answers the retryable
            # DependencyTimeoutException, as for the key store.
            raise
        except DatabaseError as exc:
            raise BackendUnavailableError(f"software keystore: {exc}") from None

    def _require_spec(self, key_spec: str) -> None:
        if key_spec not in self.capabilities.key_specs:
            raise UnsupportedMechanismError(f"the software backend does not serve {key_spec}")

    # -- material ---------------------------------------------------------------------------

    def create_material(self, material_id: str, key_spec: str = SYMMETRIC_DEFAULT) -> None:
        self._require_spec(key_spec)
        if key_spec == SYMMETRIC_DEFAULT:
            material = os.urandom(32)
        elif key_spec in HMAC_SPECS:
            material = os.urandom(HMAC_SPECS[key_spec][2])
        else:
            material = _pkcs8(_generate_private_key(key_spec))
        self._store_wrapped(material_id, key_spec, material)

    def import_material(self, material_id: str, key_spec: str, material: bytes) -> None:
        """Keep caller-supplied ``material`` (seed files, imports) under ``material_id``,
        wrapped under the root key exactly like generated material: 32 raw bytes for
        ``SYMMETRIC_DEFAULT``, the raw key for ``HMAC_*`` (from the spec's size up to 64 bytes
        for HMAC_224/256 and 128 bytes for HMAC_384/512, as AWS accepts imports), a PKCS#8 DER
        private key of the spec's algorithm and size for key pairs.

        Idempotent for the same bytes. Raises :class:`MaterialRejectedError` when ``material``
        is not a key of ``key_spec`` or the id already holds other material,
        :class:`UnsupportedMechanismError`, :class:`BackendUnavailableError`.
        """
        self._require_spec(key_spec)
        validate_material(key_spec, material)
        existing = self._load_row(material_id)
        if existing is not None:
            if existing[0] != key_spec or not hmac.compare_digest(existing[1], material):
                raise MaterialRejectedError(
                    f"key material {material_id} already holds other material"
                )
            return
        self._store_wrapped(material_id, key_spec, material)

    def _store_wrapped(self, material_id: str, key_spec: str, material: bytes) -> None:
        """Keep ``material`` wrapped under the root key (bound to its id and spec); an id that
        is already there keeps what it has. Raises :class:`BackendUnavailableError`."""
        nonce = os.urandom(NONCE_SIZE)
        wrapped = self._root.encrypt(nonce, material, _associated_data(material_id, key_spec))
        self._execute(
            "INSERT OR IGNORE INTO material (material_id, nonce, wrapped, key_spec)"
            " VALUES (?, ?, ?, ?)",
            (material_id, nonce, wrapped, key_spec),
        )

    def export_material(self, material_id: str) -> bytes:
        """The unwrapped material in :meth:`import_material`'s form (``mock-kms export
        --include-material``, seed checks).

        Raises :class:`MaterialNotFoundError`, :class:`BackendUnavailableError`.
        """
        return self._material(material_id).raw

    def _load_row(self, material_id: str) -> tuple[str, bytes] | None:
        """(key spec, plaintext material) of ``material_id``, or ``None``."""
        row = self._execute(
            "SELECT nonce, wrapped, key_spec FROM material WHERE material_id = ?",
            (material_id,),
        ).fetchone()
        if row is None:
            return None
        key_spec = str(row[2])
        try:
            raw = self._root.decrypt(row[0], row[1], _associated_data(material_id, key_spec))
        except InvalidTag:
            # Wrong root key, or a wrapped key moved between ids: unusable, never guessed at.
            raise BackendUnavailableError(
                "software keystore: key material does not open under the configured root key"
            ) from None
        return key_spec, raw

    def _material(self, material_id: str) -> _Material:
        cached = self._cache.get(material_id)
        if cached is not None:
            return cached
        loaded = self._load_row(material_id)
        if loaded is None:
            raise MaterialNotFoundError(material_id)
        key_spec, raw = loaded
        if key_spec == SYMMETRIC_DEFAULT:
            material = _Material(key_spec, raw, aes=AESGCM(raw))
        elif key_spec in HMAC_SPECS:
            material = _Material(key_spec, raw)
        else:
            material = _Material(
                key_spec, raw, private_key=serialization.load_der_private_key(raw, None)
            )
        self._cache[material_id] = material
        return material

    def _private_key(self, material_id: str) -> tuple[str, PrivateKeyTypes]:
        material = self._material(material_id)
        if material.private_key is None:
            raise UnsupportedMechanismError(f"{material.key_spec} material has no key pair")
        return material.key_spec, material.private_key

    def check_root_key(self) -> None:
        """Raise :class:`BackendUnavailableError` unless the configured root key is the one
        the keystore was created with (its check row; written by the first host to start) and
        opens the stored material (checked on one entry: all are wrapped under one key)."""
        nonce = os.urandom(NONCE_SIZE)
        check = self._root.encrypt(nonce, _ROOT_KEY_CHECK, _ROOT_KEY_CHECK)
        self._execute(
            "INSERT OR IGNORE INTO root_key_check (id, nonce, wrapped) VALUES (1, ?, ?)",
            (nonce, check),
        )
        row = self._execute("SELECT nonce, wrapped FROM root_key_check WHERE id = 1", ()).fetchone()
        try:
            self._root.decrypt(row[0], row[1], _ROOT_KEY_CHECK)
        except InvalidTag:
            raise BackendUnavailableError(
                "software keystore: the root key is not the one this keystore was created with"
                " (every host of one database needs the same MOCK_KMS_ROOT_KEY)"
            ) from None
        row = self._execute("SELECT material_id FROM material LIMIT 1", ()).fetchone()
        if row is not None:
            self._material(row[0])

    # -- symmetric --------------------------------------------------------------------------

    def _aes(self, material_id: str) -> AESGCM:
        material = self._material(material_id)
        if material.aes is None:
            raise UnsupportedMechanismError(f"{material.key_spec} material is not an AES key")
        return material.aes

    def encrypt(self, material_id: str, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self._aes(material_id).encrypt(nonce, plaintext, aad)

    def decrypt(self, material_id: str, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        cipher = self._aes(material_id)
        try:
            return cipher.decrypt(nonce, ciphertext, aad)
        except (InvalidTag, ValueError):
            raise DecryptionFailedError() from None

    # -- key pairs --------------------------------------------------------------------------

    def public_key(self, material_id: str) -> bytes:
        return _spki(self._private_key(material_id)[1])

    def sign(self, material_id: str, algorithm: str, payload: bytes) -> bytes:
        key_spec, key = self._private_key(material_id)
        if algorithm not in SIGNING_ALGORITHMS.get(key_spec, ()):
            raise UnsupportedMechanismError(f"{algorithm} does not apply to {key_spec}")
        try:
            if isinstance(key, rsa.RSAPrivateKey):
                digest = SIGNING_HASHES[algorithm]
                assert digest is not None
                prehashed = utils.Prehashed(digest())
                if algorithm.startswith("RSASSA_PSS_"):
                    # AWS's PSS salt is the digest's length.
                    pss = padding.PSS(
                        mgf=padding.MGF1(digest()), salt_length=padding.PSS.DIGEST_LENGTH
                    )
                    return key.sign(payload, pss, prehashed)
                return key.sign(payload, padding.PKCS1v15(), prehashed)
            if isinstance(key, ec.EllipticCurvePrivateKey):
                digest = SIGNING_HASHES[algorithm]
                assert digest is not None
                return key.sign(payload, ec.ECDSA(utils.Prehashed(digest())))
            if isinstance(key, ed25519.Ed25519PrivateKey):
                if algorithm == "ED25519_PH_SHA_512":
                    seed = key.private_bytes_raw()
                    return ed25519ph.sign(seed, payload)
                return key.sign(payload)
            if isinstance(key, _MlDsaPrivateKey):
                return key.sign(payload)
        except ValueError as exc:
            # A digest of the wrong length: the service checks lengths first.
            raise UnsupportedMechanismError(f"{algorithm}: {exc}") from None
        raise UnsupportedMechanismError(f"{algorithm} does not apply to {key_spec}")

    def decrypt_asymmetric(self, material_id: str, algorithm: str, ciphertext: bytes) -> bytes:
        key_spec, key = self._private_key(material_id)
        if algorithm not in OAEP_HASHES or not isinstance(key, rsa.RSAPrivateKey):
            raise UnsupportedMechanismError(f"{algorithm} does not apply to {key_spec}")
        digest = OAEP_HASHES[algorithm]
        oaep = padding.OAEP(mgf=padding.MGF1(digest()), algorithm=digest(), label=None)
        try:
            return key.decrypt(ciphertext, oaep)
        except ValueError:
            raise DecryptionFailedError() from None

    def derive_shared_secret(self, material_id: str, peer_public_key: bytes) -> bytes:
        key_spec, key = self._private_key(material_id)
        if key_spec not in KEY_AGREEMENT_SPECS or not isinstance(key, ec.EllipticCurvePrivateKey):
            raise UnsupportedMechanismError(f"ECDH does not apply to {key_spec}")
        try:
            peer = serialization.load_der_public_key(peer_public_key)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise MaterialRejectedError(
                "the peer public key is not a DER SubjectPublicKeyInfo"
            ) from None
        if not isinstance(peer, ec.EllipticCurvePublicKey) or peer.curve.name != key.curve.name:
            raise MaterialRejectedError(f"the peer public key is not a point of {key_spec}'s curve")
        try:
            return key.exchange(ec.ECDH(), peer)
        except (ValueError, InvalidKey):
            raise MaterialRejectedError("the peer public key is not a valid point") from None

    # -- HMAC -------------------------------------------------------------------------------

    def generate_mac(self, material_id: str, algorithm: str, message: bytes) -> bytes:
        material = self._material(material_id)
        spec = HMAC_SPECS.get(material.key_spec)
        if spec is None or spec[0] != algorithm:
            raise UnsupportedMechanismError(f"{algorithm} does not apply to {material.key_spec}")
        # hmac.digest: OpenSSL's one-shot HMAC, without a per-call object.
        return hmac.digest(material.raw, message, spec[1]().name)

    # -- import -----------------------------------------------------------------------------

    def create_wrapping_key(self, wrapping_key_id: str, key_spec: str) -> bytes:
        if key_spec not in WRAPPING_KEY_SPECS:
            raise UnsupportedMechanismError(f"{key_spec} is not a wrapping key spec")
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_SPECS[key_spec])
        nonce = os.urandom(NONCE_SIZE)
        wrapped = self._root.encrypt(nonce, _pkcs8(key), _wrapping_associated_data(wrapping_key_id))
        self._execute(
            "INSERT OR IGNORE INTO wrapping_key (wrapping_key_id, key_spec, nonce, wrapped)"
            " VALUES (?, ?, ?, ?)",
            (wrapping_key_id, key_spec, nonce, wrapped),
        )
        return _spki(self._wrapping_key(wrapping_key_id))

    def _wrapping_key(self, wrapping_key_id: str) -> rsa.RSAPrivateKey:
        cached = self._wrapping_cache.get(wrapping_key_id)
        if cached is not None:
            return cached
        row = self._execute(
            "SELECT nonce, wrapped FROM wrapping_key WHERE wrapping_key_id = ?",
            (wrapping_key_id,),
        ).fetchone()
        if row is None:
            raise MaterialNotFoundError(wrapping_key_id)
        try:
            der = self._root.decrypt(row[0], row[1], _wrapping_associated_data(wrapping_key_id))
        except InvalidTag:
            raise BackendUnavailableError(
                "software keystore: a wrapping key does not open under the configured root key"
            ) from None
        key = serialization.load_der_private_key(der, None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self._wrapping_cache[wrapping_key_id] = key
        return key

    def unwrap_material(
        self,
        material_id: str,
        key_spec: str,
        wrapping_key_id: str,
        wrapping_algorithm: str,
        wrapped: bytes,
    ) -> None:
        if wrapping_algorithm not in WRAPPING_ALGORITHMS:
            raise UnsupportedMechanismError(f"{wrapping_algorithm} is not a wrapping algorithm")
        self._require_spec(key_spec)
        key = self._wrapping_key(wrapping_key_id)
        digest = WRAPPING_HASHES[wrapping_algorithm]
        oaep = padding.OAEP(mgf=padding.MGF1(digest()), algorithm=digest(), label=None)
        modulus_bytes = key.key_size // 8
        try:
            if wrapping_algorithm.startswith("RSA_AES_KEY_WRAP_"):
                # An OAEP-wrapped ephemeral AES key, then the material under RFC 5649 key wrap.
                aes_key = key.decrypt(wrapped[:modulus_bytes], oaep)
                material = keywrap.aes_key_unwrap_with_padding(aes_key, wrapped[modulus_bytes:])
            else:
                material = key.decrypt(wrapped, oaep)
        except (ValueError, keywrap.InvalidUnwrap):
            raise DecryptionFailedError() from None
        self.import_material(material_id, key_spec, material)

    def destroy_wrapping_key(self, wrapping_key_id: str) -> None:
        self._wrapping_cache.pop(wrapping_key_id, None)
        self._execute("DELETE FROM wrapping_key WHERE wrapping_key_id = ?", (wrapping_key_id,))

    # -- lifecycle --------------------------------------------------------------------------

    def destroy_material(self, material_id: str) -> None:
        self._cache.pop(material_id, None)
        self._execute("DELETE FROM material WHERE material_id = ?", (material_id,))

    def generate_random(self, size: int) -> bytes:
        return os.urandom(size)

    def health(self) -> BackendHealth:
        try:
            count = self._execute("SELECT count(*) FROM material", ()).fetchone()[0]
        except (BackendUnavailableError, DatabaseUnavailableError) as exc:
            return BackendHealth("software", False, {"error": exc.__class__.__name__})
        return BackendHealth("software", True, {"materials": int(count)})

    def close(self) -> None:
        self._db.close()

    def dispose(self) -> None:
        """Release everything this process holds of the database (before a fork)."""
        self._db.dispose()


#: Wrapped under the root key in ``root_key_check`` (and its associated data).
_ROOT_KEY_CHECK = b"mock-kms software keystore root key check"


def _wrapping_associated_data(wrapping_key_id: str) -> bytes:
    return f"wrapping-key\x00{wrapping_key_id}".encode()
