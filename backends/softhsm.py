"""A private SoftHSM token inside a mock-kms data directory, for ``make run-hsm`` and tests.

Everything lives under ``<data_dir>/softhsm/``: its own ``softhsm2.conf`` (the system
configuration is never read or changed), the token directory, and one 0600 file per token
holding its random user PIN. :func:`init_softhsm_token` is idempotent, so it can run on every
start.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SOFTHSM_SUBDIR = "softhsm"
CONF_FILE = "softhsm2.conf"
TOKENS_SUBDIR = "tokens"
INSTALL_HINT = "apt-get install softhsm2"

#: Where distributions put the module. Debian's /usr/lib/softhsm path is a symlink into the
#: multiarch directory, which is listed too for systems that ship only that.
MODULE_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/*-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/lib/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
)

# PKCS#11 token labels are 32 bytes; the label also names the PIN file, so keep it file-safe.
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
_UTIL_TIMEOUT_SECONDS = 60


class SoftHsmError(Exception):
    """SoftHSM could not be set up; the message is one actionable line."""


class SoftHsmNotInstalledError(SoftHsmError):
    """``libsofthsm2.so`` or ``softhsm2-util`` is missing."""


@dataclass(frozen=True)
class SoftHsmToken:
    """An initialised SoftHSM token and what a process needs to use it."""

    conf_path: Path
    module_path: str
    label: str
    pin_file: Path

    def env(self) -> dict[str, str]:
        """The environment variables that run mock-kms on this token."""
        return {
            "SOFTHSM2_CONF": str(self.conf_path),
            "PKCS11_MODULE": self.module_path,
            "PKCS11_TOKEN_LABEL": self.label,
            "PKCS11_PIN_FILE": str(self.pin_file),
            "MOCK_KMS_BACKEND": "pkcs11",
        }

    def read_pin(self) -> str:
        """The token's user PIN. Raises :class:`OSError` if the PIN file is unreadable."""
        return self.pin_file.read_text(encoding="utf-8").strip()

    def token_dir(self) -> Path:
        """The directory SoftHSM keeps this token's objects in.

        SoftHSM names it by a UUID whose last 16 hex digits are the token serial.
        Raises :class:`SoftHsmError` if the token cannot be found.
        """
        serial = _token_serials(self.conf_path).get(self.label)
        if serial:
            tokens = Path(_read_tokendir(self.conf_path))
            for candidate in tokens.iterdir():
                if candidate.name.replace("-", "").endswith(serial):
                    return candidate
        raise SoftHsmError(f"SoftHSM token {self.label!r} not found under {self.conf_path.parent}")


def find_softhsm_module() -> str:
    """The path of ``libsofthsm2.so``. Raises :class:`SoftHsmNotInstalledError`."""
    for pattern in MODULE_CANDIDATES:
        for path in sorted(glob.glob(pattern)):
            if os.path.isfile(path):
                return path
    raise SoftHsmNotInstalledError(
        f"SoftHSM is not installed (libsofthsm2.so not found): {INSTALL_HINT}"
    )


def find_softhsm_util() -> str:
    """The path of ``softhsm2-util``. Raises :class:`SoftHsmNotInstalledError`."""
    util = shutil.which("softhsm2-util")
    if util is None:
        raise SoftHsmNotInstalledError(
            f"SoftHSM is not installed (softhsm2-util not on PATH): {INSTALL_HINT}"
        )
    return util


def softhsm_conf_path(data_dir: Path) -> Path:
    """Where :func:`init_softhsm_token` puts the ``softhsm2.conf`` for ``data_dir``."""
    return data_dir.resolve() / SOFTHSM_SUBDIR / CONF_FILE


