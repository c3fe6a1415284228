"""The PKCS#11 configuration check: load the module, find the token by label, log in and
probe what the token serves, then log out again.

Loading a module leaves it initialised in the calling process, so
:meth:`backends.pkcs11.Pkcs11Backend.open` runs the check in a fresh interpreter
(:func:`check_in_child`), and the gunicorn master never loads the module.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pkcs11
from pkcs11 import Mechanism

from backends.base import BackendUnavailableError
from backends.pkcs11_capabilities import TokenFeatures, probe_token
from backends.pkcs11_session import (
    LOCK_TIMEOUT_SECONDS,
    PIN_FAILURES,
    Pkcs11ConfigError,
    describe,
    file_lock,
    lock_path_for,
)

#: Longest the configuration check in a child process may take.
CHECK_TIMEOUT_SECONDS = 60.0

_CHECK_PROGRAM = "from backends.pkcs11_check import _check_main; _check_main()"


def check_in_child(module: str, token_label: str, pin: str, lock_dir: Path) -> TokenFeatures:
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
        with file_lock(lock_path_for(lock_dir, token_label), LOCK_TIMEOUT_SECONDS):
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
            f"PKCS#11 module {module} failed to initialise ({describe(exc)}){hint}", "module"
        ) from None
    try:
        tokens = list(lib.get_tokens())
    except pkcs11.PKCS11Error as exc:
        raise Pkcs11ConfigError(
            f"PKCS#11 module {module} cannot list its tokens ({describe(exc)})", "module"
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
    except PIN_FAILURES as exc:
        raise Pkcs11ConfigError(
            f"PKCS#11 token {token_label!r} refused the PIN ({describe(exc)}):"
            " fix PKCS11_PIN or PKCS11_PIN_FILE",
            "pin",
        ) from None
    except pkcs11.PKCS11Error as exc:
        raise Pkcs11ConfigError(
            f"cannot log in to PKCS#11 token {token_label!r} ({describe(exc)})"
        ) from None
    try:
        if probe is not None:
            try:
                probe(probe_token(session))
            except pkcs11.PKCS11Error as exc:
                raise Pkcs11ConfigError(
                    f"PKCS#11 token {token_label!r} failed while its mechanisms were probed"
                    f" ({describe(exc)})"
                ) from None
    finally:
        with contextlib.suppress(pkcs11.PKCS11Error):
            session.close()
    return str(token.serial.decode("ascii", "replace"))
