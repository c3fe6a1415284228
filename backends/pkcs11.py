"""PKCS#11 key backend: every key material is an object (or a key pair) inside an HSM token.

Nothing outside the token ever sees private or secret key material: keys are generated in the
token (token objects, ``SENSITIVE``, never ``EXTRACTABLE``, ``PRIVATE``) or unwrapped into it,
and AES-GCM, signing, RSA decryption, HMAC, ECDH and the random generator run in the token.
Each material id maps to one secret key or one key pair whose ``CKA_ID`` is the 32 bytes of
the id and whose ``CKA_LABEL`` is ``mock-kms:<id>``, so it is found again after a restart.
What the token serves is probed once when the backend is opened
(:mod:`backends.pkcs11_capabilities`); the key kinds themselves are in
:mod:`backends.pkcs11_keys`, and ``docs/pkcs11-key-kinds.md`` says what runs where.

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
import fcntl
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
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
from backends.pkcs11_keys import (
    KEY_LABEL_PREFIX,
    WRAPPING_ID_PREFIX,
    WRAPPING_LABEL_PREFIX,
    TokenMaterial,
    Unwrapper,
    create_public_object,
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
from backends.pkcs11_specs import MaterialKind, key_spec_info

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Longest wait for the process lock or the token's file lock before giving up.
LOCK_TIMEOUT_SECONDS = 30.0
#: ``health()`` waits less: a status check should answer quickly.
HEALTH_LOCK_TIMEOUT_SECONDS = 5.0
#: Longest the configuration check in a child process may take.
CHECK_TIMEOUT_SECONDS = 60.0
TAG_BITS = TAG_SIZE * 8

_MATERIAL_ID = re.compile(r"^[0-9a-f]{64}$")
# SoftHSM 2.6.1 reports a failed GCM tag check as GeneralError; 2.7.0 and other HSMs use these.
_GCM_FAILURES = (pkcs11.GeneralError, pkcs11.EncryptedDataInvalid, pkcs11.EncryptedDataLenRange)
# Never retried: a real HSM locks the PIN after a few failures. (UserPinNotInitialized is not
# here: SoftHSM 2.6.1 also reports it while another process rewrites token.object.)
_PIN_FAILURES = (
    pkcs11.PinIncorrect,
    pkcs11.PinInvalid,
    pkcs11.PinLenRange,
    pkcs11.PinLocked,
    pkcs11.PinExpired,
)

# Key objects come back as classes python-pkcs11 builds from the key's capabilities, so the
# stubs cannot name them.
_KeyObject = Any


class Pkcs11ConfigError(Exception):
    """The module, token or PIN configuration is wrong; the message is one actionable line.

    ``reason`` says which part failed, for callers that report it in other words (custom key
    stores' ``ConnectionErrorCode``, docs/custom-key-stores.md): ``module`` (cannot be loaded,
    initialised or asked for its tokens, crashed or timed out), ``token`` (no single token
    with the label), ``pin`` (PIN refused), ``pin_locked``, or ``other``.
    """

    def __init__(self, message: str, reason: str = "other") -> None:
        super().__init__(message)
        self.reason = reason


# --- Process-local state -------------------------------------------------------------------


@dataclass(eq=False)
class _TokenLogin:
    """This process's login on one token: the session every call uses, and cached keys."""

    token: Any = None
    session: Any = None
    generation: int = -1
    keys: dict[str, TokenMaterial] = field(default_factory=dict)
    #: Wrapping key pairs by wrapping key id: (private, public) objects.
    wrapping_keys: dict[str, tuple[_KeyObject, _KeyObject]] = field(default_factory=dict)
    users: int = 0
    #: False when another part of the process had logged in already: we must not log it out.
    owns_login: bool = True
    #: Set once the PIN is rejected, so a real HSM is not locked by retries.
    pin_rejected: str | None = None

    def connected(self, generation: int) -> bool:
        return self.session is not None and self.generation == generation

    def drop(self) -> None:
        self.token = None
        self.session = None
        self.keys.clear()
        self.wrapping_keys.clear()