def init_softhsm_token(data_dir: Path, label: str = "mock-kms") -> SoftHsmToken:
    """Create (or find) the SoftHSM token ``label`` under ``<data_dir>/softhsm/``.

    Idempotent: an existing token and its PIN file are kept. Several labels may share one
    data directory (and one configuration). Raises :class:`SoftHsmNotInstalledError` and
    :class:`SoftHsmError`; :class:`ValueError` for a label that is not 1-32 characters of
    ``[A-Za-z0-9._-]``.
    """
    if not _LABEL.match(label):
        raise ValueError(
            f"SoftHSM token label must be 1-32 characters of A-Z a-z 0-9 . _ -, got {label!r}"
        )
    module_path = find_softhsm_module()
    util = find_softhsm_util()
    conf_path = softhsm_conf_path(data_dir)
    home = conf_path.parent
    tokens = home / TOKENS_SUBDIR
    try:
        tokens.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
    except OSError as exc:
        raise SoftHsmError(f"cannot create SoftHSM directory {home}: {exc.strerror}") from None
    token = SoftHsmToken(conf_path, module_path, label, home / f"{label}.pin")
    # Two `softhsm-init` runs at once must not both create a token with this label.
    with _exclusive(home / ".init.lock"):
        _write_conf(conf_path, tokens)
        existing = _token_serials(conf_path, util)
        if label in existing:
            if not token.pin_file.exists():
                raise SoftHsmError(
                    f"SoftHSM token {label!r} exists in {home} but its PIN file {token.pin_file}"
                    f" is missing; delete {home} to start over"
                )
            return token
        # The PIN file is written first: if token creation fails halfway, the next run
        # reuses the same PIN instead of leaving a token nobody can log in to.
        pin = _read_or_create_secret(token.pin_file)
        so_pin = _read_or_create_secret(home / f"{label}.so-pin")
        _run_util(
            util,
            conf_path,
            # The PINs appear briefly in this child's argv (softhsm2-util has no other
            # non-interactive way); the token is a private development token.
            ["--init-token", "--free", "--label", label, "--so-pin", so_pin, "--pin", pin],
        )
    return token


def _write_conf(conf_path: Path, tokens: Path) -> None:
    # Rewritten every time so a moved data directory still points at its own tokens.
    text = (
        "# Written by mock-kms (backends/softhsm.py); private to this data directory.\n"
        f"directories.tokendir = {tokens}\n"
        "objectstore.backend = file\n"
        "log.level = ERROR\n"
        "slots.removable = false\n"
        "library.reset_on_fork = false\n"
    )
    with contextlib.suppress(FileNotFoundError):
        if conf_path.read_text(encoding="utf-8") == text:
            return
    temporary = conf_path.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(conf_path)


def _read_tokendir(conf_path: Path) -> str:
    for line in conf_path.read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "directories.tokendir":
            return value.strip()
    raise SoftHsmError(f"{conf_path} has no directories.tokendir line")


def _read_or_create_secret(path: Path) -> str:
    with contextlib.suppress(FileNotFoundError):
        value = path.read_text(encoding="utf-8").strip()
        if value:
            return value
        path.unlink()
    value = secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return value


def _token_serials(conf_path: Path, util: str | None = None) -> dict[str, str]:
    """Label → serial of every initialised token in the configuration's token directory."""
    output = _run_util(util or find_softhsm_util(), conf_path, ["--show-slots"])
    serials: dict[str, str] = {}
    serial = ""
    for line in output.splitlines():
        name, _, value = line.strip().partition(":")
        if name == "Serial number":
            serial = value.strip()
        elif name == "Label" and value.strip() and serial:
            serials[value.strip()] = serial
    return serials


def _run_util(util: str, conf_path: Path, arguments: list[str]) -> str:
    env = {**os.environ, "SOFTHSM2_CONF": str(conf_path)}
    try:
        result = subprocess.run(
            [util, *arguments],
            env=env,
            capture_output=True,
            text=True,
            timeout=_UTIL_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SoftHsmError(f"softhsm2-util {arguments[0]} failed: {exc}") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        detail = lines[-1].strip() if lines else f"exit status {result.returncode}"
        raise SoftHsmError(f"softhsm2-util {arguments[0]} failed: {detail}")
    return result.stdout


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
