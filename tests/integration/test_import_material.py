"""Imported key material (Origin EXTERNAL) against a real server, on every backend that
declares the wrapping algorithm: material wrapped by the ``openssl`` command line, imported
with boto3 and the AWS CLI, then used; every error path with AWS's error name and message.

The server has the developer endpoints on, so the tests move its clock (token and material
expiry); each test takes its parameters after any move it makes.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from clients.kms.errors import KmsClientError
from tests.conftest import KEY_BACKENDS, backend_env
from tests.integration.test_aws_cli import AwsCli
from tests.support.admin import DEV, admin
from tests.support.importing import import_material, wrap_with_openssl
from tests.support.kms_ops import (
    MATERIAL_ID_PATTERN,
    NO_MESSAGE,
    KmsClient,
    account_client,
    create_key,
    expect_error,
    key_arn,
    new_account_id,
)
from tests.support.server import RunningServer, running_server

DAY = 86400.0
INVALID_TOKEN = (
    "The request was rejected because the provided import token is invalid or is associated "
    "with a different KMS key."
)
EXPIRED_TOKEN = "The request was rejected because the specified import token is expired."
INCORRECT_MATERIAL = (
    "The request was rejected because the key material in the request is, expired, invalid, "
    "or does not meet expectations."
)


@pytest.fixture(scope="module", params=KEY_BACKENDS)
def import_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server per backend with a movable clock."""
    base = tmp_path_factory.mktemp(f"import-{request.param}")
    env = {**DEV, **backend_env(request.param, base / "hsm")}
    with running_server(base / "data", workers=2, env=env) as server:
        yield server


@pytest.fixture()
def kms(import_server: RunningServer) -> KmsClient:
    return account_client(import_server.endpoint)


def _refusal(error: Exception, words: str) -> str | None:
    """The message of an UnsupportedOperationException (from boto3 or the thin client) that
    contains ``words``; None for anything else."""
    response = getattr(error, "response", None)
    if not isinstance(error, ClientError | KmsClientError) or not isinstance(response, dict):
        return None
    message = str(response["Error"].get("Message", ""))
    if response["Error"]["Code"] == "UnsupportedOperationException" and words in message:
        return message
    return None


def external_key(kms: KmsClient, **kwargs: Any) -> str:
    """An EXTERNAL key; skips when the server's backend does not serve its key spec (a declared
    capability: CreateKey's own tests check the refusal)."""
    try:
        metadata = create_key(kms, Origin="EXTERNAL", **kwargs)
    except (ClientError, KmsClientError) as error:
        message = _refusal(error, "is not supported by the")
        if message is not None:
            pytest.skip(f"this backend does not serve {kwargs.get('KeySpec')}: {message}")
        raise
    return str(metadata["KeyId"])


def require_wrapping(kms: KmsClient, key_id: str, algorithm: str, spec: str = "RSA_2048") -> None:
    """Skip when the server's backend does not declare ``algorithm`` (a capability, not a
    missing install: GetParametersForImport refuses it, as the skip message shows)."""
    try:
        kms.get_parameters_for_import(
            KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=spec
        )
    except (ClientError, KmsClientError) as error:
        message = _refusal(error, "does not support the wrapping")
        if message is not None:
            pytest.skip(f"this backend does not declare {algorithm} / {spec}: {message}")
        raise


def advance(server: RunningServer, seconds: float) -> None:
    status, body = admin(server, "POST", "/clock/advance", {"seconds": seconds})
    assert status == 200, body