@dataclass(eq=False)
class _ModuleState:
    """One PKCS#11 module as loaded in one process."""

    module: str
    pid: int = field(default_factory=os.getpid)
    lock: threading.Lock = field(default_factory=threading.Lock)
    lib: Any = None
    #: Bumped on every C_Initialize: sessions and handles from an older generation are dead.
    generation: int = 0
    needs_reinit: bool = False
    logins: dict[str, _TokenLogin] = field(default_factory=dict)


class _Registry:
    """Per-process module states. Nothing in it survives a fork (checked by pid, and reset)."""

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.states: dict[tuple[int, str], _ModuleState] = {}
        #: module path → pid that ran C_Initialize, to recognise a module inherited via fork.
        self.initialised_in: dict[str, int] = {}

    def after_fork_in_child(self) -> None:
        # A guard held by another thread at fork time would stay locked forever in the child.
        self.guard = threading.Lock()
        self.states = {}

    def state(self, module: str) -> _ModuleState:
        pid = os.getpid()
        with self.guard:
            state = self.states.get((pid, module))
            if state is None:
                state = self.states[(pid, module)] = _ModuleState(module)
            return state


_registry = _Registry()
os.register_at_fork(after_in_child=_registry.after_fork_in_child)


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
        self._pin = pin
        self._lock_path = lock_path_for(lock_dir, token_label)
        self._attached_pid: int | None = None
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
        resolved_pin = _resolve_pin(pin, pin_file, token_label)
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
            with _file_lock(lock_path_for(lock_dir, token_label), LOCK_TIMEOUT_SECONDS):
                pass
        except (OSError, BackendUnavailableError) as exc:
            raise Pkcs11ConfigError(
                f"cannot use lock directory {lock_dir} for the PKCS#11 token: {_describe(exc)}"
            ) from None
        features = _check_in_child(module, token_label, resolved_pin, lock_dir)
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

        def create(login: _TokenLogin) -> None:
            # Always searched, never answered from the cache: the key may have been destroyed
            # by another process since it was cached.
            with _file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
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

        def destroy(login: _TokenLogin) -> None:
            login.keys.pop(material_id, None)
            with _file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
                # Every object of the id: both halves of a key pair.
                found = find_objects(login.session, key_id)
                if not found:
                    # An absent token also finds nothing; don't call that a successful delete.
                    _check_token_present(login)
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

        def create(login: _TokenLogin) -> bytes:
            with _file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
                private, public = self._wrapping_pair(login, wrapping_key_id, object_id)
                if public is None:
                    public = generate_wrapping_key(
                        login.session, bits, object_id, WRAPPING_LABEL_PREFIX + wrapping_key_id
                    )
            return public_key_der(TokenMaterial(MaterialKind.RSA, private, public))

        return self._call(create)

    def _wrapping_pair(
        self, login: _TokenLogin, wrapping_key_id: str, object_id: bytes
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

        def unwrap(login: _TokenLogin) -> None:
            private = self._wrapping_private(login, wrapping_key_id, object_id)
            unwrapper = Unwrapper(private, wrapping_algorithm, wrapped, features, key_spec, spec)
            try:
                unwrapper.open()
                # A session copy first: it is checked (and compared with what the id may hold
                # already) before anything is stored on the token.
                candidate = unwrapper.unwrap(store=False)
                try:
                    unwrapper.check(candidate)
                    with _file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
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
        self, login: _TokenLogin, wrapping_key_id: str, object_id: bytes
    ) -> _KeyObject:
        cached = login.wrapping_keys.get(wrapping_key_id)
        if cached is not None:
            try:
                cached[0][Attribute.CLASS]
                return cached[0]
            except pkcs11.ObjectHandleInvalid:
                login.wrapping_keys.pop(wrapping_key_id, None)
        with _file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
            private, _public = self._wrapping_pair(login, wrapping_key_id, object_id)
            if private is None:
                _check_token_present(login)
                raise MaterialNotFoundError(wrapping_key_id)
        return private

    def destroy_wrapping_key(self, wrapping_key_id: str) -> None:
        object_id = _wrapping_object_id(wrapping_key_id)

        def destroy(login: _TokenLogin) -> None:
            login.wrapping_keys.pop(wrapping_key_id, None)
            with _file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
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
        if self._attached_pid != os.getpid():
            # Never attached here, or attached in a parent before a fork: nothing to release.
            self._attached_pid = None
            return
        self._attached_pid = None
        state = _registry.state(self._module)
        if not state.lock.acquire(timeout=LOCK_TIMEOUT_SECONDS):
            log.warning("PKCS#11 token %r: close() timed out waiting for the module", self._label)
            return
        try:
            login = state.logins.get(self._label)
            if login is None:
                return
            login.users -= 1
            if login.users > 0:
                return
            del state.logins[self._label]
            if login.connected(state.generation) and login.owns_login:
                try:
                    login.session.close()
                except pkcs11.PKCS11Error as exc:
                    log.warning("PKCS#11 token %r: logout failed: %s", self._label, _describe(exc))
            login.drop()
        finally:
            state.lock.release()

    def _probe(self, login: _TokenLogin) -> str:
        # C_GetTokenInfo reads token.object, which another process may be rewriting (login).
        with _file_lock(self._lock_path, HEALTH_LOCK_TIMEOUT_SECONDS):
            return _check_token_present(login)

    # --- Connection management -----------------------------------------------------------

    def _call(
        self,
        operation: Callable[[_TokenLogin], T],
        *,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    ) -> T:
        """Run ``operation`` on this process's login, holding the module lock.

        A PKCS#11 error the operation did not turn into a backend error means the token or
        module is in trouble: reinitialise, log in again and retry once.
        Raises :class:`BackendUnavailableError` and whatever ``operation`` raises.
        """
        state = _registry.state(self._module)
        if not state.lock.acquire(timeout=lock_timeout):
            raise BackendUnavailableError(
                f"PKCS#11 token {self._label!r}: timed out after {lock_timeout:g} s waiting for"
                " the module"
            )
        try:
            failure: pkcs11.PKCS11Error | None = None
            for _attempt in range(2):
                try:
                    return operation(self._connect(state))
                except pkcs11.PKCS11Error as exc:
                    failure = exc
                    log.warning(
                        "PKCS#11 token %r failed (%s); reconnecting", self._label, _describe(exc)
                    )
                    state.needs_reinit = True
            raise BackendUnavailableError(
                f"PKCS#11 token {self._label!r} unavailable: {_describe(failure)}"
            )
        finally:
            state.lock.release()

    def _connect(self, state: _ModuleState) -> _TokenLogin:
        """This process's live login on the token; (re)connects as needed. Lock held."""
        login = state.logins.get(self._label)
        if login is None:
            login = state.logins[self._label] = _TokenLogin()
        if self._attached_pid != state.pid:
            self._attached_pid = state.pid
            login.users += 1
        if login.pin_rejected:
            raise BackendUnavailableError(login.pin_rejected)
        if state.lib is not None and not state.needs_reinit and login.connected(state.generation):
            return login
        with _file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
            fresh = self._initialise(state)
            if not login.connected(state.generation):
                self._log_in(state, login, fresh=fresh)
        return login

    def _initialise(self, state: _ModuleState) -> bool:
        """Load the module in this process, or reinitialise it after a failure. Lock held.

        Returns whether the module was (re)initialised just now.
        """
        fresh = False
        if state.lib is None:
            # A module loaded before a fork carries the parent's state: PKCS#11 says the
            # child must C_Initialize on its own.
            inherited = self._module in getattr(pkcs11, "_loaded", {}) and (
                _registry.initialised_in.get(self._module) != state.pid
            )
            try:
                state.lib = pkcs11.lib(self._module)
            except pkcs11.PKCS11Error as exc:
                raise BackendUnavailableError(
                    f"PKCS#11 module {self._module} cannot be loaded: {_describe(exc)}"
                ) from None
            _registry.initialised_in[self._module] = state.pid
            state.generation += 1
            state.needs_reinit = inherited
            fresh = not inherited
        if state.needs_reinit:
            self._reinitialise(state)
            fresh = True
        return fresh

    def _reinitialise(self, state: _ModuleState) -> None:
        # Every session and handle of the old initialisation is gone, whatever happens next.
        state.generation += 1
        for login in state.logins.values():
            login.drop()
        with contextlib.suppress(pkcs11.PKCS11Error):
            # Fails when the module is down already; initialize() below is what counts.
            state.lib.finalize()
        try:
            state.lib.initialize()
        except pkcs11.PKCS11Error as exc:
            raise BackendUnavailableError(
                f"PKCS#11 token {self._label!r} unavailable: module does not initialise"
                f" ({_describe(exc)})"
            ) from None
        state.needs_reinit = False

    def _log_in(self, state: _ModuleState, login: _TokenLogin, *, fresh: bool) -> None:
        """Find the token by label and log in once for the process. Both locks held."""
        login.drop()
        try:
            token = state.lib.get_token(token_label=self._label)
        except pkcs11.NoSuchToken:
            if fresh:
                raise BackendUnavailableError(
                    f"PKCS#11 token {self._label!r} unavailable: no token with that label"
                ) from None
            # A token created after our C_Initialize stays invisible until reinitialisation.
            self._reinitialise(state)
            return self._log_in(state, login, fresh=True)
        try:
            session = token.open(rw=True, user_pin=self._pin)
            owns_login = True
        except pkcs11.UserAlreadyLoggedIn:
            # Another part of this process logged in; the login is process-wide, so a
            # PIN-less session sees the keys, and closing it will not log the other out.
            session = token.open(rw=True)
            owns_login = False
        except _PIN_FAILURES as exc:
            login.pin_rejected = (
                f"PKCS#11 token {self._label!r} rejected the PIN ({_describe(exc)}); not"
                " retrying, so the HSM does not lock it: fix PKCS11_PIN and restart"
            )
            raise BackendUnavailableError(login.pin_rejected) from None
        login.token = token
        login.session = session
        login.owns_login = owns_login
        login.generation = state.generation

    # --- Keys ----------------------------------------------------------------------------

    def _material_of(
        self, login: _TokenLogin, material_id: str, key_id: bytes
    ) -> TokenMaterial | None:
        """The material the token holds for ``key_id``, or ``None``. File lock held."""
        try:
            return material_from_objects(find_objects(login.session, key_id))
        except MaterialRejectedError as exc:
            raise BackendUnavailableError(
                f"PKCS#11 token {self._label!r}, material {material_id}: {exc}"
            ) from None

    def _key(self, login: _TokenLogin, material_id: str, key_id: bytes) -> TokenMaterial:
        """The cached or found material. Raises :class:`MaterialNotFoundError`."""
        material = login.keys.get(material_id)
        if material is not None:
            return material
        with _file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
            material = self._material_of(login, material_id, key_id)
            if material is None:
                # A vanished token also hides its private objects; only a present token can
                # say a key does not exist.
                _check_token_present(login)
                raise MaterialNotFoundError(material_id)
        login.keys[material_id] = material
        return material

    def _with_key(
        self,
        login: _TokenLogin,
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


def lock_path_for(lock_dir: Path, token_label: str) -> Path:
    """The lock file every process using ``token_label`` shares."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", token_label)
    return lock_dir / f"pkcs11-token-{safe}.lock"


def _wrapping_object_id(wrapping_key_id: str) -> bytes:
    return WRAPPING_ID_PREFIX + _key_id(wrapping_key_id)


def _key_id(material_id: str) -> bytes:
    if not _MATERIAL_ID.match(material_id):
        raise ValueError(f"material id must be 64 lowercase hex digits, got {material_id!r}")
    return bytes.fromhex(material_id)


def _check_token_present(login: _TokenLogin) -> str:
    """The token's serial; raises a PKCS#11 error if the token is gone (C_GetTokenInfo)."""
    return str(login.token.slot.get_token().serial.decode("ascii", "replace"))


def _describe(exc: BaseException | None) -> str:
    """A one-line description; most python-pkcs11 errors carry only their class name."""
    if exc is None:
        return "unknown error"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _resolve_pin(pin: str | None, pin_file: Path | None, token_label: str) -> str:
    if pin and pin_file:
        raise Pkcs11ConfigError("set only one of PKCS11_PIN and PKCS11_PIN_FILE")
    if pin_file is not None:
        try:
            pin = pin_file.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise Pkcs11ConfigError(
                f"cannot read PKCS11_PIN_FILE {pin_file}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        if not pin:
            raise Pkcs11ConfigError(f"PKCS11_PIN_FILE {pin_file} is empty")
    if not pin:
        raise Pkcs11ConfigError(
            f"no PIN for PKCS#11 token {token_label!r}: set PKCS11_PIN or PKCS11_PIN_FILE"
        )
    return pin


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``. Raises :class:`BackendUnavailableError`."""
    try:
        # Opened per use and close-on-exec: a forked child never shares the parent's lock.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise BackendUnavailableError(f"cannot open lock file {path}: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise BackendUnavailableError(
                        f"timed out after {timeout:g} s waiting for lock file {path}"
                    ) from None
                time.sleep(0.002)
        yield
    finally:
        os.close(fd)


# --- Configuration check (runs in a child process) ------------------------------------------

_CHECK_PROGRAM = "from backends.pkcs11 import _check_main; _check_main()"


def _check_in_child(module: str, token_label: str, pin: str, lock_dir: Path) -> TokenFeatures:
    """Run :func:`check_token` in a fresh interpreter and probe what the token can do.

    Raises :class:`Pkcs11ConfigError`.
    """
    project_root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        part for part in (project_root, env.get("PYTHONPATH", "")) if part
    )
    request = {"module": module, "token_label": token_label, "pin": pin, "lock_dir": str(lock_dir)}
    try:
        # The PIN goes through stdin: argv and the environment are visible in /proc.
        result = subprocess.run(
            [sys.executable, "-c", _CHECK_PROGRAM],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            env=env,
            timeout=CHECK_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise Pkcs11ConfigError(
            f"PKCS#11 module {module} did not answer within {CHECK_TIMEOUT_SECONDS:g} s while"
            f" opening token {token_label!r}",
            "module",
        ) from None
    if result.returncode < 0:
        raise Pkcs11ConfigError(
            f"PKCS#11 module {module} crashed (signal {-result.returncode}) while opening token"
            f" {token_label!r}",
            "module",
        )
    try:
        answer = json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        lines = result.stderr.strip().splitlines()
        detail = lines[-1] if lines else f"exit status {result.returncode}"
        raise Pkcs11ConfigError(
            f"checking PKCS#11 token {token_label!r} in {module} failed: {detail}"
        ) from None
    if not answer.get("ok"):
        raise Pkcs11ConfigError(
            str(answer.get("error", "unknown error")), str(answer.get("reason", "other"))
        )
    return TokenFeatures.from_json(answer["features"])


def _check_main() -> None:
    """Entry point of the check child: request JSON on stdin, answer JSON on stdout."""
    request = json.loads(sys.stdin.read())
    probed: list[TokenFeatures] = []
    try:
        serial = check_token(
            request["module"],
            request["token_label"],
            request["pin"],
            Path(request["lock_dir"]),
            probe=probed.append,
        )
    except Pkcs11ConfigError as exc:
        print(json.dumps({"ok": False, "error": str(exc), "reason": exc.reason}))
        return
    print(json.dumps({"ok": True, "token_serial": serial, "features": probed[0].to_json()}))


def check_token(
    module: str,
    token_label: str,
    pin: str,
    lock_dir: Path,
    probe: Callable[[TokenFeatures], None] | None = None,
) -> str:
    """Load ``module``, find ``token_label``, log in with ``pin`` and log out again; while
    logged in, hand what :func:`probe_token` finds to ``probe``.

    Leaves the module loaded in the calling process, so :meth:`Pkcs11Backend.open` runs it
    in a child. Returns the token serial. Raises :class:`Pkcs11ConfigError`.
    """
    try:
        with _file_lock(lock_path_for(lock_dir, token_label), LOCK_TIMEOUT_SECONDS):
            return _check_token_locked(module, token_label, pin, probe)
    except BackendUnavailableError as exc:
        raise Pkcs11ConfigError(str(exc)) from None


def _check_token_locked(
    module: str,
    token_label: str,
    pin: str,
    probe: Callable[[TokenFeatures], None] | None,
) -> str:
    try:
        lib = pkcs11.lib(module)
    except pkcs11.PKCS11Error as exc:
        text = " ".join(str(exc).split())
        if "loading" in text:
            raise Pkcs11ConfigError(
                f"PKCS#11 module {module} cannot be loaded ({text}): check PKCS11_MODULE",
                "module",
            ) from None
        conf = os.environ.get("SOFTHSM2_CONF")
        hint = f"; check SOFTHSM2_CONF={conf}" if conf else ""
        raise Pkcs11ConfigError(
            f"PKCS#11 module {module} failed to initialise ({_describe(exc)}){hint}", "module"
        ) from None
    try:
        tokens = list(lib.get_tokens())
    except pkcs11.PKCS11Error as exc:
        raise Pkcs11ConfigError(
            f"PKCS#11 module {module} cannot list its tokens ({_describe(exc)})", "module"
        ) from None
    matching = [token for token in tokens if token.label == token_label]
    if not matching:
        present = ", ".join(repr(token.label) for token in tokens if token.label) or "none"
        where = module
        if "softhsm" in module.lower():
            # SoftHSM finds its tokens through SOFTHSM2_CONF: the usual cause of a miss.
            where += f" with SOFTHSM2_CONF={os.environ.get('SOFTHSM2_CONF') or '(unset)'}"
        raise Pkcs11ConfigError(
            f"no PKCS#11 token labelled {token_label!r} in {where} (tokens present: {present}):"
            " fix PKCS11_TOKEN_LABEL, or create one with `mock-kms softhsm-init`",
            "token",
        )
    if len(matching) > 1:
        raise Pkcs11ConfigError(
            f"{len(matching)} PKCS#11 tokens are labelled {token_label!r} in {module}:"
            " give each token a unique label",
            "token",
        )
    token = matching[0]
    if Mechanism.AES_GCM not in token.slot.get_mechanisms():
        raise Pkcs11ConfigError(
            f"PKCS#11 token {token_label!r} does not support AES-GCM (CKM_AES_GCM)"
        )
    try:
        session = token.open(rw=True, user_pin=pin)
    except pkcs11.PinIncorrect:
        raise Pkcs11ConfigError(
            f"the PIN for PKCS#11 token {token_label!r} is incorrect:"
            " fix PKCS11_PIN or PKCS11_PIN_FILE",
            "pin",
        ) from None
    except pkcs11.PinLocked:
        raise Pkcs11ConfigError(
            f"the user PIN of PKCS#11 token {token_label!r} is locked: unlock it with the SO PIN",
            "pin_locked",
        ) from None
    except _PIN_FAILURES as exc:
        raise Pkcs11ConfigError(
            f"PKCS#11 token {token_label!r} refused the PIN ({_describe(exc)}):"
            " fix PKCS11_PIN or PKCS11_PIN_FILE",
            "pin",
        ) from None
    except pkcs11.PKCS11Error as exc:
        raise Pkcs11ConfigError(
            f"cannot log in to PKCS#11 token {token_label!r} ({_describe(exc)})"
        ) from None
    try:
        if probe is not None:
            try:
                probe(probe_token(session))
            except pkcs11.PKCS11Error as exc:
                raise Pkcs11ConfigError(
                    f"PKCS#11 token {token_label!r} failed while its mechanisms were probed"
                    f" ({_describe(exc)})"
                ) from None
    finally:
        with contextlib.suppress(pkcs11.PKCS11Error):
            session.close()
    return str(token.serial.decode("ascii", "replace"))
