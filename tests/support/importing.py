"""Wrapping key material for ImportKeyMaterial the way AWS's documentation does it: with the
``openssl`` command line, never with mock-kms's own code
(https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys-encrypt-key-material.html).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from tests.conftest import require_in_ci

#: openssl digest names of the wrapping algorithms.
DIGESTS = {
    "RSAES_OAEP_SHA_1": "sha1",
    "RSAES_OAEP_SHA_256": "sha256",
    "RSA_AES_KEY_WRAP_SHA_1": "sha1",
    "RSA_AES_KEY_WRAP_SHA_256": "sha256",
}


def openssl() -> str:
    """The openssl binary (skips locally without it, fails in CI)."""
    found = shutil.which("openssl")
    if found is None:
        require_in_ci("the openssl command line is not installed")
        raise AssertionError("unreachable")
    return found


def _run(*args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(
        [openssl(), *args], input=stdin, capture_output=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def wrap_with_openssl(
    material: bytes, public_key_der: bytes, algorithm: str, work_dir: Path
) -> bytes:
    """``material`` wrapped under the DER public key for ``algorithm``: one OAEP encryption
    (``RSAES_OAEP_*``), or an AES key wrap with padding (RFC 5649) under a fresh AES-256 key
    followed by the OAEP encryption of that key (``RSA_AES_KEY_WRAP_*``, the AES key first)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    pem = work_dir / "wrapping.pem"
    pem.write_bytes(
        serialization.load_der_public_key(public_key_der).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    digest = DIGESTS[algorithm]
    oaep = [
        "pkeyutl", "-encrypt", "-pubin", "-inkey", str(pem),
        "-pkeyopt", "rsa_padding_mode:oaep",
        "-pkeyopt", f"rsa_oaep_md:{digest}",
        "-pkeyopt", f"rsa_mgf1_md:{digest}",
    ]  # fmt: skip
    material_file = work_dir / "material.bin"
    material_file.write_bytes(material)
    if algorithm.startswith("RSAES_OAEP_"):
        return _run(*oaep, "-in", str(material_file))
    aes_key = _run("rand", "32")
    wrapped_material = _run(
        "enc", "-id-aes256-wrap-pad", "-iv", "A65959A6", "-K", aes_key.hex(),
        "-in", str(material_file),
    )  # fmt: skip
    aes_file = work_dir / "aes.bin"
    aes_file.write_bytes(aes_key)
    return _run(*oaep, "-in", str(aes_file)) + wrapped_material


def import_material(
    kms: Any,
    key_id: str,
    material: bytes,
    work_dir: Path,
    *,
    algorithm: str = "RSAES_OAEP_SHA_1",
    wrapping_key_spec: str = "RSA_2048",
    **import_args: Any,
) -> dict[str, Any]:
    """GetParametersForImport, wrap with openssl, ImportKeyMaterial (does not expire unless
    ``import_args`` say otherwise); returns the ImportKeyMaterial response. The default
    algorithm is the one every backend here declares (SoftHSM's OAEP is SHA-1 only)."""
    parameters = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=wrapping_key_spec
    )
    wrapped = wrap_with_openssl(material, parameters["PublicKey"], algorithm, work_dir)
    import_args.setdefault("ExpirationModel", "KEY_MATERIAL_DOES_NOT_EXPIRE")
    return dict(
        kms.import_key_material(
            KeyId=key_id,
            ImportToken=parameters["ImportToken"],
            EncryptedKeyMaterial=wrapped,
            **import_args,
        )
    )