# --- the happy paths ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("algorithm", "spec"),
    [
        ("RSAES_OAEP_SHA_256", "RSA_2048"),
        ("RSAES_OAEP_SHA_1", "RSA_3072"),
        ("RSA_AES_KEY_WRAP_SHA_256", "RSA_4096"),
        ("RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"),
    ],
)
def test_symmetric_material_wrapped_by_openssl_imports_and_encrypts(
    kms: KmsClient, tmp_path: Path, algorithm: str, spec: str
) -> None:
    key_id = external_key(kms)
    before = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert before["KeyState"] == "PendingImport" and before["Enabled"] is False
    assert before["Origin"] == "EXTERNAL"
    assert "CurrentKeyMaterialId" not in before and "ExpirationModel" not in before
    require_wrapping(kms, key_id, algorithm, spec)

    parameters = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=spec
    )
    assert parameters["KeyId"] == key_arn(kms, key_id)
    public_key = serialization.load_der_public_key(parameters["PublicKey"])
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert public_key.key_size == int(spec.split("_")[1])
    valid_for = parameters["ParametersValidTo"].timestamp() - time.time()
    assert 24 * 3600 - 120 < valid_for <= 24 * 3600 + 5
    material = os.urandom(32)
    wrapped = wrap_with_openssl(material, parameters["PublicKey"], algorithm, tmp_path)
    imported = kms.import_key_material(
        KeyId=key_id,
        ImportToken=parameters["ImportToken"],
        EncryptedKeyMaterial=wrapped,
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    assert imported["KeyId"] == key_arn(kms, key_id)
    assert imported["KeyMaterialId"]
    after = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert after["KeyState"] == "Enabled" and after["Enabled"] is True
    assert after["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "ValidTo" not in after
    assert after["CurrentKeyMaterialId"] == imported["KeyMaterialId"]

    blob = kms.encrypt(KeyId=key_id, Plaintext=b"bring your own key")["CiphertextBlob"]
    decrypted = kms.decrypt(CiphertextBlob=blob)
    assert decrypted["Plaintext"] == b"bring your own key"
    assert decrypted["KeyMaterialId"] == imported["KeyMaterialId"]


def test_import_token_is_single_key_and_each_call_gives_a_new_one(kms: KmsClient) -> None:
    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    first = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048"
    )
    second = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048"
    )
    assert first["ImportToken"] != second["ImportToken"]
    assert first["PublicKey"] != second["PublicKey"]


