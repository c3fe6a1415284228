"""One suite, every backend: the contract of ``backends.base.KeyBackend``.

Each test runs against the software keystore and against a real SoftHSM token. Without SoftHSM
the PKCS#11 half is skipped locally and fails in CI (``CI`` set).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from backends.base import (
    TAG_SIZE,
    DecryptionFailedError,
    KeyBackend,
    MaterialNotFoundError,
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

# A child process opens the same key store from scratch: the "restart" a service goes through.
CHILD_PROGRAM = """
import json, sys
from pathlib import Path
from backends.base import BackendError

request = json.load(sys.stdin)
config = request["config"]
if config["kind"] == "software":
    from backends.software import SoftwareBackend
    backend = SoftwareBackend(Path(config["data_dir"]), bytes.fromhex(config["root_key"]))
else:
    from backends.pkcs11 import Pkcs11Backend
    backend = Pkcs11Backend.open(
        config["module"], config["label"], None, Path(config["pin_file"]), Path(config["lock_dir"])
    )
material_id = request["material_id"]
aad = bytes.fromhex(request["aad"])
answer = {}
try:
    answer["plaintext"] = backend.decrypt(
        material_id, bytes.fromhex(request["nonce"]), bytes.fromhex(request["ciphertext"]), aad
    ).hex()
    answer["ciphertext"] = backend.encrypt(
        material_id, bytes.fromhex(request["fresh_nonce"]), b"from the child", aad
    ).hex()
except BackendError as exc:
    answer["error"] = type(exc).__name__
