"""What only the PKCS#11 backend promises: keys never leave the token, fail-fast configuration,
recovery when the token goes away, and safety under threads, processes and fork.

Everything runs on real SoftHSM tokens. Tokens are inspected from a child process: a direct
login in this process would share (and, on close, end) the backend's process-wide login.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backends.base import (
    BackendUnavailableError,
    DecryptionFailedError,
    MaterialNotFoundError,
)
from backends.pkcs11 import Pkcs11Backend
from backends.pkcs11_keys import KEY_LABEL_PREFIX
from backends.pkcs11_session import Pkcs11ConfigError
from backends.softhsm import SoftHsmToken, find_softhsm_module, init_softhsm_token
from tests.conftest import require_in_ci
from tests.support.backends import PROJECT_ROOT, material, nonce, run_python
from tests.support.softhsm import (
    MISSING_REASON,
    new_in_process_token,
    shared_softhsm_dir,
    softhsm_available,
)

pytestmark = pytest.mark.hsm

CALL_DEADLINE_SECONDS = 10.0


# --- Fixtures and helpers ------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _needs_softhsm() -> None:
    """Skip every test here without SoftHSM; in CI (``CI`` set) fail instead."""
    if not softhsm_available():
        require_in_ci(MISSING_REASON)


@pytest.fixture()
def softhsm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_softhsm_dir(tmp_path_factory.getbasetemp() / "softhsm")


@pytest.fixture()
def token(softhsm_dir: Path) -> SoftHsmToken:
    return new_in_process_token(softhsm_dir, prefix="spec")


@pytest.fixture()
def backend(token: SoftHsmToken, softhsm_dir: Path) -> Iterator[Pkcs11Backend]:
    opened = open_backend(token, softhsm_dir)
    try:
        yield opened
    finally:
        opened.close()


def open_backend(token: SoftHsmToken, lock_dir: Path) -> Pkcs11Backend:
    return Pkcs11Backend.open(token.module_path, token.label, None, token.pin_file, lock_dir)


INSPECT_PROGRAM = """
import json, sys
import pkcs11
from pkcs11 import Attribute, ObjectClass

FLAGS = ("TOKEN", "PRIVATE", "SENSITIVE", "EXTRACTABLE", "ALWAYS_SENSITIVE",
         "NEVER_EXTRACTABLE", "LOCAL", "MODIFIABLE", "ENCRYPT", "DECRYPT", "WRAP", "UNWRAP",
         "SIGN", "VERIFY", "DERIVE")

def attempt(action):
    try:
        action()
    except pkcs11.PKCS11Error as exc:
        return type(exc).__name__
    return "allowed"

request = json.load(sys.stdin)
token = pkcs11.lib(request["module"]).get_token(token_label=request["label"])
keys = []
with token.open(rw=True, user_pin=request["pin"]) as session:
    for key in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY}):
        keys.append({
            "label": key[Attribute.LABEL],
            "id": key[Attribute.ID].hex(),
            "key_type": int(key[Attribute.KEY_TYPE]),
            "value_len": key[Attribute.VALUE_LEN],
            "flags": {name: bool(key[getattr(Attribute, name)]) for name in FLAGS},
            "read_value": attempt(lambda: key[Attribute.VALUE]),
            "make_extractable": attempt(
                lambda: key.__setitem__(Attribute.EXTRACTABLE, True)),
            "copy_extractable": attempt(lambda: key.copy({Attribute.EXTRACTABLE: True})),
        })
