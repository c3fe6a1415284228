"""PKCS#11 key backend: every key material is an object (or a key pair) inside an HSM token.

Nothing outside the token ever sees private or secret key material: keys are generated in the
token (token objects, ``SENSITIVE``, never ``EXTRACTABLE``, ``PRIVATE``) or unwrapped into it,
and AES-GCM, signing, RSA decryption, HMAC, ECDH and the random generator run in the token.
Each material id maps to one secret key or one key pair whose ``CKA_ID`` is the 32 bytes of
the id and whose ``CKA_LABEL`` is ``mock-kms:<id>``, so it is found again after a restart.
What the token serves is probed once when the backend is opened
(:mod:`backends.pkcs11_capabilities`); the key kinds themselves are in
:mod:`backends.pkcs11_keys` (importing them: :mod:`backends.pkcs11_unwrap`), and
``docs/pkcs11-key-kinds.md`` says what runs where. This module is the backend class; the
process-local state, login and reconnecting below are :mod:`backends.pkcs11_session`, and
the configuration check in a child process is :mod:`backends.pkcs11_check`.

The rules below were measured with SoftHSM 2.6.1 and python-pkcs11 0.10.1 (docs/formats.md):

* The module is opened lazily in each process, keyed by ``os.getpid()``: the gunicorn master
  never loads it (:meth:`Pkcs11Backend.open` checks the configuration in a child process), and
  state inherited through ``fork`` is never used.
* One login per process and token, kept for the life of the process: closing a PIN session
  logs out every session of the process, and a second login fails.
* One lock per process and module around every call into the module. python-pkcs11 always
  runs ``C_Initialize(NULL)``, which switches SoftHSM's own locking off, and releases the GIL
  around each call, so two threads inside the module crash it. The alternative, a subclass
  that initialises with ``CKF_OS_LOCKING_OK`` plus a session per thread, was measured on this
  2-vCPU machine (AES-GCM encrypt+decrypt of 32 bytes): 1 process x 4 threads, lock 17k
  round trips/s vs OS locking 33k; 2 processes x 4 threads (the service's shape, 2 gunicorn
  workers), lock 45k vs OS locking 45k in total, because both cores are already busy. The
  lock costs nothing where it matters, needs no Cython internals, and makes reconnecting
  safe: no other thread can hold a session that a reinitialisation invalidates.
* An ``fcntl.flock`` per token around module initialisation, login, and key search, creation
  and destruction: SoftHSM 2.6.1 rewrites ``token.object`` on every login and races with
  concurrent object creation and search in other processes.
* Key handles are cached per process and dropped on ``ObjectHandleInvalid``.
* Any other module failure marks the module for reinitialisation; the call then reconnects
  once (``C_Finalize``, ``C_Initialize``, login) and retries, so a restored token is used
  again at once, and a missing one gives :class:`BackendUnavailableError`. Waiting for the
  lock or the file lock is bounded, so a caller never hangs.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
from pkcs11 import Attribute, GCMParams, Mechanism, ObjectClass

from backends.base import (
    NONCE_SIZE,
    TAG_SIZE,
    BackendCapabilities,
    BackendError,
    BackendHealth,
    BackendUnavailableError,
    DecryptionFailedError,
    MaterialNotFoundError,
    MaterialRejectedError,
    UnsupportedMechanismError,
)
from backends.pkcs11_capabilities import TokenFeatures, capabilities_for, probe_token
from backends.pkcs11_check import check_in_child
from backends.pkcs11_keys import (
    KEY_LABEL_PREFIX,
    WRAPPING_ID_PREFIX,
    WRAPPING_LABEL_PREFIX,
    TokenMaterial,
    find_objects,
    generate,
    generate_wrapping_key,
    material_from_objects,
    public_key_der,
)
from backends.pkcs11_keys import decrypt_oaep as _decrypt_oaep
from backends.pkcs11_keys import derive_shared_secret as _derive_shared_secret
from backends.pkcs11_keys import generate_mac as _generate_mac
from backends.pkcs11_keys import sign as _sign
from backends.pkcs11_session import (
    HEALTH_LOCK_TIMEOUT_SECONDS,
    LOCK_TIMEOUT_SECONDS,
    Pkcs11ConfigError,
    TokenLogin,
    TokenSession,
    check_token_present,
    describe,
    file_lock,
    lock_path_for,
    resolve_pin,
)
from backends.pkcs11_specs import MaterialKind, key_spec_info
from backends.pkcs11_unwrap import Unwrapper, create_public_object

log = logging.getLogger(__name__)

T = TypeVar("T")

TAG_BITS = TAG_SIZE * 8

_MATERIAL_ID = re.compile(r"^[0-9a-f]{64}$")
# SoftHSM 2.6.1 reports a failed GCM tag check as GeneralError; 2.7.0 and other HSMs use these.
_GCM_FAILURES = (pkcs11.GeneralError, pkcs11.EncryptedDataInvalid, pkcs11.EncryptedDataLenRange)

# Key objects come back as classes python-pkcs11 builds from the key's capabilities, so the
# stubs cannot name them.
_KeyObject = Any


# --- The backend ---------------------------------------------------------------------------


class Pkcs11Backend:
    """Master keys in a PKCS#11 token. Safe to call from several threads and processes.

    Build it with :meth:`open`, which checks the configuration without loading the module in
    the calling process.
    """

    def __init__(
        self,
        module: str,
        token_label: str,
        pin: str,
        lock_dir: Path,
        features: TokenFeatures | None = None,
    ) -> None:
        """A backend on an already checked configuration; prefer :meth:`open`, which also
        probes the token (``features``). Without ``features`` the token is probed in this
        process the first time :attr:`capabilities` is read."""
        self._module = module
        self._label = token_label
        self._lock_path = lock_path_for(lock_dir, token_label)
        self._session = TokenSession(module, token_label, pin, self._lock_path)
        self._features = features
        self._capabilities = capabilities_for(features) if features is not None else None

    @classmethod
    def open(
        cls,
        module: str | None,
        token_label: str | None,
        pin: str | None,
        pin_file: Path | None,
        lock_dir: Path,
    ) -> Pkcs11Backend:
        """Check the configuration and return a backend on it.

        The check (load the module, find the token by label, log in) runs in a child process,
        so this process never loads the module until the backend is first used: safe to call
        in a gunicorn master before it forks. Give exactly one of ``pin`` and ``pin_file``.
        ``lock_dir`` holds the token's lock file; every process using the token must use the
        same directory. Raises :class:`Pkcs11ConfigError` with one actionable line.
        """
        if not module:
            raise Pkcs11ConfigError(
                "no PKCS#11 module given: set PKCS11_MODULE "
                "(for SoftHSM: /usr/lib/softhsm/libsofthsm2.so)"
            )
        if "/" in module and not Path(module).is_file():
            raise Pkcs11ConfigError(
                f"PKCS#11 module {module} does not exist: fix PKCS11_MODULE or install the "
                "module (for SoftHSM: apt-get install softhsm2)",
                "module",
            )
        if not token_label:
            raise Pkcs11ConfigError("no PKCS#11 token label given: set PKCS11_TOKEN_LABEL")
        resolved_pin = resolve_pin(pin, pin_file, token_label)
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
            with file_lock(lock_path_for(lock_dir, token_label), LOCK_TIMEOUT_SECONDS):
                pass
        except (OSError, BackendUnavailableError) as exc:
            raise Pkcs11ConfigError(
                f"cannot use lock directory {lock_dir} for the PKCS#11 token: {describe(exc)}"
            ) from None
        features = check_in_child(module, token_label, resolved_pin, lock_dir)
        return cls(module, token_label, resolved_pin, lock_dir, features)

    def __repr__(self) -> str:
        return f"Pkcs11Backend(module={self._module!r}, token_label={self._label!r})"

    @property
    def name(self) -> str:
        return "pkcs11"

    @property
    def token_label(self) -> str:
        return self._label

    # --- KeyBackend ----------------------------------------------------------------------

    @property
    def capabilities(self) -> BackendCapabilities:
        """What this token serves, declared from its mechanism list (probed once)."""
        if self._capabilities is None:
            self._capabilities = capabilities_for(self.features)
        return self._capabilities

    @property
    def features(self) -> TokenFeatures:
        """The token facts the capabilities rest on (probed here if :meth:`open` did not)."""
        if self._features is None:
            self._features = self._call(lambda login: probe_token(login.session))
        return self._features

    def _unsupported(self, what: str) -> UnsupportedMechanismError:
        return UnsupportedMechanismError(f"PKCS#11 token {self._label!r} does not serve {what}")

    def create_material(self, material_id: str, key_spec: str = "SYMMETRIC_DEFAULT") -> None:
        if key_spec not in self.capabilities.key_specs:
            raise self._unsupported(key_spec)
        spec = key_spec_info(key_spec)
        key_id = _key_id(material_id)

        def create(login: TokenLogin) -> None:
            # Always searched, never answered from the cache: the key may have been destroyed
            # by another process since it was cached.
            with file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
                # Search and create under one file lock: two processes creating the same id
                # at once must end up with one key.
                found = self._material_of(login, material_id, key_id)
                if found is not None:
                    login.keys[material_id] = found
                    return
                login.keys[material_id] = generate(
                    login.session, spec, key_id, KEY_LABEL_PREFIX + material_id
                )

        self._call(create)

    def import_material(self, material_id: str, key_spec: str, material: bytes) -> None:
        raise self._unsupported("plaintext key material (import it wrapped)")

    def export_material(self, material_id: str) -> bytes:
        raise self._unsupported("exporting key material: it never leaves the token")

    def encrypt(self, material_id: str, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        key_id = _key_id(material_id)
        if len(nonce) != NONCE_SIZE:
            raise ValueError(f"AES-GCM nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
        params = GCMParams(nonce, aad, TAG_BITS)

        def encrypt_with(material: TokenMaterial) -> bytes:
            key = self._aes_key(material)
            return bytes(
                key.encrypt(plaintext, mechanism=Mechanism.AES_GCM, mechanism_param=params)
            )

        return self._call(lambda login: self._with_key(login, material_id, key_id, encrypt_with))

    def decrypt(self, material_id: str, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        key_id = _key_id(material_id)
        if len(nonce) != NONCE_SIZE or len(ciphertext) < TAG_SIZE:
            # Not a ciphertext this backend made; don't send garbage to the token.
            self._call(lambda login: self._key(login, material_id, key_id))
            raise DecryptionFailedError()
        params = GCMParams(nonce, aad, TAG_BITS)

        def decrypt_with(material: TokenMaterial) -> bytes:
            key = self._aes_key(material)
            try:
                return bytes(
                    key.decrypt(ciphertext, mechanism=Mechanism.AES_GCM, mechanism_param=params)
                )
            except _GCM_FAILURES:
                # GeneralError is also what a failing device says. If the key object is still
                # readable, the token is fine and the ciphertext was not; otherwise this read
                # raises and the caller treats it as a dead handle or a lost token.
                key[Attribute.ID]
                raise DecryptionFailedError() from None

        return self._call(lambda login: self._with_key(login, material_id, key_id, decrypt_with))

    def destroy_material(self, material_id: str) -> None:
        key_id = _key_id(material_id)

        def destroy(login: TokenLogin) -> None:
            login.keys.pop(material_id, None)
            with file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
                # Every object of the id: both halves of a key pair.
                found = find_objects(login.session, key_id)
                if not found:
                    # An absent token also finds nothing; don't call that a successful delete.
                    check_token_present(login)
                for key in found:
                    key.destroy()

        self._call(destroy)

    # --- Key pairs, HMAC and ECDH (backends.pkcs11_keys) ------------------------------------

    def _require(self, declared: frozenset[str], what: str) -> None:
        if what not in declared:
            raise self._unsupported(what)

    def public_key(self, material_id: str) -> bytes:
        return self._use(material_id, public_key_der)

    def sign(self, material_id: str, algorithm: str, payload: bytes) -> bytes:
        self._require(self.capabilities.signing_algorithms, algorithm)
        features = self.features
        return self._use(
            material_id, lambda material: _sign(material, algorithm, payload, features)
        )

    def decrypt_asymmetric(self, material_id: str, algorithm: str, ciphertext: bytes) -> bytes:
        self._require(self.capabilities.encryption_algorithms, algorithm)
        features = self.features
        return self._use(
            material_id, lambda material: _decrypt_oaep(material, algorithm, ciphertext, features)
        )

    def generate_mac(self, material_id: str, algorithm: str, message: bytes) -> bytes:
        self._require(self.capabilities.mac_algorithms, algorithm)
        return self._use(material_id, lambda material: _generate_mac(material, algorithm, message))

    def derive_shared_secret(self, material_id: str, peer_public_key: bytes) -> bytes:
        if not self.capabilities.key_agreement_specs:
            raise self._unsupported("key agreement")
        return self._use(
            material_id, lambda material: _derive_shared_secret(material, peer_public_key)
        )

    # --- Import: wrapping keys and unwrapping in the token ---------------------------------

    def create_wrapping_key(self, wrapping_key_id: str, key_spec: str) -> bytes:
        self._require(self.capabilities.wrapping_key_specs, key_spec)
        object_id = _wrapping_object_id(wrapping_key_id)
        bits = key_spec_info(key_spec).bits

        def create(login: TokenLogin) -> bytes:
            with file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
                private, public = self._wrapping_pair(login, wrapping_key_id, object_id)
                if public is None:
                    public = generate_wrapping_key(
                        login.session, bits, object_id, WRAPPING_LABEL_PREFIX + wrapping_key_id
                    )
            return public_key_der(TokenMaterial(MaterialKind.RSA, private, public))

        return self._call(create)

    def _wrapping_pair(
        self, login: TokenLogin, wrapping_key_id: str, object_id: bytes
    ) -> tuple[_KeyObject, _KeyObject | None]:
        """The (private, public) wrapping objects, or ``(None, None)``. File lock held."""
        found = find_objects(login.session, object_id)
        private = [item for item in found if item.object_class == ObjectClass.PRIVATE_KEY]
        public = [item for item in found if item.object_class == ObjectClass.PUBLIC_KEY]
        if private and public:
            login.wrapping_keys[wrapping_key_id] = (private[0], public[0])
            return private[0], public[0]
        return None, None

    def unwrap_material(
        self,
        material_id: str,
        key_spec: str,
        wrapping_key_id: str,
        wrapping_algorithm: str,
        wrapped: bytes,
    ) -> None:
        self._require(self.capabilities.wrapping_algorithms, wrapping_algorithm)
        self._require(self.capabilities.key_specs, key_spec)
        spec = key_spec_info(key_spec)
        key_id = _key_id(material_id)
        object_id = _wrapping_object_id(wrapping_key_id)
        features = self.features
        label = KEY_LABEL_PREFIX + material_id

        def unwrap(login: TokenLogin) -> None:
            private = self._wrapping_private(login, wrapping_key_id, object_id)
            unwrapper = Unwrapper(private, wrapping_algorithm, wrapped, features, key_spec, spec)
            try:
                unwrapper.open()
                # A session copy first: it is checked (and compared with what the id may hold
                # already) before anything is stored on the token.
                candidate = unwrapper.unwrap(store=False)
                try:
                    unwrapper.check(candidate)
                    with file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
                        existing = self._material_of(login, material_id, key_id)
                        if existing is not None:
                            if not unwrapper.same_as(existing, candidate):
                                raise MaterialRejectedError(
                                    f"material {material_id} holds other key material"
                                )
                            login.keys[material_id] = existing
                            return
                        stored = unwrapper.unwrap(store=True, key_id=key_id, label=label)
                        if spec.kind not in (MaterialKind.AES, MaterialKind.HMAC):
                            try:
                                stored.public = create_public_object(
                                    login.session, stored, key_id, label
                                )
                            except BaseException:
                                # Never leave half a pair: a retry must find nothing.
                                with contextlib.suppress(pkcs11.PKCS11Error):
                                    stored.key.destroy()
                                raise
                        login.keys[material_id] = stored
                finally:
                    with contextlib.suppress(pkcs11.PKCS11Error):
                        candidate.key.destroy()
            finally:
                unwrapper.close()

        self._call(unwrap)

    def _wrapping_private(
        self, login: TokenLogin, wrapping_key_id: str, object_id: bytes
    ) -> _KeyObject:
        cached = login.wrapping_keys.get(wrapping_key_id)
        if cached is not None:
            try:
                cached[0][Attribute.CLASS]
                return cached[0]
            except pkcs11.ObjectHandleInvalid:
                login.wrapping_keys.pop(wrapping_key_id, None)
        with file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
            private, _public = self._wrapping_pair(login, wrapping_key_id, object_id)
            if private is None:
                check_token_present(login)
                raise MaterialNotFoundError(wrapping_key_id)
        return private

    def destroy_wrapping_key(self, wrapping_key_id: str) -> None:
        object_id = _wrapping_object_id(wrapping_key_id)

        def destroy(login: TokenLogin) -> None:
            login.wrapping_keys.pop(wrapping_key_id, None)
            with file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
                for item in find_objects(login.session, object_id):
                    item.destroy()

        self._call(destroy)

    def generate_random(self, size: int) -> bytes:
        if size < 0:
            raise ValueError(f"random size must not be negative, got {size}")
        if size == 0:
            # python-pkcs11 cannot hand a zero-length buffer to C_GenerateRandom.
            return b""
        # python-pkcs11 takes the length in bits.
        return self._call(lambda login: bytes(login.session.generate_random(size * 8)))

    def health(self) -> BackendHealth:
        detail: dict[str, str | int | bool] = {"token_label": self._label, "module": self._module}
        try:
            serial = self._call(self._probe, lock_timeout=HEALTH_LOCK_TIMEOUT_SECONDS)
        except BackendError as exc:
            return BackendHealth("pkcs11", False, {**detail, "logged_in": False, "error": str(exc)})
        except Exception as exc:  # health() promises never to raise.
            log.exception("PKCS#11 health check failed")
            return BackendHealth(
                "pkcs11", False, {**detail, "logged_in": False, "error": type(exc).__name__}
            )
        return BackendHealth("pkcs11", True, {**detail, "logged_in": True, "token_serial": serial})

    def close(self) -> None:
        """Drop this backend's use of the process login; the last user logs out."""
        self._session.close()

    def _probe(self, login: TokenLogin) -> str:
        # C_GetTokenInfo reads token.object, which another process may be rewriting (login).
        with file_lock(self._lock_path, HEALTH_LOCK_TIMEOUT_SECONDS):
            return check_token_present(login)

    def _call(
        self,
        operation: Callable[[TokenLogin], T],
        *,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    ) -> T:
        """Run ``operation`` on this process's login (:meth:`TokenSession.call`): every token
        call goes through here, so a subclass can watch for the token becoming unavailable.
        Raises :class:`BackendUnavailableError` and whatever ``operation`` raises."""
        return self._session.call(operation, lock_timeout=lock_timeout)

    # --- Keys ----------------------------------------------------------------------------

    def _material_of(
        self, login: TokenLogin, material_id: str, key_id: bytes
    ) -> TokenMaterial | None:
        """The material the token holds for ``key_id``, or ``None``. File lock held."""
        try:
            return material_from_objects(find_objects(login.session, key_id))
        except MaterialRejectedError as exc:
            raise BackendUnavailableError(
                f"PKCS#11 token {self._label!r}, material {material_id}: {exc}"
            ) from None

    def _key(self, login: TokenLogin, material_id: str, key_id: bytes) -> TokenMaterial:
        """The cached or found material. Raises :class:`MaterialNotFoundError`."""
        material = login.keys.get(material_id)
        if material is not None:
            return material
        with file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
            material = self._material_of(login, material_id, key_id)
            if material is None:
                # A vanished token also hides its private objects; only a present token can
                # say a key does not exist.
                check_token_present(login)
                raise MaterialNotFoundError(material_id)
        login.keys[material_id] = material
        return material

    def _with_key(
        self,
        login: TokenLogin,
        material_id: str,
        key_id: bytes,
        use: Callable[[TokenMaterial], T],
    ) -> T:
        """``use(material)``, looking it up again once if a cached handle has died."""
        try:
            return use(self._key(login, material_id, key_id))
        except pkcs11.ObjectHandleInvalid:
            # Destroyed by another process, or the token went away: find out which.
            login.keys.pop(material_id, None)
        return use(self._key(login, material_id, key_id))

    def _aes_key(self, material: TokenMaterial) -> _KeyObject:
        if material.kind is not MaterialKind.AES:
            raise self._unsupported(f"AES-GCM with {material.kind} material")
        return material.key

    def _use(self, material_id: str, use: Callable[[TokenMaterial], T]) -> T:
        key_id = _key_id(material_id)
        return self._call(lambda login: self._with_key(login, material_id, key_id, use))


# --- Helpers -------------------------------------------------------------------------------


def _wrapping_object_id(wrapping_key_id: str) -> bytes:
    return WRAPPING_ID_PREFIX + _key_id(wrapping_key_id)


def _key_id(material_id: str) -> bytes:
    if not _MATERIAL_ID.match(material_id):
        raise ValueError(f"material id must be 64 lowercase hex digits, got {material_id!r}")
    return bytes.fromhex(material_id)