backend.close()
print(json.dumps(answer))
"""


@dataclass
class Subject:
    """A backend under test, and how to open its key store again."""

    kind: str
    make: Callable[[], KeyBackend]
    child_config: dict[str, str]
    opened: list[KeyBackend] = field(default_factory=list)

    def open(self) -> KeyBackend:
        backend = self.make()
        self.opened.append(backend)
        return backend

    def run_child(
        self, material_id: str, nonce: bytes, ciphertext: bytes, aad: bytes, fresh_nonce: bytes
    ) -> dict[str, str]:
        """Decrypt ``ciphertext`` and encrypt a new message in a separate process."""
        request = {
            "config": self.child_config,
            "material_id": material_id,
            "nonce": nonce.hex(),
            "ciphertext": ciphertext.hex(),
            "aad": aad.hex(),
            "fresh_nonce": fresh_nonce.hex(),
        }
        answer: dict[str, str] = run_python(CHILD_PROGRAM, request)
        return answer


def _software_subject(tmp_path: Path) -> Subject:
    data_dir = tmp_path / "software"
    data_dir.mkdir()
    root_key = os.urandom(32)
    return Subject(
        "software",
        lambda: SoftwareBackend(data_dir, root_key),
        {"kind": "software", "data_dir": str(data_dir), "root_key": root_key.hex()},
    )


def _pkcs11_subject(tmp_path_factory: pytest.TempPathFactory) -> Subject:
    if not softhsm_available():
        require_in_ci(MISSING_REASON)
    from backends.pkcs11 import Pkcs11Backend

    base = tmp_path_factory.getbasetemp() / "softhsm"
    token = new_in_process_token(base, prefix="conf")
    lock_dir = shared_softhsm_dir(base)
    return Subject(
        "pkcs11",
        lambda: Pkcs11Backend.open(token.module_path, token.label, None, token.pin_file, lock_dir),
        {
            "kind": "pkcs11",
            "module": token.module_path,
            "label": token.label,
            "pin_file": str(token.pin_file),
            "lock_dir": str(lock_dir),
        },
    )


@pytest.fixture(params=["software", "pkcs11"])
def subject(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Subject]:
    if request.param == "software":
        made = _software_subject(tmp_path)
    else:
        made = _pkcs11_subject(tmp_path_factory)
    try:
        yield made
    finally:
        for backend in made.opened:
            backend.close()


@pytest.fixture()
def backend(subject: Subject) -> KeyBackend:
    return subject.open()


def created(backend: KeyBackend) -> str:
    material_id = material()
    backend.create_material(material_id)
    return material_id


# --- Encrypt and decrypt -------------------------------------------------------------------


def test_backend_implements_the_protocol(subject: Subject, backend: KeyBackend) -> None:
    assert isinstance(backend, KeyBackend)
    assert backend.name == subject.kind


@pytest.mark.parametrize("size", [0, 1, 32, 4096])
def test_encrypt_then_decrypt_with_aad_round_trips(backend: KeyBackend, size: int) -> None:
    material_id = created(backend)
    plaintext, aad, iv = os.urandom(size), b"context:\x00\xff", nonce()

    ciphertext = backend.encrypt(material_id, iv, plaintext, aad)

    assert len(ciphertext) == size + TAG_SIZE
    if size >= 16:
        assert ciphertext[:size] != plaintext
    assert backend.decrypt(material_id, iv, ciphertext, aad) == plaintext


def test_empty_aad_round_trips(backend: KeyBackend) -> None:
    material_id, iv = created(backend), nonce()
    ciphertext = backend.encrypt(material_id, iv, b"secret", b"")
    assert backend.decrypt(material_id, iv, ciphertext, b"") == b"secret"


def test_same_input_under_a_new_nonce_differs(backend: KeyBackend) -> None:
    material_id = created(backend)
    first = backend.encrypt(material_id, nonce(), b"same", b"aad")
    second = backend.encrypt(material_id, nonce(), b"same", b"aad")
    assert first != second


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


TAMPERINGS: dict[str, Callable[[bytes, bytes, bytes], tuple[bytes, bytes, bytes]]] = {
    "wrong aad": lambda iv, ct, aad: (iv, ct, aad + b"x"),
    "missing aad": lambda iv, ct, aad: (iv, ct, b""),
    "tampered ciphertext": lambda iv, ct, aad: (iv, _flip(ct, 0), aad),
    "tampered tag": lambda iv, ct, aad: (iv, _flip(ct, len(ct) - 1), aad),
    "wrong nonce": lambda iv, ct, aad: (_flip(iv, 5), ct, aad),
    "truncated": lambda iv, ct, aad: (iv, ct[: TAG_SIZE - 1], aad),
    "tag only": lambda iv, ct, aad: (iv, ct[-TAG_SIZE:], aad),
}


@pytest.mark.parametrize("tampering", sorted(TAMPERINGS))
def test_tampering_fails_authentication(backend: KeyBackend, tampering: str) -> None:
    material_id, iv, aad = created(backend), nonce(), b"encryption context"
    ciphertext = backend.encrypt(material_id, iv, b"attack at dawn", aad)

    bad_iv, bad_ciphertext, bad_aad = TAMPERINGS[tampering](iv, ciphertext, aad)

    with pytest.raises(DecryptionFailedError):
        backend.decrypt(material_id, bad_iv, bad_ciphertext, bad_aad)
    # A failed check leaves the backend usable.
    assert backend.decrypt(material_id, iv, ciphertext, aad) == b"attack at dawn"


def test_materials_are_independent(backend: KeyBackend) -> None:
    first, second = created(backend), created(backend)
    iv, aad = nonce(), b"aad"
    under_first = backend.encrypt(first, iv, b"message", aad)
    under_second = backend.encrypt(second, iv, b"message", aad)

    assert under_first != under_second
    with pytest.raises(DecryptionFailedError):
        backend.decrypt(second, iv, under_first, aad)
    with pytest.raises(DecryptionFailedError):
        backend.decrypt(first, iv, under_second, aad)


def test_old_materials_still_decrypt_after_new_ones(backend: KeyBackend) -> None:
    old, iv = created(backend), nonce()
    old_ciphertext = backend.encrypt(old, iv, b"written long ago", b"v1")

    newer = [created(backend) for _ in range(5)]
    for material_id in newer:
        backend.encrypt(material_id, nonce(), b"newer", b"v2")

    assert backend.decrypt(old, iv, old_ciphertext, b"v1") == b"written long ago"


def test_create_is_idempotent(backend: KeyBackend) -> None:
    material_id, iv = created(backend), nonce()
    ciphertext = backend.encrypt(material_id, iv, b"kept", b"aad")

    backend.create_material(material_id)

    assert backend.decrypt(material_id, iv, ciphertext, b"aad") == b"kept"
    assert backend.encrypt(material_id, iv, b"kept", b"aad") == ciphertext


def test_create_is_idempotent_across_instances(subject: Subject, backend: KeyBackend) -> None:
    material_id, iv = created(backend), nonce()
    ciphertext = backend.encrypt(material_id, iv, b"kept", b"aad")

    other = subject.open()
    other.create_material(material_id)

    assert other.decrypt(material_id, iv, ciphertext, b"aad") == b"kept"


def test_unknown_material_is_not_found(backend: KeyBackend) -> None:
    unknown = material()
    with pytest.raises(MaterialNotFoundError):
        backend.encrypt(unknown, nonce(), b"x", b"")
    with pytest.raises(MaterialNotFoundError):
        backend.decrypt(unknown, nonce(), b"\x00" * 32, b"")


# --- Destroy -------------------------------------------------------------------------------


def test_destroy_makes_material_unknown_everywhere(subject: Subject, backend: KeyBackend) -> None:
    doomed, kept, iv = created(backend), created(backend), nonce()
    doomed_ciphertext = backend.encrypt(doomed, iv, b"doomed", b"aad")
    kept_ciphertext = backend.encrypt(kept, iv, b"kept", b"aad")

    backend.destroy_material(doomed)

    with pytest.raises(MaterialNotFoundError):
        backend.encrypt(doomed, nonce(), b"x", b"aad")
    with pytest.raises(MaterialNotFoundError):
        backend.decrypt(doomed, iv, doomed_ciphertext, b"aad")
    with pytest.raises(MaterialNotFoundError):
        subject.open().decrypt(doomed, iv, doomed_ciphertext, b"aad")
    # A fresh process has no cache to hide behind: the object itself is gone.
    answer = subject.run_child(doomed, iv, doomed_ciphertext, b"aad", nonce())
    assert answer == {"error": "MaterialNotFoundError"}
    assert backend.decrypt(kept, iv, kept_ciphertext, b"aad") == b"kept"


def test_destroy_is_idempotent_and_unknown_ids_are_fine(backend: KeyBackend) -> None:
    material_id = created(backend)
    backend.destroy_material(material_id)
    backend.destroy_material(material_id)
    backend.destroy_material(material())
    with pytest.raises(MaterialNotFoundError):
        backend.encrypt(material_id, nonce(), b"x", b"")


def test_destroyed_id_can_be_created_afresh(backend: KeyBackend) -> None:
    material_id, iv = created(backend), nonce()
    before = backend.encrypt(material_id, iv, b"same input", b"aad")
    backend.destroy_material(material_id)

    backend.create_material(material_id)

    # New key material: the old ciphertext no longer opens.
    assert backend.encrypt(material_id, iv, b"same input", b"aad") != before
    with pytest.raises(DecryptionFailedError):
        backend.decrypt(material_id, iv, before, b"aad")


# --- Random --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 12, 32, 1024])
def test_generate_random_returns_the_size_asked(backend: KeyBackend, size: int) -> None:
    assert len(backend.generate_random(size)) == size


def test_generate_random_values_are_distinct(backend: KeyBackend) -> None:
    values = {backend.generate_random(32) for _ in range(200)}
    assert len(values) == 200
    # 200 x 32 bytes cover every byte value: a stuck or narrow generator would not.
    assert len(set(b"".join(values))) == 256


# --- Restart -------------------------------------------------------------------------------


def test_new_instance_decrypts_after_close(subject: Subject, backend: KeyBackend) -> None:
    material_id, iv = created(backend), nonce()
    ciphertext = backend.encrypt(material_id, iv, b"survives restart", b"aad")
    backend.close()

    reopened = subject.open()

    assert reopened.decrypt(material_id, iv, ciphertext, b"aad") == b"survives restart"


def test_new_process_decrypts_and_its_ciphertext_decrypts_here(
    subject: Subject, backend: KeyBackend
) -> None:
    material_id, iv, fresh_iv = created(backend), nonce(), nonce()
    ciphertext = backend.encrypt(material_id, iv, b"across processes", b"aad")

    answer = subject.run_child(material_id, iv, ciphertext, b"aad", fresh_iv)

    assert bytes.fromhex(answer["plaintext"]) == b"across processes"
    child_ciphertext = bytes.fromhex(answer["ciphertext"])
    assert backend.decrypt(material_id, fresh_iv, child_ciphertext, b"aad") == b"from the child"


# --- Health and threads --------------------------------------------------------------------


def test_health_is_ok(subject: Subject, backend: KeyBackend) -> None:
    health = backend.health()
    assert health.ok is True
    assert health.name == subject.kind


def test_several_threads_share_one_instance(backend: KeyBackend) -> None:
    materials = [created(backend) for _ in range(3)]
    failures: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for round_number in range(50):
                material_id = materials[(index + round_number) % len(materials)]
                iv, message = nonce(), f"{index}:{round_number}".encode()
                ciphertext = backend.encrypt(material_id, iv, message, b"aad")
                assert backend.decrypt(material_id, iv, ciphertext, b"aad") == message
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