print(json.dumps(keys))
"""


def inspect_token(token: SoftHsmToken) -> list[dict[str, Any]]:
    """Every secret key on the token, read by python-pkcs11 directly in a child process."""
    keys: list[dict[str, Any]] = run_python(
        INSPECT_PROGRAM,
        {"module": token.module_path, "label": token.label, "pin": token.read_pin()},
    )
    return keys


def object_files(token: SoftHsmToken) -> set[str]:
    """SoftHSM keeps one ``<uuid>.object`` file per token object, beside ``token.object``."""
    return {path.name for path in token.token_dir().glob("*.object")} - {"token.object"}


def timed(action: Any) -> Any:
    """Run ``action`` and fail if it takes longer than a caller should ever wait."""
    started = time.monotonic()
    try:
        return action()
    finally:
        assert time.monotonic() - started < CALL_DEADLINE_SECONDS


# --- Keys never leave the token ------------------------------------------------------------


def test_every_master_key_is_sensitive_and_never_extractable(
    backend: Pkcs11Backend, token: SoftHsmToken
) -> None:
    materials = sorted(material() for _ in range(3))
    for material_id in materials:
        backend.create_material(material_id)

    keys = inspect_token(token)

    assert sorted(key["id"] for key in keys) == materials
    for key in keys:
        assert key["label"] == KEY_LABEL_PREFIX + key["id"]
        assert key["key_type"] == 0x1F  # CKK_AES
        assert key["value_len"] == 32
        flags = key["flags"]
        for must in ("TOKEN", "PRIVATE", "SENSITIVE", "ALWAYS_SENSITIVE", "NEVER_EXTRACTABLE"):
            assert flags[must] is True, must
        assert flags["LOCAL"] is True  # generated inside the token, never imported
        for must_not in ("EXTRACTABLE", "MODIFIABLE", "WRAP", "UNWRAP", "SIGN", "VERIFY"):
            assert flags[must_not] is False, must_not
        assert flags["ENCRYPT"] is True and flags["DECRYPT"] is True
        assert key["read_value"] == "AttributeSensitive"
        assert key["make_extractable"] != "allowed"
        assert key["copy_extractable"] != "allowed"


def test_destroyed_key_objects_are_gone(backend: Pkcs11Backend, token: SoftHsmToken) -> None:
    doomed, kept = material(), material()
    backend.create_material(doomed)
    files_with_one = object_files(token)
    backend.create_material(kept)
    files_with_both = object_files(token)
    assert len(files_with_both) == len(files_with_one) + 1

    backend.destroy_material(doomed)

    assert [key["id"] for key in inspect_token(token)] == [kept]
    remaining = object_files(token)
    assert remaining == files_with_both - files_with_one  # exactly the doomed key's file left
    with pytest.raises(MaterialNotFoundError):
        backend.encrypt(doomed, nonce(), b"x", b"")


DESTROY_PROGRAM = """
import json, sys
from pathlib import Path
from backends.pkcs11 import Pkcs11Backend

