"""The AWS CLI (v1, from the virtual environment) against the server via ``--endpoint-url``."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import RunningServer, start_server
from tests.support.wire import new_account_id

AWS = Path(sys.executable).parent / "aws"


def _aws_binary() -> str:
    if AWS.exists():
        return str(AWS)
    found = shutil.which("aws")
    if found is None:
        pytest.fail("the AWS CLI is part of the dev dependencies (awscli) and must be installed")
    return found


class AwsCli:
    """Runs ``aws kms ...`` as one account, with nothing read from ~/.aws."""

    def __init__(
        self,
        endpoint: str,
        tmp_path: Path,
        *,
        access_key_id: str | None = None,
        secret_access_key: str = "cli-secret",
        region: str = "us-east-1",
    ) -> None:
        self.endpoint = endpoint
        self.tmp_path = tmp_path
        self.account_id = access_key_id or new_account_id()
        self.env = {
            "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
            "HOME": str(tmp_path),
            "AWS_ACCESS_KEY_ID": self.account_id,
            "AWS_SECRET_ACCESS_KEY": secret_access_key,
            "AWS_DEFAULT_REGION": region,
            "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
            "AWS_MAX_ATTEMPTS": "1",
            "AWS_PAGER": "",
        }

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_aws_binary(), "kms", *args, "--endpoint-url", self.endpoint],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str) -> Any:
        """Run, require success, and parse JSON output (or return the text)."""
        result = self.run(*args)
        assert result.returncode == 0, result.stderr
        if "--output" in args and args[args.index("--output") + 1] == "text":
            return result.stdout.strip()
        return json.loads(result.stdout) if result.stdout.strip() else None


@pytest.fixture()
def cli(kms_server: RunningServer, tmp_path: Path) -> AwsCli:
    return AwsCli(kms_server.endpoint, tmp_path)


def test_create_and_describe_key(cli: AwsCli) -> None:
    created = cli.ok(
        "create-key", "--description", "from the CLI", "--tags", "TagKey=team,TagValue=a"
    )
    metadata = created["KeyMetadata"]
    assert metadata["Description"] == "from the CLI"
    assert metadata["Arn"] == f"arn:aws:kms:us-east-1:{cli.account_id}:key/{metadata['KeyId']}"
    # CLI v1 prints the wire value: a JSON number of epoch seconds.
    assert isinstance(metadata["CreationDate"], int | float)
    described = cli.ok("describe-key", "--key-id", metadata["Arn"])
    assert described["KeyMetadata"]["KeyId"] == metadata["KeyId"]
    tags = cli.ok("list-resource-tags", "--key-id", metadata["KeyId"])["Tags"]
    assert tags == [{"TagKey": "team", "TagValue": "a"}]


def test_encrypt_decrypt_round_trip_with_files(cli: AwsCli, tmp_path: Path) -> None:
    key_id = cli.ok("create-key")["KeyMetadata"]["KeyId"]
    plaintext = bytes(range(256)) + b"\nbinary, not text\n"
    source = tmp_path / "plain.bin"
    source.write_bytes(plaintext)
    blob_b64 = cli.ok(
        "encrypt",
        "--key-id", key_id,
        "--plaintext", f"fileb://{source}",
        "--encryption-context", "purpose=cli-test",
        "--output", "text",
        "--query", "CiphertextBlob",
    )  # fmt: skip
    blob_file = tmp_path / "blob.bin"
    blob_file.write_bytes(base64.b64decode(blob_b64))
    decrypted_b64 = cli.ok(
        "decrypt",
        "--ciphertext-blob", f"fileb://{blob_file}",
        "--encryption-context", "purpose=cli-test",
        "--output", "text",
        "--query", "Plaintext",
    )  # fmt: skip
    assert base64.b64decode(decrypted_b64) == plaintext

    wrong_context = cli.run(
        "decrypt",
        "--ciphertext-blob", f"fileb://{blob_file}",
        "--encryption-context", "purpose=other",
    )  # fmt: skip
    assert wrong_context.returncode in (254, 255)
    assert "InvalidCiphertextException" in wrong_context.stderr


def test_data_key_through_the_cli(cli: AwsCli, tmp_path: Path) -> None:
    key_id = cli.ok("create-key")["KeyMetadata"]["KeyId"]
    data_key = cli.ok("generate-data-key", "--key-id", key_id, "--key-spec", "AES_256")
    plaintext = base64.b64decode(data_key["Plaintext"])
    assert len(plaintext) == 32
    blob_file = tmp_path / "data-key.bin"
    blob_file.write_bytes(base64.b64decode(data_key["CiphertextBlob"]))
    decrypted = cli.ok("decrypt", "--ciphertext-blob", f"fileb://{blob_file}")
    assert base64.b64decode(decrypted["Plaintext"]) == plaintext
    assert decrypted["KeyId"] == data_key["KeyId"]


def test_aliases(cli: AwsCli) -> None:
    key_id = cli.ok("create-key")["KeyMetadata"]["KeyId"]
    assert (
        cli.ok("create-alias", "--alias-name", "alias/cli-app", "--target-key-id", key_id) is None
    )
    aliases = cli.ok("list-aliases")["Aliases"]
    assert {
        "AliasName": "alias/cli-app",
        "AliasArn": f"arn:aws:kms:us-east-1:{cli.account_id}:alias/cli-app",
        "TargetKeyId": key_id,
    }.items() <= next(a for a in aliases if a["AliasName"] == "alias/cli-app").items()
    by_alias = cli.ok("describe-key", "--key-id", "alias/cli-app")
    assert by_alias["KeyMetadata"]["KeyId"] == key_id
    duplicate = cli.run("create-alias", "--alias-name", "alias/cli-app", "--target-key-id", key_id)
    assert duplicate.returncode in (254, 255)
    assert "AlreadyExistsException" in duplicate.stderr


def test_not_found_error(cli: AwsCli) -> None:
    missing = "1234abcd-12ab-34cd-56ef-1234567890ab"
    result = cli.run("describe-key", "--key-id", missing)
    assert result.returncode in (254, 255)
    assert "An error occurred (NotFoundException) when calling the DescribeKey operation" in (
        result.stderr
    )
    assert f"arn:aws:kms:us-east-1:{cli.account_id}:key/{missing}" in result.stderr
    assert result.stdout == ""


def test_validation_error(cli: AwsCli) -> None:
    result = cli.run("generate-random", "--number-of-bytes", "2000")
    assert result.returncode in (254, 255)
    assert "(ValidationException)" in result.stderr
    assert "Value '2000' at 'numberOfBytes' failed to satisfy constraint" in result.stderr


# --- sigv4 mode --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sigv4_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("cli-sigv4")
    credentials = root / "credentials"
    credentials.write_text(
        "[cli]\naws_access_key_id = AKIDCLI\naws_secret_access_key = cli/secret+1\n"
        "aws_account_id = 999988887777\n"
    )
    server = start_server(
        root / "data",
        workers=1,
        env={"MOCK_KMS_AUTH": "sigv4", "MOCK_KMS_CREDENTIALS_FILE": str(credentials)},
    )
    try:
        yield server
    finally:
        server.stop()


def test_cli_signs_correctly_in_sigv4_mode(sigv4_server: RunningServer, tmp_path: Path) -> None:
    cli = AwsCli(
        sigv4_server.endpoint + "/kms/v1",
        tmp_path,
        access_key_id="AKIDCLI",
        secret_access_key="cli/secret+1",
        region="eu-west-2",
    )
    metadata = cli.ok("create-key")["KeyMetadata"]
    assert metadata["Arn"].startswith("arn:aws:kms:eu-west-2:999988887777:key/")
    wrong = AwsCli(
        sigv4_server.endpoint, tmp_path, access_key_id="AKIDCLI", secret_access_key="nope"
    )
    result = wrong.run("list-keys")
    assert result.returncode in (254, 255)
    assert "(InvalidSignatureException)" in result.stderr