def test_delete_then_reimport_same_material_keeps_old_ciphertexts(
    kms: KmsClient, tmp_path: Path
) -> None:
    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    material = os.urandom(32)
    first = import_material(kms, key_id, material, tmp_path / "1")
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"kept")["CiphertextBlob"]

    deleted = kms.delete_imported_key_material(KeyId=key_id)
    assert deleted["KeyId"] == key_arn(kms, key_id)
    assert deleted["KeyMaterialId"] == first["KeyMaterialId"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    with expect_error("KMSInvalidStateException", f"{key_arn(kms, key_id)} is pending import."):
        kms.decrypt(CiphertextBlob=blob)
    with expect_error("KMSInvalidStateException", f"{key_arn(kms, key_id)} is pending import."):
        kms.encrypt(KeyId=key_id, Plaintext=b"x")

    again = import_material(
        kms, key_id, material, tmp_path / "2", algorithm="RSA_AES_KEY_WRAP_SHA_1"
    )
    assert again["KeyMaterialId"] == first["KeyMaterialId"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"


def test_reimport_while_enabled_changes_only_the_expiration(kms: KmsClient, tmp_path: Path) -> None:
    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    material = os.urandom(32)
    import_material(kms, key_id, material, tmp_path / "1")
    valid_to = int(time.time() + 30 * DAY)
    import_material(
        kms, key_id, material, tmp_path / "2",
        ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to,
    )  # fmt: skip
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert abs(metadata["ValidTo"].timestamp() - valid_to) < 1
    assert metadata["KeyState"] == "Enabled"


def test_expired_material_makes_the_key_pending_import_until_reimported(
    kms: KmsClient, import_server: RunningServer, tmp_path: Path
) -> None:
    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    material = os.urandom(32)
    clock = admin(import_server, "GET", "/clock")[1]["now_epoch_seconds"]
    import_material(
        kms, key_id, material, tmp_path / "1", algorithm="RSAES_OAEP_SHA_1",
        ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=int(clock + 2 * DAY),
    )  # fmt: skip
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"until then")["CiphertextBlob"]
    advance(import_server, 3 * DAY)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "PendingImport" and metadata["Enabled"] is False
    with expect_error("KMSInvalidStateException", f"{key_arn(kms, key_id)} is pending import."):
        kms.decrypt(CiphertextBlob=blob)
    import_material(kms, key_id, material, tmp_path / "2")
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"until then"


def test_clock_advance_expires_material_without_any_request_to_the_key(
    kms: KmsClient, import_server: RunningServer, tmp_path: Path
) -> None:
    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    clock = admin(import_server, "GET", "/clock")[1]["now_epoch_seconds"]
    import_material(
        kms, key_id, os.urandom(32), tmp_path,
        ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=int(clock + DAY),
    )  # fmt: skip
    status, clock = admin(import_server, "POST", "/clock/advance", {"seconds": 2 * DAY})
    assert status == 200 and clock["expired_keys"] >= 1  # the advance sweeps every key
    keys = kms.list_keys()["Keys"]
    assert [k["KeyId"] for k in keys] == [key_id]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"


def test_new_key_material_waits_for_rotate_key_on_demand(kms: KmsClient, tmp_path: Path) -> None:
    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    first = import_material(kms, key_id, os.urandom(32), tmp_path / "1")
    old_blob = kms.encrypt(KeyId=key_id, Plaintext=b"old")["CiphertextBlob"]
    arn = key_arn(kms, key_id)
    with expect_error(
        "KMSInvalidStateException",
        f"No available key material pending rotation for the key: {arn}.",
    ):
        kms.rotate_key_on_demand(KeyId=key_id)

    second = import_material(
        kms, key_id, os.urandom(32), tmp_path / "2",
        ImportType="NEW_KEY_MATERIAL", KeyMaterialDescription="second generation",
    )  # fmt: skip
    assert second["KeyMaterialId"] != first["KeyMaterialId"]
    current = kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert current == first["KeyMaterialId"]
    listed = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    states = {r["KeyMaterialId"]: r for r in listed["Rotations"]}
    assert states[first["KeyMaterialId"]]["KeyMaterialState"] == "CURRENT"
    assert states[first["KeyMaterialId"]]["ImportState"] == "IMPORTED"
    pending = states[second["KeyMaterialId"]]
    assert pending["KeyMaterialState"] == "PENDING_ROTATION"
    assert pending["KeyMaterialDescription"] == "second generation"
    assert pending["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"

    assert kms.rotate_key_on_demand(KeyId=key_id)["KeyId"] == arn
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["CurrentKeyMaterialId"] == second["KeyMaterialId"]
    rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [(r["KeyMaterialId"], r["RotationType"], r["KeyMaterialState"]) for r in rotations] == [
        (second["KeyMaterialId"], "ON_DEMAND", "CURRENT")
    ]
    new_blob = kms.encrypt(KeyId=key_id, Plaintext=b"new")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=new_blob)["KeyMaterialId"] == second["KeyMaterialId"]
    assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"old"


def test_aws_cli_imports_material(
    import_server: RunningServer, kms: KmsClient, tmp_path: Path
) -> None:
    cli = AwsCli(import_server.endpoint, tmp_path)

    def run(*args: str) -> dict[str, Any]:
        result = cli.run(*args)
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout)) if result.stdout.strip() else {}

    key_id = run("create-key", "--origin", "EXTERNAL")["KeyMetadata"]["KeyId"]
    check = account_client(import_server.endpoint, cli.account_id)
    require_wrapping(check, key_id, "RSAES_OAEP_SHA_1")
    parameters = run(
        "get-parameters-for-import", "--key-id", key_id,
        "--wrapping-algorithm", "RSAES_OAEP_SHA_1", "--wrapping-key-spec", "RSA_2048",
    )  # fmt: skip
    token = tmp_path / "token.bin"
    token.write_bytes(base64.b64decode(parameters["ImportToken"]))
    wrapped = tmp_path / "wrapped.bin"
    material = os.urandom(32)
    wrapped.write_bytes(
        wrap_with_openssl(
            material, base64.b64decode(parameters["PublicKey"]), "RSAES_OAEP_SHA_1", tmp_path
        )
    )
    result = run(
        "import-key-material", "--key-id", key_id,
        "--import-token", f"fileb://{token}", "--encrypted-key-material", f"fileb://{wrapped}",
        "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE",
    )  # fmt: skip
    assert result["KeyMaterialId"]
    assert run("describe-key", "--key-id", key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    deleted = run("delete-imported-key-material", "--key-id", key_id)
    assert deleted["KeyMaterialId"] == result["KeyMaterialId"]


# --- error paths ----------------------------------------------------------------------------
def test_garbage_token_and_token_of_another_key_are_invalid(kms: KmsClient, tmp_path: Path) -> None:
    key_id, other_id = external_key(kms), external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    parameters = kms.get_parameters_for_import(
        KeyId=other_id, WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048"
    )
    wrapped = wrap_with_openssl(
        os.urandom(32), parameters["PublicKey"], "RSAES_OAEP_SHA_1", tmp_path
    )
    with expect_error("InvalidImportTokenException", INVALID_TOKEN):
        kms.import_key_material(
            KeyId=key_id, ImportToken=parameters["ImportToken"], EncryptedKeyMaterial=wrapped,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )  # fmt: skip
    tampered = bytearray(parameters["ImportToken"])
    tampered[-1] ^= 1
    for token in (bytes(tampered), os.urandom(200)):
        with expect_error("InvalidImportTokenException", INVALID_TOKEN):
            kms.import_key_material(
                KeyId=other_id, ImportToken=token, EncryptedKeyMaterial=wrapped,
                ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
            )  # fmt: skip
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"


def test_expired_token_is_refused(
    kms: KmsClient, import_server: RunningServer, tmp_path: Path
) -> None:
    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    parameters = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048"
    )
    wrapped = wrap_with_openssl(
        os.urandom(32), parameters["PublicKey"], "RSAES_OAEP_SHA_1", tmp_path
    )
    advance(import_server, DAY + 60)
    with expect_error("ExpiredImportTokenException", EXPIRED_TOKEN):
        kms.import_key_material(
            KeyId=key_id, ImportToken=parameters["ImportToken"], EncryptedKeyMaterial=wrapped,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )  # fmt: skip