request = json.load(sys.stdin)
backend = Pkcs11Backend.open(
    request["module"], request["label"], None, Path(request["pin_file"]), Path(request["lock_dir"])
)
backend.destroy_material(request["material_id"])
backend.close()
print(json.dumps("destroyed"))
"""


def test_key_destroyed_by_another_process_is_not_found_here(
    backend: Pkcs11Backend, token: SoftHsmToken, softhsm_dir: Path
) -> None:
    material_id, iv = material(), nonce()
    backend.create_material(material_id)
    ciphertext = backend.encrypt(material_id, iv, b"cached here", b"")  # handle now cached

    run_python(
        DESTROY_PROGRAM,
        {
            "module": token.module_path,
            "label": token.label,
            "pin_file": str(token.pin_file),
            "lock_dir": str(softhsm_dir),
            "material_id": material_id,
        },
    )

    # The cached handle died with the object; the backend notices instead of failing oddly.
    with pytest.raises(MaterialNotFoundError):
        backend.decrypt(material_id, iv, ciphertext, b"")
    with pytest.raises(MaterialNotFoundError):
        backend.encrypt(material_id, iv, b"x", b"")
    assert backend.health().ok is True


def test_keys_are_found_by_id_after_a_restart(
    backend: Pkcs11Backend, token: SoftHsmToken, softhsm_dir: Path
) -> None:
    material_id, iv = material(), nonce()
    backend.create_material(material_id)
    ciphertext = backend.encrypt(material_id, iv, b"persisted", b"aad")
    backend.close()

    reopened = open_backend(token, softhsm_dir)
    try:
        assert reopened.decrypt(material_id, iv, ciphertext, b"aad") == b"persisted"
        assert len(inspect_token(token)) == 1
    finally:
        reopened.close()


# --- Fail-fast configuration ----------------------------------------------------------------


def config_error(token: SoftHsmToken, lock_dir: Path, **overrides: Any) -> str:
    arguments: dict[str, Any] = {
        "module": token.module_path,
        "token_label": token.label,
        "pin": None,
        "pin_file": token.pin_file,
        "lock_dir": lock_dir,
    }
    arguments.update(overrides)
    with pytest.raises(Pkcs11ConfigError) as raised:
        Pkcs11Backend.open(**arguments)
    message = str(raised.value)
    assert "\n" not in message and message.strip() == message and message
    return message


def test_wrong_pin_is_a_config_error(token: SoftHsmToken, softhsm_dir: Path) -> None:
    message = config_error(token, softhsm_dir, pin="not-the-pin", pin_file=None)
    assert "PIN" in message and "incorrect" in message and token.label in message


def test_missing_module_is_a_config_error(token: SoftHsmToken, softhsm_dir: Path) -> None:
    message = config_error(token, softhsm_dir, module="/nonexistent/libnothing.so")
    assert "/nonexistent/libnothing.so" in message and "PKCS11_MODULE" in message


def test_module_that_is_not_pkcs11_is_a_config_error(
    token: SoftHsmToken, softhsm_dir: Path, tmp_path: Path
) -> None:
    not_a_library = tmp_path / "libfake.so"
    not_a_library.write_bytes(b"this is not an ELF file")
    message = config_error(token, softhsm_dir, module=str(not_a_library))
    assert "cannot be loaded" in message and str(not_a_library) in message


def test_unset_module_is_a_config_error(token: SoftHsmToken, softhsm_dir: Path) -> None:
    assert "PKCS11_MODULE" in config_error(token, softhsm_dir, module=None)


def test_unknown_token_label_is_a_config_error(token: SoftHsmToken, softhsm_dir: Path) -> None:
    message = config_error(token, softhsm_dir, token_label="no-such-token")
    assert "'no-such-token'" in message and "PKCS11_TOKEN_LABEL" in message
    assert repr(token.label) in message  # lists the tokens that do exist


def test_missing_pin_is_a_config_error(token: SoftHsmToken, softhsm_dir: Path) -> None:
    message = config_error(token, softhsm_dir, pin=None, pin_file=None)
    assert "PKCS11_PIN" in message and "PKCS11_PIN_FILE" in message


def test_unreadable_pin_file_is_a_config_error(
    token: SoftHsmToken, softhsm_dir: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.pin"
    assert str(missing) in config_error(token, softhsm_dir, pin_file=missing)
    empty = tmp_path / "empty.pin"
    empty.write_text("\n")
    assert "empty" in config_error(token, softhsm_dir, pin_file=empty)


def test_pin_and_pin_file_together_are_a_config_error(
    token: SoftHsmToken, softhsm_dir: Path
) -> None:
    message = config_error(token, softhsm_dir, pin=token.read_pin())
    assert "only one" in message


def test_pin_given_directly_works(token: SoftHsmToken, softhsm_dir: Path) -> None:
    opened = Pkcs11Backend.open(token.module_path, token.label, token.read_pin(), None, softhsm_dir)
    try:
        assert opened.health().ok is True
    finally:
        opened.close()


def test_pin_rejected_at_runtime_is_unavailable_not_a_crash(
    token: SoftHsmToken, softhsm_dir: Path
) -> None:
    # Built directly, as if the PIN had changed on the HSM after the service checked it.
    broken = Pkcs11Backend(token.module_path, token.label, "changed-pin", softhsm_dir)
    try:
        for _ in range(2):
            with pytest.raises(BackendUnavailableError, match="rejected the PIN"):
                timed(lambda: broken.create_material(material()))
        health = broken.health()
        assert health.ok is False and "PIN" in str(health.detail["error"])
    finally:
        broken.close()


# --- Token removed while in use, then restored ---------------------------------------------


@pytest.mark.parametrize("what", ["token directory", "whole token store"])
def test_token_removed_then_restored(
    backend: Pkcs11Backend, token: SoftHsmToken, tmp_path: Path, what: str
) -> None:
    material_id, iv = material(), nonce()
    backend.create_material(material_id)
    ciphertext = backend.encrypt(material_id, iv, b"outlives the outage", b"aad")
    moved = token.token_dir() if what == "token directory" else token.token_dir().parent
    away = tmp_path / "away"

    shutil.move(moved, away)
    try:
        with pytest.raises(BackendUnavailableError):
            timed(lambda: backend.decrypt(material_id, iv, ciphertext, b"aad"))
        with pytest.raises(BackendUnavailableError):
            timed(lambda: backend.encrypt(material_id, nonce(), b"x", b"aad"))
        with pytest.raises(BackendUnavailableError):
            timed(lambda: backend.create_material(material()))
        with pytest.raises(BackendUnavailableError):
            timed(lambda: backend.destroy_material(material_id))
        health = timed(backend.health)
        assert health.ok is False
        assert health.detail["logged_in"] is False
        assert health.detail["token_label"] == token.label
    finally:
        shutil.move(away, moved)

    assert timed(lambda: backend.decrypt(material_id, iv, ciphertext, b"aad")) == (
        b"outlives the outage"
    )
    assert backend.health().ok is True
    fresh = material()
    backend.create_material(fresh)
    assert backend.decrypt(fresh, iv, backend.encrypt(fresh, iv, b"new", b""), b"") == b"new"


# --- Threads, processes, fork --------------------------------------------------------------


def test_many_threads_on_one_instance(backend: Pkcs11Backend) -> None:
    materials = [material() for _ in range(4)]
    for material_id in materials:
        backend.create_material(material_id)
    failures: list[BaseException] = []
    done = [0] * 8

    def work(index: int) -> None:
        try:
            for round_number in range(200):
                material_id = materials[(index + round_number) % len(materials)]
                iv, message = nonce(), f"{index}:{round_number}".encode()
                ciphertext = backend.encrypt(material_id, iv, message, b"aad")
                assert backend.decrypt(material_id, iv, ciphertext, b"aad") == message
                if round_number % 50 == 0:
                    # Mix in the calls python-pkcs11 does not guard itself.
                    assert len(backend.generate_random(16)) == 16
                    backend.create_material(materials[index % len(materials)])
                    with pytest.raises(DecryptionFailedError):
                        backend.decrypt(material_id, iv, ciphertext, b"other aad")
                done[index] += 1
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)

    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert done == [200] * 8


def test_two_instances_in_one_process_share_the_login(
    backend: Pkcs11Backend, token: SoftHsmToken, softhsm_dir: Path
) -> None:
    material_id, iv = material(), nonce()
    backend.create_material(material_id)
    ciphertext = backend.encrypt(material_id, iv, b"shared", b"")

    second = open_backend(token, softhsm_dir)
    assert second.decrypt(material_id, iv, ciphertext, b"") == b"shared"
    second.close()

    # Closing one instance must not log the other out.
    assert backend.decrypt(material_id, iv, ciphertext, b"") == b"shared"
    assert backend.health().detail["logged_in"] is True


WORKER_PROGRAM = """
import json, os, sys, time
from pathlib import Path
from backends.pkcs11 import Pkcs11Backend

