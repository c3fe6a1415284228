"""Who may open the web console, and how they sign in (docs/console.md, "Safety").

* The console is on by default only when the server is bound to a loopback address; on any
  other address it is off unless ``MOCK_KMS_CONSOLE=on``, and then it needs a sign-in.
* Sign-in is a token (``MOCK_KMS_CONSOLE_TOKEN``, or a fresh one printed at every start), or,
  with ``--auth sigv4``, the access key id and secret of an identity in the credentials file.
  A token set explicitly, and the ``sigv4`` mode, ask for a sign-in on loopback too.

The printed token and the session-cookie key are derived from the root key and a random
per-start nonce kept (not secret) in ``<data-dir>/console/start-nonce``: every gunicorn worker
derives the same values, and no new secret is written to disk.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from kms_service.domain.errors import ConfigurationError
from kms_service.settings import Settings, console_mode
from local_secrets.root_key import RootKeyError, load_root_key
from local_secrets.secret_files import create_secret_file

log = logging.getLogger("mock_kms.console")

STATE_DIRECTORY = "console"
NONCE_FILE = "start-nonce"
NO_SIGN_IN = "none"
TOKEN_SIGN_IN = "token"  # noqa: S105 - the name of a sign-in mode
SIGV4_SIGN_IN = "sigv4"
_TOKEN_LABEL = b"mock-kms console sign-in token v1\x00"
_SESSION_LABEL = b"mock-kms console session key v1\x00"


@dataclass(frozen=True)
class ConsoleAccess:
    """Whether the console is served, and which sign-in it asks for."""

    enabled: bool
    #: :data:`NO_SIGN_IN`, :data:`TOKEN_SIGN_IN` or :data:`SIGV4_SIGN_IN`.
    sign_in: str
    #: One line saying why (printed at start, shown in docs and tests).
    reason: str


def bind_host(bind: str) -> str:
    """The host part of ``HOST:PORT`` (IPv6 brackets removed)."""
    host, _, _ = bind.rpartition(":")
    return host.strip("[]")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` listens on loopback only: 127.0.0.0/8, ``::1``, or a name whose every
    address is one of those. ``0.0.0.0`` and ``::`` (every interface) are not loopback."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    addresses = {str(info[4][0]) for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def decide_access(settings: Settings) -> ConsoleAccess:
    """The console's access rule for ``settings`` (see the module docstring).

    Raises :class:`ConfigurationError` for a bad ``--console`` value.
    """
    mode = console_mode(settings.console)
    if mode == "off":
        return ConsoleAccess(False, NO_SIGN_IN, "the web console is off (--console off)")
    loopback = is_loopback_host(bind_host(settings.bind))
    if not loopback and mode == "auto":
        return ConsoleAccess(
            False,
            NO_SIGN_IN,
            f"the web console is off: {settings.bind} is not a loopback address "
            "(set MOCK_KMS_CONSOLE=on to serve it, behind a sign-in)",
        )
    if settings.auth == "sigv4":
        return ConsoleAccess(True, SIGV4_SIGN_IN, "sign in with an access key and secret")
    if not loopback or settings.console_token is not None:
        return ConsoleAccess(True, TOKEN_SIGN_IN, "sign in with the console token")
    return ConsoleAccess(True, NO_SIGN_IN, "loopback bind: no sign-in")


def state_directory(settings: Settings) -> Path:
    return settings.data_dir / STATE_DIRECTORY


def _root_key(settings: Settings) -> bytes:
    try:
        return load_root_key(settings.data_dir, settings.root_key, create=True)
    except RootKeyError as exc:
        raise ConfigurationError(str(exc)) from None


def _derive(root_key: bytes, label: bytes, nonce: bytes) -> bytes:
    return hmac.new(root_key, label + nonce, hashlib.sha256).digest()


def _token_from(root_key: bytes, nonce: bytes) -> str:
    digest = _derive(root_key, _TOKEN_LABEL, nonce)
    return base64.urlsafe_b64encode(digest[:24]).decode("ascii")


def prepare_console(settings: Settings, out: TextIO | None = None) -> ConsoleAccess:
    """Master side, before the workers fork: write a fresh start nonce (a new token and new
    sessions for every start) and print where the console is and, when it needs one, the
    token. Raises :class:`ConfigurationError`."""
    access = decide_access(settings)
    stream = out if out is not None else sys.stderr
    if not access.enabled:
        print(f"mock-kms: {access.reason}", file=stream)
        return access
    directory = state_directory(settings)
    nonce = secrets.token_bytes(32)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        temporary = directory / f".{NONCE_FILE}.{os.getpid()}"
        temporary.write_text(nonce.hex())
        os.replace(temporary, directory / NONCE_FILE)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {directory / NONCE_FILE}: {exc}") from None
    scheme = "https" if settings.tls_enabled else "http"
    print(
        f"mock-kms: web console at {scheme}://{settings.bind}/console/ ({access.reason})",
        file=stream,
    )
    if access.sign_in == TOKEN_SIGN_IN and settings.console_token is None:
        token = _token_from(_root_key(settings), nonce)
        print(f"mock-kms: console sign-in token: {token}", file=stream)
    return access


def _read_nonce(settings: Settings) -> bytes:
    """The start nonce; created here when no master wrote one (``deploy/`` gunicorn config),
    in which case the first worker's nonce wins and its token is logged once."""
    path = state_directory(settings) / NONCE_FILE
    candidate = secrets.token_bytes(32)
    try:
        created = create_secret_file(path, candidate.hex().encode("ascii"))
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc}") from None
    if created:
        access = decide_access(settings)
        if access.sign_in == TOKEN_SIGN_IN and settings.console_token is None:
            log.warning("console sign-in token: %s", _token_from(_root_key(settings), candidate))
        return candidate
    for _ in range(50):  # another worker may be between creating the file and writing it
        text = path.read_text().strip()
        if text:
            try:
                return bytes.fromhex(text)
            except ValueError:
                raise ConfigurationError(f"{path} is corrupt: delete it and restart") from None
        time.sleep(0.01)
    raise ConfigurationError(f"{path} is empty: delete it and restart")


@dataclass(frozen=True)
class ConsoleSecrets:
    """What a worker needs to check sign-ins and sign session cookies. Never rendered."""

    session_key: bytes
    token: str | None

    def token_matches(self, offered: str) -> bool:
        """Constant-time comparison with the sign-in token."""
        if self.token is None:
            return False
        return hmac.compare_digest(offered.encode("utf-8"), self.token.encode("utf-8"))


def load_secrets(settings: Settings) -> ConsoleSecrets:
    """Worker side: derive the session key and the token. Raises :class:`ConfigurationError`."""
    nonce = _read_nonce(settings)
    root_key = _root_key(settings)
    token = settings.console_token or _token_from(root_key, nonce)
    return ConsoleSecrets(_derive(root_key, _SESSION_LABEL, nonce), token)


def is_local_host_header(host: str | None) -> bool:
    """Whether a ``Host`` header names this machine by a loopback name or address, which is
    what a browser sends to a loopback-bound console. Anything else, on a console without
    sign-in, is refused: a DNS-rebinding page would otherwise read it."""
    if not host:
        return False
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
