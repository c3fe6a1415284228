"""``mock-kms export`` on a server whose keys live partly in a real SoftHSM token: the file
always seeds a fresh data directory (software or PKCS#11 backend), the token's keys are left
out with a comment, and the software keys round-trip with their material."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from botocore.exceptions import ClientError

from tests.conftest import backend_env
from tests.support.admin import mock_kms
from tests.support.kms_ops import account_client
from tests.support.server import running_server

ACCOUNT = "111122223333"
SOFTWARE_KEY = "bc436485-5092-42b8-92a3-0aa8b93536dc"
MATERIAL = "5cdaead27fe7da2de47945d73cd6d79e36494e73802f3cd3869f1d2cb0b5d7a9"


def test_export_with_keys_in_a_token_always_seeds_a_fresh_data_dir(tmp_path: Path) -> None:
    env = backend_env("pkcs11", tmp_path / "hsm")
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        f"keys:\n  - id: {SOFTWARE_KEY}\n    aliases: [alias/soft]\n"
        f"    material:\n      - key: {MATERIAL}\n"
    )
    source = tmp_path / "source"
    with running_server(source, env=env, extra_args=["--seed", str(seed)]) as server:
        kms = account_client(server.endpoint, ACCOUNT)
        in_token = kms.create_key(Description="in the token")["KeyMetadata"]
        assert in_token.get("CustomKeyStoreId")  # on the PKCS#11 backend
        kms.create_alias(AliasName="alias/hsm", TargetKeyId=in_token["KeyId"])
        kms.rotate_key_on_demand(KeyId=in_token["KeyId"])
        soft_blob = kms.encrypt(KeyId="alias/soft", Plaintext=b"soft")["CiphertextBlob"]

    exported = tmp_path / "export.yaml"
    result = mock_kms(
        "export", "--data-dir", str(source), "--include-material", "-o", str(exported)
    )
    assert result.returncode == 0, result.stderr
    assert f"key/{in_token['KeyId']}: in the pkcs11 token, left out" in result.stderr
    text = exported.read_text()
    assert "# Left out: 1 key(s) whose material lives in a PKCS#11 token" in text
    document = yaml.safe_load(text)
    assert [key["id"] for key in document["keys"]] == [SOFTWARE_KEY]
    for line in text.splitlines():  # the token's key appears in comments only
        if in_token["KeyId"] in line or "alias/hsm" in line:
            assert line.startswith("#"), line

    # A software-only server starts on it (a `backend: pkcs11` entry would stop it).
    with running_server(tmp_path / "fresh", extra_args=["--seed", str(exported)]) as server:
        kms = account_client(server.endpoint, ACCOUNT)
        assert kms.decrypt(CiphertextBlob=soft_blob)["Plaintext"] == b"soft"
        with pytest.raises(ClientError) as missing:
            kms.describe_key(KeyId="alias/hsm")
        assert missing.value.response["Error"]["Code"] == "NotFoundException"
    # So does a PKCS#11 server on a fresh data directory.
    with running_server(
        tmp_path / "fresh-hsm", env=env, extra_args=["--seed", str(exported)]
    ) as server:
        kms = account_client(server.endpoint, ACCOUNT)
        assert kms.decrypt(CiphertextBlob=soft_blob)["Plaintext"] == b"soft"

    without_material = mock_kms("export", "--data-dir", str(source))
    assert without_material.returncode == 0, without_material.stderr
    assert [k["id"] for k in yaml.safe_load(without_material.stdout)["keys"]] == [SOFTWARE_KEY]
    assert "# Left out: 1 key(s)" in without_material.stdout