request = json.loads(sys.argv[1])
backend = Pkcs11Backend.open(
    request["module"], request["label"], None, Path(request["pin_file"]), Path(request["lock_dir"])
)
time.sleep(max(0.0, request["start_at"] - time.time()))
shared = {}
for material_id in request["shared"]:
    backend.create_material(material_id)
    nonce = os.urandom(12)
    shared[material_id] = [nonce.hex(), backend.encrypt(material_id, nonce, b"shared", b"").hex()]
own = [os.urandom(32).hex() for _ in range(10)]
for round_number in range(100):
    material_id = own[round_number % len(own)]
    backend.create_material(material_id)
    nonce = os.urandom(12)
    message = f"{os.getpid()}:{round_number}".encode()
    ciphertext = backend.encrypt(material_id, nonce, message, b"")
    assert backend.decrypt(material_id, nonce, ciphertext, b"") == message
backend.close()
print(json.dumps({"shared": shared, "own": own}))
"""


def test_two_processes_create_and_encrypt_concurrently(
    token: SoftHsmToken, softhsm_dir: Path
) -> None:
    shared = [material() for _ in range(5)]
    request = {
        "module": token.module_path,
        "label": token.label,
        "pin_file": str(token.pin_file),
        "lock_dir": str(softhsm_dir),
        "shared": shared,
        "start_at": time.time() + 2.0,
    }
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    workers = [
        subprocess.Popen(
            # The request holds no secret (the PIN stays in its file), so argv is fine.
            [sys.executable, "-c", WORKER_PROGRAM, json.dumps(request)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=PROJECT_ROOT,
        )
        for _ in range(2)
    ]
    answers = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=180)
            assert worker.returncode == 0, stderr
            answers.append(json.loads(stdout))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    # Both processes raced to create the shared ids, yet there is one key per id.
    keys = inspect_token(token)
    ids = [key["id"] for key in keys]
    assert len(ids) == len(set(ids)) == len(shared) + 20
    assert all(key["label"] == KEY_LABEL_PREFIX + key["id"] for key in keys)
    checker = open_backend(token, softhsm_dir)
    try:
        for answer in answers:
            for material_id, (iv, ciphertext) in answer["shared"].items():
                plaintext = checker.decrypt(
                    material_id, bytes.fromhex(iv), bytes.fromhex(ciphertext), b""
                )
                assert plaintext == b"shared"
    finally:
        checker.close()


def _in_forked_child(backend: Pkcs11Backend, material_id: str) -> dict[str, str]:
    """Fork; the child uses ``backend`` and reports through a pipe. Returns the report."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which always exits here
        os.close(read_end)
        try:
            iv = nonce()
            backend.create_material(material_id)
            ciphertext = backend.encrypt(material_id, iv, b"from the forked child", b"")
            healthy = str(backend.health().ok)
            answer = {"nonce": iv.hex(), "ciphertext": ciphertext.hex(), "healthy": healthy}
        except BaseException as exc:
            answer = {"error": repr(exc)}
        os.write(write_end, json.dumps(answer).encode())
        os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            assert os.waitstatus_to_exitcode(status) == 0
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)  # our own child, by PID
        os.waitpid(pid, 0)
        pytest.fail("forked child did not finish within 60 s")
    with os.fdopen(read_end, "rb") as reader:
        report: dict[str, str] = json.loads(reader.read())
    return report


