"""Process-local PKCS#11 state: one loaded module and one login per process and token, the
module lock, the token's file lock, and reconnecting after a failure.

:class:`TokenSession` is what :class:`backends.pkcs11.Pkcs11Backend` runs every token call
through; the rules it keeps (lazy loading per ``os.getpid()``, one login per process, one lock
per module, an ``fcntl.flock`` per token, reinitialise and retry once) are explained, with
their measurements, in the docstring of :mod:`backends.pkcs11`. PIN resolution and
:class:`Pkcs11ConfigError` live here too, since both the backend and the configuration check
(:mod:`backends.pkcs11_check`) use them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pkcs11

from backends.base import BackendUnavailableError
from backends.pkcs11_keys import TokenMaterial

# The backend's logger: its records keep the name they had before this module was split out.
log = logging.getLogger("backends.pkcs11")

T = TypeVar("T")

#: Longest wait for the process lock or the token's file lock before giving up.
LOCK_TIMEOUT_SECONDS = 30.0
#: ``health()`` waits less: a status check should answer quickly.
HEALTH_LOCK_TIMEOUT_SECONDS = 5.0

# here: SoftHSM 2.6.1 also reports it while another process rewrites token.object.)
PIN_FAILURES = (
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
class TokenLogin:
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
    logins: dict[str, TokenLogin] = field(default_factory=dict)


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


# --- One backend's connection to its token --------------------------------------------------


class TokenSession:
    """One backend's use of this process's login on a token: runs calls under the module
    lock, connecting, logging in and reconnecting as needed. Safe to call from several
    threads; each process connects on its own (state inherited through ``fork`` is unused).
    """

    def __init__(self, module: str, token_label: str, pin: str, lock_path: Path) -> None:
        self._module = module
        self._label = token_label
        self._pin = pin
        self._lock_path = lock_path
        self._attached_pid: int | None = None

    def call(
        self,
        operation: Callable[[TokenLogin], T],
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
                        "PKCS#11 token %r failed (%s); reconnecting", self._label, describe(exc)
                    )
                    state.needs_reinit = True
            raise BackendUnavailableError(
                f"PKCS#11 token {self._label!r} unavailable: {describe(failure)}"
            )
        finally:
            state.lock.release()

    def _connect(self, state: _ModuleState) -> TokenLogin:
        """This process's live login on the token; (re)connects as needed. Lock held."""
        login = state.logins.get(self._label)
        if login is None:
            login = state.logins[self._label] = TokenLogin()
        if self._attached_pid != state.pid:
            self._attached_pid = state.pid
            login.users += 1
        if login.pin_rejected:
            raise BackendUnavailableError(login.pin_rejected)
        if state.lib is not None and not state.needs_reinit and login.connected(state.generation):
            return login
        with file_lock(self._lock_path, LOCK_TIMEOUT_SECONDS):
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
                    f"PKCS#11 module {self._module} cannot be loaded: {describe(exc)}"
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
                f" ({describe(exc)})"
            ) from None
        state.needs_reinit = False

    def _log_in(self, state: _ModuleState, login: TokenLogin, *, fresh: bool) -> None:
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
        except PIN_FAILURES as exc:
            login.pin_rejected = (
                f"PKCS#11 token {self._label!r} rejected the PIN ({describe(exc)}); not"
                " retrying, so the HSM does not lock it: fix PKCS11_PIN and restart"
            )
            raise BackendUnavailableError(login.pin_rejected) from None
        login.token = token
        login.session = session
        login.owns_login = owns_login
        login.generation = state.generation

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
                    log.warning("PKCS#11 token %r: logout failed: %s", self._label, describe(exc))
            login.drop()
        finally:
            state.lock.release()


# --- Helpers -------------------------------------------------------------------------------


def lock_path_for(lock_dir: Path, token_label: str) -> Path:
    """The lock file every process using ``token_label`` shares."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", token_label)
    return lock_dir / f"pkcs11-token-{safe}.lock"


def check_token_present(login: TokenLogin) -> str:
    """The token's serial; raises a PKCS#11 error if the token is gone (C_GetTokenInfo)."""
    return str(login.token.slot.get_token().serial.decode("ascii", "replace"))


def describe(exc: BaseException | None) -> str:
    """A one-line description; most python-pkcs11 errors carry only their class name."""
    if exc is None:
        return "unknown error"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def resolve_pin(pin: str | None, pin_file: Path | None, token_label: str) -> str:
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
def file_lock(path: Path, timeout: float) -> Iterator[None]:
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