def test_material_that_does_not_unwrap_is_invalid_ciphertext(kms: KmsClient) -> None:
    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    parameters = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048"
    )
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        kms.import_key_material(
            KeyId=key_id, ImportToken=parameters["ImportToken"],
            EncryptedKeyMaterial=os.urandom(256),
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )  # fmt: skip


def test_different_material_on_reimport_is_incorrect(kms: KmsClient, tmp_path: Path) -> None:
    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    import_material(kms, key_id, os.urandom(32), tmp_path / "1")
    with expect_error("IncorrectKeyMaterialException", INCORRECT_MATERIAL):
        import_material(kms, key_id, os.urandom(32), tmp_path / "2")
    kms.delete_imported_key_material(KeyId=key_id)
    with expect_error("IncorrectKeyMaterialException", INCORRECT_MATERIAL):
        import_material(kms, key_id, os.urandom(32), tmp_path / "3")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"


def test_wrong_length_material_is_incorrect(kms: KmsClient, tmp_path: Path) -> None:
    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    with expect_error("IncorrectKeyMaterialException", INCORRECT_MATERIAL):
        import_material(kms, key_id, os.urandom(16), tmp_path)


def test_key_not_external_is_refused_with_its_origin(kms: KmsClient) -> None:
    key_id = create_key(kms)["KeyId"]
    message = f"{key_arn(kms, key_id)} origin is AWS_KMS which is not valid for this operation."
    with expect_error("UnsupportedOperationException", message):
        kms.get_parameters_for_import(
            KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048"
        )
    with expect_error("UnsupportedOperationException", message):
        kms.import_key_material(
            KeyId=key_id, ImportToken=b"t" * 61, EncryptedKeyMaterial=b"m" * 256,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )  # fmt: skip
    with expect_error("UnsupportedOperationException", message):
        kms.delete_imported_key_material(KeyId=key_id)


def test_withdrawn_and_china_only_wrapping_algorithms_are_refused(kms: KmsClient) -> None:
    key_id = external_key(kms)
    with expect_error("ValidationException") as info:
        kms.get_parameters_for_import(
            KeyId=key_id, WrappingAlgorithm="RSAES_PKCS1_V1_5", WrappingKeySpec="RSA_2048"
        )
    assert "RSAES_PKCS1_V1_5" in info.value.response["Error"]["Message"]
    with expect_error("ValidationException") as info:
        kms.get_parameters_for_import(
            KeyId=key_id, WrappingAlgorithm="SM2PKE", WrappingKeySpec="SM2"
        )
    assert "China" in info.value.response["Error"]["Message"]
    raw = account_client(kms.meta.endpoint_url, validate=False)
    with expect_error(
        "ValidationException",
        "1 validation error detected: Value 'RSA_1024' at 'wrappingKeySpec' failed to satisfy "
        "constraint: Member must satisfy enum value set: [RSA_2048, RSA_3072, RSA_4096, SM2]",
    ):
        raw.get_parameters_for_import(
            KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_1024"
        )