@pytest.mark.parametrize("parent_used_it_first", [False, True])
def test_backend_works_in_a_forked_child(
    backend: Pkcs11Backend, parent_used_it_first: bool
) -> None:
    before = material()
    if parent_used_it_first:
        backend.create_material(before)
    material_id = material()

    report = _in_forked_child(backend, material_id)

    assert "error" not in report, report
    assert report["healthy"] == "True"
    # The child's key and ciphertext are real: the parent, still working, decrypts them.
    plaintext = backend.decrypt(
        material_id, bytes.fromhex(report["nonce"]), bytes.fromhex(report["ciphertext"]), b""
    )
    assert plaintext == b"from the forked child"
    if parent_used_it_first:
        iv = nonce()
        assert backend.decrypt(before, iv, backend.encrypt(before, iv, b"p", b""), b"") == b"p"


MASTER_PROGRAM = """
import json, os, sys
from pathlib import Path
from backends.pkcs11 import Pkcs11Backend

def module_loaded():
    with open("/proc/self/maps") as maps:
        return any(request["module_file"] in line for line in maps)

request = json.load(sys.stdin)
backend = Pkcs11Backend.open(
    request["module"], request["label"], None, Path(request["pin_file"]), Path(request["lock_dir"])
)
after_open = module_loaded()
children = []
for index in range(2):
    pid = os.fork()
    if pid == 0:
        material_id = os.urandom(32).hex()
        nonce = os.urandom(12)
        backend.create_material(material_id)
        ciphertext = backend.encrypt(material_id, nonce, b"w", b"")
        ok = backend.decrypt(material_id, nonce, ciphertext, b"") == b"w"
        os._exit(0 if ok and module_loaded() else 3)
    children.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
print(json.dumps({"after_open": after_open, "after_workers": module_loaded(), "codes": codes}))
"""


def test_open_never_loads_the_module_in_the_master(token: SoftHsmToken, softhsm_dir: Path) -> None:
    answer = run_python(
        MASTER_PROGRAM,
        {
            "module": token.module_path,
            "module_file": os.path.basename(os.path.realpath(find_softhsm_module())),
            "label": token.label,
            "pin_file": str(token.pin_file),
            "lock_dir": str(softhsm_dir),
        },
    )

    # Like a gunicorn master: open() checks the token, forks workers that use it, and never
    # has the module in its own address space.
    assert answer == {"after_open": False, "after_workers": False, "codes": [0, 0]}


def test_health_reports_the_token(backend: Pkcs11Backend, token: SoftHsmToken) -> None:
    health = backend.health()
    assert health.ok is True
    assert health.name == "pkcs11"
    assert health.detail["token_label"] == token.label
    assert health.detail["logged_in"] is True
    assert token.token_dir().name.replace("-", "").endswith(str(health.detail["token_serial"]))


# --- SoftHSM token setup (mock-kms softhsm-init) -------------------------------------------


def test_softhsm_init_is_private_and_idempotent(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    first = init_softhsm_token(data_dir)
    again = init_softhsm_token(data_dir)

    assert again == first
    assert again.read_pin() == first.read_pin() and len(first.read_pin()) >= 16
    assert first.pin_file.stat().st_mode & 0o777 == 0o600
    assert first.conf_path == (data_dir / "softhsm" / "softhsm2.conf").resolve()
    conf = first.conf_path.read_text()
    assert f"directories.tokendir = {first.conf_path.parent / 'tokens'}" in conf
    assert len(list((first.conf_path.parent / "tokens").iterdir())) == 1  # not re-created
    assert first.env() == {
        "SOFTHSM2_CONF": str(first.conf_path),
        "PKCS11_MODULE": find_softhsm_module(),
        "PKCS11_TOKEN_LABEL": "mock-kms",
        "PKCS11_PIN_FILE": str(first.pin_file),
        "MOCK_KMS_BACKEND": "pkcs11",
    }
    second = init_softhsm_token(data_dir, "second")
    assert second.token_dir() != first.token_dir()
    assert second.read_pin() != first.read_pin()


def test_softhsm_init_token_opens_in_a_fresh_process(tmp_path: Path) -> None:
    token = init_softhsm_token(tmp_path / "data")
    probe = (
        "import json, os; from pathlib import Path; from backends.pkcs11_check import check_token;"
        " print(json.dumps(check_token(os.environ['PKCS11_MODULE'],"
        " os.environ['PKCS11_TOKEN_LABEL'], Path(os.environ['PKCS11_PIN_FILE']).read_text()"
        ".strip(), Path(os.environ['SOFTHSM2_CONF']).parent)))"
    )
    serial = run_python(probe, {}, env=token.env())
    assert token.token_dir().name.replace("-", "").endswith(serial)


def test_softhsm_init_rejects_bad_labels(tmp_path: Path) -> None:
    for label in ("", "has space", "x" * 33, "../escape"):
        with pytest.raises(ValueError, match="label"):
            init_softhsm_token(tmp_path / "data", label)