def test_expiration_model_rules(kms: KmsClient, tmp_path: Path) -> None:
    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    with expect_error(
        "ValidationException",
        "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES",
    ):
        import_material(
            kms, key_id, os.urandom(32), tmp_path, ExpirationModel="KEY_MATERIAL_EXPIRES"
        )
    with expect_error("ValidationException"):
        import_material(
            kms, key_id, os.urandom(32), tmp_path, ValidTo=int(time.time() + DAY)
        )  # DOES_NOT_EXPIRE (the helper's default) with a ValidTo
    with expect_error("ValidationException"):
        import_material(
            kms, key_id, os.urandom(32), tmp_path,
            ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=int(time.time() - 60),
        )  # fmt: skip


def test_pending_deletion_key_takes_no_material(kms: KmsClient) -> None:
    key_id = external_key(kms)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with expect_error("KMSInvalidStateException", f"{key_arn(kms, key_id)} is pending deletion."):
        kms.get_parameters_for_import(
            KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048"
        )


def test_automatic_rotation_is_refused_for_imported_keys(kms: KmsClient, tmp_path: Path) -> None:
    key_id = external_key(kms)
    message = f"{key_arn(kms, key_id)} origin is EXTERNAL which is not valid for this operation."
    with expect_error("UnsupportedOperationException", message):
        kms.enable_key_rotation(KeyId=key_id)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    import_material(kms, key_id, os.urandom(32), tmp_path)
    with expect_error("UnsupportedOperationException", message):
        kms.enable_key_rotation(KeyId=key_id)
    with expect_error("UnsupportedOperationException", message):
        kms.disable_key_rotation(KeyId=key_id)


def test_delete_imported_material_of_a_key_without_any_has_no_effect(kms: KmsClient) -> None:
    key_id = external_key(kms)
    response = kms.delete_imported_key_material(KeyId=key_id)
    assert response["KeyId"] == key_arn(kms, key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"


def test_material_ids_are_64_hex(kms: KmsClient, tmp_path: Path) -> None:
    import re

    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    response = import_material(kms, key_id, os.urandom(32), tmp_path)
    assert re.match(MATERIAL_ID_PATTERN, response["KeyMaterialId"])


def test_openssl_wrap_helper_is_exercised_by_openssl_itself(tmp_path: Path) -> None:
    """The two-step wrap really is RFC 5649 under the AES key it OAEP-encrypts: unwrapped here
    with `cryptography`, independently of mock-kms."""
    from cryptography.hazmat.primitives import hashes, keywrap
    from cryptography.hazmat.primitives.asymmetric import padding

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    material = os.urandom(48)
    wrapped = wrap_with_openssl(material, public_der, "RSA_AES_KEY_WRAP_SHA_256", tmp_path)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    aes_key = private.decrypt(wrapped[:256], oaep)
    assert keywrap.aes_key_unwrap_with_padding(aes_key, wrapped[256:]) == material
    assert subprocess.run(["openssl", "version"], capture_output=True, check=False).returncode == 0


# --- HMAC and asymmetric keys -----------------------------------------------------------------
def openssl_private_key_der(algorithm_args: list[str], work_dir: Path) -> bytes:
    """A fresh private key made by the openssl command line, as PKCS#8 DER (AWS's import
    format for asymmetric keys)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    pem = work_dir / "private.pem"
    subprocess.run(
        ["openssl", "genpkey", *algorithm_args, "-out", str(pem)], check=True, capture_output=True
    )
    result = subprocess.run(
        ["openssl", "pkcs8", "-topk8", "-nocrypt", "-in", str(pem), "-outform", "DER"],
        check=True,
        capture_output=True,
    )
    return result.stdout


def test_imported_hmac_key_macs_like_python_hmac(kms: KmsClient, tmp_path: Path) -> None:
    import hashlib
    import hmac

    key_id = external_key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    material = os.urandom(32)
    import_material(kms, key_id, material, tmp_path)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "Enabled" and metadata["MacAlgorithms"] == ["HMAC_SHA_256"]
    message = b"imported HMAC key"
    mac = kms.generate_mac(KeyId=key_id, Message=message, MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert mac == hmac.new(material, message, hashlib.sha256).digest()
    with expect_error("IncorrectKeyMaterialException", INCORRECT_MATERIAL):
        import_material(kms, key_id, os.urandom(32), tmp_path / "other")
    with expect_error("UnsupportedOperationException"):
        import_material(
            kms, key_id, os.urandom(32), tmp_path / "new", ImportType="NEW_KEY_MATERIAL"
        )


@pytest.mark.parametrize(
    ("key_spec", "genpkey", "algorithm", "signing"),
    [
        ("ECC_NIST_P256", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
         "RSAES_OAEP_SHA_256", "ECDSA_SHA_256"),
        ("ECC_SECG_P256K1", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
         "RSA_AES_KEY_WRAP_SHA_1", "ECDSA_SHA_256"),
        ("RSA_2048", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
         "RSA_AES_KEY_WRAP_SHA_256", "RSASSA_PSS_SHA_256"),
    ],
)  # fmt: skip
def test_imported_private_key_signs_verifiably_with_the_known_public_key(
    kms: KmsClient, tmp_path: Path, key_spec: str, genpkey: list[str], algorithm: str, signing: str
) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding

    key_id = external_key(kms, KeySpec=key_spec, KeyUsage="SIGN_VERIFY")
    require_wrapping(kms, key_id, algorithm)
    der = openssl_private_key_der(genpkey, tmp_path / "key")
    known = serialization.load_der_private_key(der, None).public_key()
    imported = import_material(kms, key_id, der, tmp_path / "wrap", algorithm=algorithm)
    assert imported["KeyMaterialId"]
    public = kms.get_public_key(KeyId=key_id)["PublicKey"]
    assert public == known.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    message = b"signed by imported material"
    signature = kms.sign(
        KeyId=key_id, Message=message, MessageType="RAW", SigningAlgorithm=signing
    )["Signature"]
    if isinstance(known, ec.EllipticCurvePublicKey):
        known.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    else:
        assert isinstance(known, rsa.RSAPublicKey)
        known.verify(
            signature,
            message,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
    # Asymmetric keys take their first material for good: other material is refused.
    other = openssl_private_key_der(genpkey, tmp_path / "other")
    with expect_error("IncorrectKeyMaterialException", INCORRECT_MATERIAL):
        import_material(kms, key_id, other, tmp_path / "wrap2", algorithm=algorithm)


def test_rsa_private_key_does_not_fit_plain_oaep(kms: KmsClient, tmp_path: Path) -> None:
    """AWS: RSA private keys must be wrapped with RSA_AES_KEY_WRAP_*; openssl itself refuses
    to OAEP-encrypt something that large, so the service never sees such a request."""
    key_id = external_key(kms, KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    der = openssl_private_key_der(
        ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], tmp_path / "key"
    )
    with pytest.raises(AssertionError):
        import_material(kms, key_id, der, tmp_path / "wrap")


def test_symmetric_material_into_an_hmac_key_is_incorrect(kms: KmsClient, tmp_path: Path) -> None:
    key_id = external_key(kms, KeySpec="HMAC_512", KeyUsage="GENERATE_VERIFY_MAC")
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    with expect_error("IncorrectKeyMaterialException", INCORRECT_MATERIAL):
        import_material(kms, key_id, os.urandom(32), tmp_path)  # HMAC_512 needs >= 64 bytes


def test_cancelled_deletion_of_a_key_without_material_returns_to_pending_import(
    kms: KmsClient, tmp_path: Path
) -> None:
    never = external_key(kms)
    kms.schedule_key_deletion(KeyId=never, PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=never)
    assert kms.describe_key(KeyId=never)["KeyMetadata"]["KeyState"] == "PendingImport"
    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    import_material(kms, key_id, os.urandom(32), tmp_path, algorithm="RSAES_OAEP_SHA_1")
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    # Material deleted while the key is pending deletion leaves the state alone.
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    kms.delete_imported_key_material(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    kms.cancel_key_deletion(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"


def test_key_material_id_names_the_material_to_reimport_or_delete(
    kms: KmsClient, tmp_path: Path
) -> None:
    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    first_material, second_material = os.urandom(32), os.urandom(32)
    first = import_material(kms, key_id, first_material, tmp_path / "1")["KeyMaterialId"]
    second = import_material(
        kms, key_id, second_material, tmp_path / "2", ImportType="NEW_KEY_MATERIAL"
    )["KeyMaterialId"]
    kms.rotate_key_on_demand(KeyId=key_id)
    old_blob = kms.encrypt(KeyId=key_id, Plaintext=b"second")["CiphertextBlob"]

    # Deleting the non-current material still makes the key unusable, as on AWS.
    deleted = kms.delete_imported_key_material(KeyId=key_id, KeyMaterialId=first)
    assert deleted["KeyMaterialId"] == first
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
    with expect_error("IncorrectKeyMaterialException", INCORRECT_MATERIAL):
        import_material(kms, key_id, first_material, tmp_path / "3", KeyMaterialId=second)
    with expect_error("IncorrectKeyMaterialException", INCORRECT_MATERIAL):
        import_material(kms, key_id, first_material, tmp_path / "4", KeyMaterialId="0" * 64)
    again = import_material(kms, key_id, first_material, tmp_path / "5", KeyMaterialId=first)
    assert again["KeyMaterialId"] == first
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == second
    assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"second"
    with expect_error("NotFoundException"):
        kms.delete_imported_key_material(KeyId=key_id, KeyMaterialId="f" * 64)
    with expect_error(
        "ValidationException",
        "You cannot specify a key material ID with ImportType set to NEW_KEY_MATERIAL.",
    ):
        import_material(
            kms, key_id, os.urandom(32), tmp_path / "6",
            ImportType="NEW_KEY_MATERIAL", KeyMaterialId=first,
        )  # fmt: skip


def test_import_into_a_key_pending_deletion_is_refused(kms: KmsClient, tmp_path: Path) -> None:
    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    parameters = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048"
    )
    wrapped = wrap_with_openssl(
        os.urandom(32), parameters["PublicKey"], "RSAES_OAEP_SHA_1", tmp_path
    )
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    with expect_error("KMSInvalidStateException", f"{key_arn(kms, key_id)} is pending deletion."):
        kms.import_key_material(
            KeyId=key_id, ImportToken=parameters["ImportToken"], EncryptedKeyMaterial=wrapped,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )  # fmt: skip


def test_reset_destroys_wrapping_keys_too(kms: KmsClient, import_server: RunningServer) -> None:
    import sqlite3

    key_id = external_key(kms)
    require_wrapping(kms, key_id, "RSAES_OAEP_SHA_1")
    kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_1", WrappingKeySpec="RSA_2048"
    )
    metadata = sqlite3.connect(import_server.data_dir / "mock-kms.sqlite3")
    try:
        assert metadata.execute("SELECT count(*) FROM import_wrapping_keys").fetchone()[0] >= 1
        status, _ = admin(import_server, "POST", "/reset", {})
        assert status == 200
        assert metadata.execute("SELECT count(*) FROM import_wrapping_keys").fetchone()[0] == 0
    finally:
        metadata.close()
    if import_server.env.get("MOCK_KMS_BACKEND") != "pkcs11":
        keystore = sqlite3.connect(import_server.data_dir / "software-keystore.sqlite3")
        try:
            assert keystore.execute("SELECT count(*) FROM wrapping_key").fetchone()[0] == 0
        finally:
            keystore.close()


def test_thin_client_imports_with_an_expiry_and_sees_the_token_errors(
    import_server: RunningServer, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from clients.kms import KmsClient as ThinClient

    client = ThinClient(
        import_server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=new_account_id(),
        aws_secret_access_key="mock-kms-test-secret",
        max_attempts=1,
    )
    key_id = client.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    require_wrapping(client, key_id, "RSA_AES_KEY_WRAP_SHA_1")
    clock = admin(import_server, "GET", "/clock")[1]["now_epoch_seconds"]
    valid_to = datetime.fromtimestamp(clock, UTC) + timedelta(days=10)
    response = import_material(
        client, key_id, os.urandom(32), tmp_path, algorithm="RSA_AES_KEY_WRAP_SHA_1",
        ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to,
    )  # fmt: skip
    assert response["KeyId"].endswith(key_id)
    metadata = client.describe_key(KeyId=key_id)["KeyMetadata"]
    assert abs(metadata["ValidTo"].timestamp() - valid_to.timestamp()) < 1
    with pytest.raises(client.exceptions.InvalidImportTokenException) as info:
        client.import_key_material(
            KeyId=key_id, ImportToken=b"\x01" * 61, EncryptedKeyMaterial=b"x" * 256,
            ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
        )  # fmt: skip
    assert str(INVALID_TOKEN) in str(info.value)
