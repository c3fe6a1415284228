"""``mock-kms migrate-store``: a SQLite deployment built by a real ``mock-kms serve``, copied
into a real PostgreSQL, then served by two hosts on that database; everything recorded
before the migration must hold through either host.

Needs PostgreSQL (tests/support/postgres.py): skipped locally without it, failed in CI.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from tests.support.admin import DEV, admin
from tests.support.hosts import running_hosts
from tests.support.importing import import_material
from tests.support.kms_ops import account_client
from tests.support.postgres import (
    PostgresServer,
)
from tests.support.s3 import s3_client
from tests.support.server import RunningServer, running_server

ACCOUNT = "111122223333"
HOME = "us-east-1"
REPLICA_REGION = "eu-west-1"
CONTEXT = {"purpose": "migrate-store"}
GRANTEE = f"arn:aws:iam::{ACCOUNT}:role/migrated-app"
PART_SIZE = 5 * 1024 * 1024
CLOCK_OFFSET = 3600
#: PostgreSQL is the session's (tests/conftest.py ``postgres``): skipped locally without it,
#: failed in CI.
pytestmark = pytest.mark.postgres


@dataclass
class Deployment:
    """A stopped SQLite deployment and what was recorded through its server."""

    data_dir: Path
    keys: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    ciphertexts: dict[str, tuple[str, bytes, bytes]] = field(default_factory=dict)
    data_key: tuple[bytes, bytes] = (b"", b"")
    rsa_ciphertext: bytes = b""
    signatures: dict[str, tuple[str, bytes, bytes]] = field(default_factory=dict)
    public_keys: dict[str, bytes] = field(default_factory=dict)
    mac: bytes = b""
    grant_id: str = ""
    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)
    upload: tuple[str, str, str, str] = ("", "", "", "")
    first_part: bytes = b""

    @property
    def root_key(self) -> str:
        return (self.data_dir / "root.key").read_text().strip()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCK_KMS_")}
    env.update(extra)
    return env


def migrate(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real ``mock-kms migrate-store`` command line."""
    return subprocess.run(
        [sys.executable, "-m", "kms_service.serving.cli", "migrate-store", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=_env(**env),
    )


def _kms(server: RunningServer, region: str = HOME) -> Any:
    return account_client(server.endpoint, ACCOUNT, region)


def _build(server: RunningServer, deployment: Deployment, work_dir: Path) -> None:
    """Keys of every kind, aliases, tags, a grant, a rotation, a key pending deletion, a
    disabled key, a multi-Region key with a replica, an imported key, S3 objects under SSE-S3
    and SSE-KMS and an unfinished multipart upload, a moved clock."""
    kms = _kms(server)
    keys = deployment.keys

    def create(name: str, **kwargs: Any) -> str:
        keys[name] = kms.create_key(**kwargs)["KeyMetadata"]["KeyId"]
        return keys[name]

    symmetric = create(
        "symmetric", Description="migrated", Tags=[{"TagKey": "team", "TagValue": "payments"}]
    )
    kms.create_alias(AliasName="alias/migrated", TargetKeyId=symmetric)
    deployment.ciphertexts["before-rotation"] = (
        symmetric,
        b"before rotation",
        kms.encrypt(KeyId=symmetric, Plaintext=b"before rotation", EncryptionContext=CONTEXT)[
            "CiphertextBlob"
        ],
    )
    kms.enable_key_rotation(KeyId=symmetric, RotationPeriodInDays=90)
    kms.rotate_key_on_demand(KeyId=symmetric)
    deployment.ciphertexts["after-rotation"] = (
        symmetric,
        b"after rotation",
        kms.encrypt(KeyId="alias/migrated", Plaintext=b"after rotation", EncryptionContext=CONTEXT)[
            "CiphertextBlob"
        ],
    )
    data_key = kms.generate_data_key(KeyId=symmetric, KeySpec="AES_256", EncryptionContext=CONTEXT)
    deployment.data_key = (data_key["Plaintext"], data_key["CiphertextBlob"])
    deployment.grant_id = kms.create_grant(
        KeyId=symmetric, GranteePrincipal=GRANTEE, Operations=["Decrypt", "Encrypt"], Name="app"
    )["GrantId"]

    rsa_key = create("rsa", KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    deployment.rsa_ciphertext = kms.encrypt(
        KeyId=rsa_key, Plaintext=b"rsa secret", EncryptionAlgorithm="RSAES_OAEP_SHA_256"
    )["CiphertextBlob"]
    for name, spec, algorithm in (
        ("rsa-sign", "RSA_3072", "RSASSA_PSS_SHA_256"),
        ("ecc", "ECC_NIST_P256", "ECDSA_SHA_256"),
    ):
        key_id = create(name, KeySpec=spec, KeyUsage="SIGN_VERIFY")
        message = f"signed by {name}".encode()
        signature = kms.sign(KeyId=key_id, Message=message, SigningAlgorithm=algorithm)["Signature"]
        deployment.signatures[name] = (algorithm, message, signature)
        deployment.public_keys[name] = kms.get_public_key(KeyId=key_id)["PublicKey"]
    hmac_key = create("hmac", KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    deployment.mac = kms.generate_mac(
        KeyId=hmac_key, Message=b"mac me", MacAlgorithm="HMAC_SHA_256"
    )["Mac"]

    imported = create("imported", Origin="EXTERNAL")
    import_material(kms, imported, os.urandom(32), work_dir)
    deployment.ciphertexts["imported"] = (
        imported,
        b"imported material",
        kms.encrypt(KeyId=imported, Plaintext=b"imported material")["CiphertextBlob"],
    )

    primary = create("multi-region", MultiRegion=True)
    kms.replicate_key(KeyId=primary, ReplicaRegion=REPLICA_REGION)
    deployment.ciphertexts["multi-region"] = (
        primary,
        b"any region",
        kms.encrypt(KeyId=primary, Plaintext=b"any region")["CiphertextBlob"],
    )

    pending = create("pending-deletion")
    kms.schedule_key_deletion(KeyId=pending, PendingWindowInDays=7)
    disabled = create("disabled")
    kms.disable_key(KeyId=disabled)

    for name, key_id in keys.items():
        deployment.metadata[name] = kms.describe_key(KeyId=key_id)["KeyMetadata"]

    s3 = s3_client(server)
    s3.create_bucket(Bucket="migrated-sse-s3")
    body = os.urandom(300_000)
    s3.put_object(
        Bucket="migrated-sse-s3", Key="photo.bin", Body=body, ServerSideEncryption="AES256"
    )
    deployment.objects[("migrated-sse-s3", "photo.bin")] = body
    s3.create_bucket(Bucket="migrated-sse-kms")
    s3.put_bucket_encryption(
        Bucket="migrated-sse-kms",
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": symmetric,
                    }
                }
            ]
        },
    )
    s3.put_object(Bucket="migrated-sse-kms", Key="report.txt", Body=b"quarterly figures")
    deployment.objects[("migrated-sse-kms", "report.txt")] = b"quarterly figures"
    upload_id = s3.create_multipart_upload(Bucket="migrated-sse-kms", Key="big.bin")["UploadId"]
    deployment.first_part = os.urandom(PART_SIZE)
    etag = s3.upload_part(
        Bucket="migrated-sse-kms",
        Key="big.bin",
        UploadId=upload_id,
        PartNumber=1,
        Body=deployment.first_part,
    )["ETag"]
    deployment.upload = ("migrated-sse-kms", "big.bin", upload_id, etag)

    status, _ = admin(server, "POST", "/clock/advance", {"seconds": CLOCK_OFFSET})
    assert status == 200


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    base = tmp_path_factory.mktemp("sqlite-deployment")
    built = Deployment(base / "data")
    with running_server(built.data_dir, env=DEV) as server:
        _build(server, built, base)
    return built


def _digests(data_dir: Path) -> dict[str, str]:
    """SHA-256 of every database file and secret of a data directory (SQLite's -wal and
    -shm companions left out: a read-only reader of a WAL database creates them)."""
    return {
        str(path.relative_to(data_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(data_dir.rglob("*"))
        if path.is_file() and not path.name.endswith(("-wal", "-shm"))
    }


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as connection:
        return list(connection.execute(sql).fetchall())


def _check_host(host: RunningServer, deployment: Deployment) -> None:
    """Everything recorded before the migration, through one host."""
    kms = _kms(host)
    keys = deployment.keys
    for name, expected in deployment.metadata.items():
        assert kms.describe_key(KeyId=keys[name])["KeyMetadata"] == expected, name
    for name, (key_id, plaintext, blob) in deployment.ciphertexts.items():
        answer = kms.decrypt(
            CiphertextBlob=blob, EncryptionContext=CONTEXT if "rotation" in name else {}
        )
        assert answer["Plaintext"] == plaintext, name
        assert answer["KeyId"].endswith(key_id), name
    replica = _kms(host, REPLICA_REGION)
    _, plaintext, blob = deployment.ciphertexts["multi-region"]
    assert replica.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
    data_key, wrapped = deployment.data_key
    assert kms.decrypt(CiphertextBlob=wrapped, EncryptionContext=CONTEXT)["Plaintext"] == data_key
    assert (
        kms.decrypt(
            KeyId=keys["rsa"],
            CiphertextBlob=deployment.rsa_ciphertext,
            EncryptionAlgorithm="RSAES_OAEP_SHA_256",
        )["Plaintext"]
        == b"rsa secret"
    )
    for name, (algorithm, message, signature) in deployment.signatures.items():
        assert kms.verify(
            KeyId=keys[name], Message=message, Signature=signature, SigningAlgorithm=algorithm
        )["SignatureValid"]
        public_der = kms.get_public_key(KeyId=keys[name])["PublicKey"]
        assert public_der == deployment.public_keys[name]
        # Checked with `cryptography`, not with mock-kms: the same key pair signed it.
        public = serialization.load_der_public_key(public_der)
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(
                signature,
                message,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
        else:
            assert isinstance(public, ec.EllipticCurvePublicKey)
            public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    assert kms.verify_mac(
        KeyId=keys["hmac"], Message=b"mac me", MacAlgorithm="HMAC_SHA_256", Mac=deployment.mac
    )["MacValid"]
    aliases = {
        alias["AliasName"]: alias.get("TargetKeyId") for alias in kms.list_aliases()["Aliases"]
    }
    assert aliases["alias/migrated"] == keys["symmetric"]
    assert kms.list_resource_tags(KeyId=keys["symmetric"])["Tags"] == [
        {"TagKey": "team", "TagValue": "payments"}
    ]
    grants = kms.list_grants(KeyId=keys["symmetric"])["Grants"]
    assert [(g["GrantId"], g["GranteePrincipal"], sorted(g["Operations"])) for g in grants] == [
        (deployment.grant_id, GRANTEE, ["Decrypt", "Encrypt"])
    ]
    rotation = kms.get_key_rotation_status(KeyId=keys["symmetric"])
    assert rotation["KeyRotationEnabled"] and rotation["RotationPeriodInDays"] == 90
    assert len(kms.list_key_rotations(KeyId=keys["symmetric"])["Rotations"]) == 1
    s3 = s3_client(host)
    for (bucket, key), body in deployment.objects.items():
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == body, key
    assert (
        s3.head_object(Bucket="migrated-sse-s3", Key="photo.bin")["ServerSideEncryption"]
        == "AES256"
    )
    head = s3.head_object(Bucket="migrated-sse-kms", Key="report.txt")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(keys["symmetric"])
    status, clock = admin(host, "GET", "/clock")
    assert status == 200 and clock["offset_seconds"] == CLOCK_OFFSET


def test_migrated_deployment_serves_through_two_hosts(
    deployment: Deployment, postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.create_database()
    s3_dir = tmp_path / "shared-s3"
    source_files = _digests(deployment.data_dir)
    result = migrate("--from", str(deployment.data_dir), "--to", url, "--s3-dir", str(s3_dir))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "kms.keys" in out and "s3.objects" in out
    assert f"root key in {deployment.data_dir / 'root.key'}" in out
    assert postgres.app_password not in out + result.stderr
    assert deployment.root_key not in out + result.stderr
    counts = {
        line.split()[0]: int(line.split()[1])
        for line in out.splitlines()
        if line.startswith("  ") and len(line.split()) == 2 and line.split()[1].isdigit()
    }
    assert counts["kms.keys"] == len(deployment.keys) + 1  # the replica is a key too
    assert counts["kms.grants"] == 1 and counts["kms.aliases"] >= 1
    assert counts["kms.multi_region_members"] == 2 and counts["kms.imported_materials"] == 1
    assert counts["s3.buckets"] == 2 and counts["s3.objects"] == 2 and counts["s3.uploads"] == 1
    assert counts["keystore.material"] >= len(deployment.keys)
    # The source is left as it was (a way back).
    assert _digests(deployment.data_dir) == source_files
    assert (s3_dir / "master-key.bin").is_file()

    env = {**DEV, "MOCK_KMS_ROOT_KEY": deployment.root_key}
    with running_hosts(
        tmp_path / "hosts", count=2, env=env, database_url=url, s3_dir=s3_dir
    ) as group:
        for host in group.hosts:
            _check_host(host, deployment)
        # The multipart upload begun before the migration finishes on the other host.
        bucket, key, upload_id, first_etag = deployment.upload
        second = b"tail of the upload"
        s3_second = s3_client(group.hosts[1])
        etag = s3_second.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=second
        )["ETag"]
        s3_second.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": 1, "ETag": first_etag}, {"PartNumber": 2, "ETag": etag}]
            },
        )
        body = s3_client(group.hosts[0]).get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body == deployment.first_part + second
        # The pending deletion still happens, on the migrated clock.
        kms = _kms(group.hosts[0])
        assert (
            kms.describe_key(KeyId=deployment.keys["pending-deletion"])["KeyMetadata"]["KeyState"]
            == "PendingDeletion"
        )


def test_second_migration_into_the_same_database_is_refused(
    deployment: Deployment, postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.create_database()
    first = migrate(
        "--from", str(deployment.data_dir), "--to", url, "--s3-dir", str(tmp_path / "s3")
    )
    assert first.returncode == 0, first.stderr
    keys_before = _rows(url, "SELECT count(*) FROM keys")[0][0]
    generation_before = _rows(url, "SELECT value FROM store_generation")[0][0]
    again = migrate(
        "--from", str(deployment.data_dir), "--to", url, "--s3-dir", str(tmp_path / "s3")
    )
    assert again.returncode == 2
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1, again.stderr
    assert lines[0].startswith("mock-kms: error: ")
    assert "already holds mock-kms state" in lines[0] and "keys (" in lines[0]
    assert postgres.app_password not in again.stderr
    assert _rows(url, "SELECT count(*) FROM keys")[0][0] == keys_before
    assert _rows(url, "SELECT value FROM store_generation")[0][0] == generation_before


def test_wrong_root_key_is_refused_before_anything_is_written(
    deployment: Deployment, postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.create_database()
    wrong = base64.b64encode(os.urandom(32)).decode()
    result = migrate(
        "--from", str(deployment.data_dir), "--to", url, "--s3-dir", str(tmp_path / "s3"),
        MOCK_KMS_ROOT_KEY=wrong,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mock-kms: error: the root key from MOCK_KMS_ROOT_KEY does not open the key material"
        f" of {deployment.data_dir}: give the root key that data directory was created with"
        " (its root.key, or the MOCK_KMS_ROOT_KEY its server ran with)"
    ]
    assert wrong not in result.stderr + result.stdout
    # Nothing reached the target: no tables, no S3 files.
    tables = _rows(
        url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    assert tables == []
    assert not (tmp_path / "s3").exists()


def test_failure_mid_copy_commits_nothing(
    deployment: Deployment, postgres: PostgresServer, tmp_path: Path
) -> None:
    """A row PostgreSQL refuses (a NUL character in text, which SQLite stores) in a table
    copied after ``keys``: the whole copy is rolled back."""
    source = tmp_path / "source"
    subprocess.run(["cp", "-a", str(deployment.data_dir), str(source)], check=True)
    with sqlite3.connect(source / "mock-kms.sqlite3") as connection:
        connection.execute(
            "INSERT INTO service_settings (name, value) VALUES ('broken', 'a' || char(0) || 'b')"
        )
    url = postgres.create_database()
    result = migrate("--from", str(source), "--to", url, "--s3-dir", str(tmp_path / "s3"))
    assert result.returncode == 2
    assert result.stderr.startswith("mock-kms: error: nothing was copied: ")
    assert len(result.stderr.strip().splitlines()) == 1
    for table in ("keys", "key_materials", "aliases", "material", "buckets", "objects"):
        assert _rows(url, f"SELECT count(*) FROM {table}")[0][0] == 0, table


def test_newer_source_schema_is_refused_and_left_alone(
    deployment: Deployment, postgres: PostgresServer, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    subprocess.run(["cp", "-a", str(deployment.data_dir), str(source)], check=True)
    with sqlite3.connect(source / "mock-kms.sqlite3") as connection:
        connection.execute("PRAGMA user_version = 99")
    url = postgres.create_database()
    result = migrate("--from", str(source), "--to", url, "--s3-dir", str(tmp_path / "s3"))
    assert result.returncode == 2
    assert "written by a newer mock-kms (schema 99" in result.stderr
    with sqlite3.connect(source / "mock-kms.sqlite3") as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 99


@pytest.mark.parametrize(
    ("make_source", "expected"),
    [
        (lambda base: base / "missing", "--from {source}: no such directory"),
        (
            lambda base: base,
            "--from {source}: no mock-kms data directory there (mock-kms.sqlite3 is missing)",
        ),
    ],
    ids=["missing", "not-a-data-dir"],
)
def test_missing_source_is_one_line(tmp_path: Path, make_source: Any, expected: str) -> None:
    source = make_source(tmp_path)
    result = migrate("--from", str(source), "--to", "postgresql://kms:secret@127.0.0.1:1/kms")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mock-kms: error: " + expected.format(source=source)
    ]
    assert result.stdout == ""


def _downgrade_to_schema_2(data_dir: Path) -> None:
    """Turn a fresh data directory back into what mock-kms wrote at key store schema 2 (no
    imported material, multi-Region, grant or custom key store tables, no ``keys`` import
    columns, a UNIQUE ``key_materials.material_id``) with a keystore from before key specs."""
    with sqlite3.connect(data_dir / "mock-kms.sqlite3") as connection:
        connection.executescript(
            "PRAGMA foreign_keys = OFF;"
            "DROP TABLE grants; DROP TABLE custom_key_stores; DROP TABLE multi_region_members;"
            "DROP TABLE imported_materials; DROP TABLE import_wrapping_keys;"
            "ALTER TABLE keys DROP COLUMN expiration_model;"
            "ALTER TABLE keys DROP COLUMN valid_to;"
            "CREATE TABLE old_key_materials (account_id TEXT NOT NULL, region TEXT NOT NULL,"
            " key_id TEXT NOT NULL, seq INTEGER NOT NULL, material_id TEXT NOT NULL UNIQUE,"
            " created REAL NOT NULL, rotation_type TEXT,"
            " PRIMARY KEY (account_id, region, key_id, seq),"
            " FOREIGN KEY (account_id, region, key_id) REFERENCES keys ON DELETE CASCADE);"
            "INSERT INTO old_key_materials SELECT * FROM key_materials;"
            "DROP TABLE key_materials;"
            "ALTER TABLE old_key_materials RENAME TO key_materials;"
            "PRAGMA user_version = 2;"
        )
    with sqlite3.connect(data_dir / "software-keystore.sqlite3") as connection:
        connection.executescript(
            "DROP TABLE root_key_check; DROP TABLE wrapping_key;"
            "ALTER TABLE material DROP COLUMN key_spec;"
        )


def test_older_source_is_migrated_through_a_copy(postgres: PostgresServer, tmp_path: Path) -> None:
    """A data directory at key store schema 2: its copy is brought to the current schema by
    the serve-time code, the source stays at 2, and its ciphertext decrypts on PostgreSQL."""
    data_dir = tmp_path / "old"
    with running_server(data_dir, extra_args=["--no-s3"]) as server:
        kms = _kms(server)
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/old", TargetKeyId=key_id)
        blob = kms.encrypt(KeyId="alias/old", Plaintext=b"from schema 2")["CiphertextBlob"]
    _downgrade_to_schema_2(data_dir)
    url = postgres.create_database()
    result = migrate("--from", str(data_dir), "--to", url)
    assert result.returncode == 0, result.stderr
    assert "key store schema 2 was brought to" in result.stdout
    assert f"S3 object data: stays in {data_dir / 's3'}" in result.stdout
    with sqlite3.connect(data_dir / "mock-kms.sqlite3") as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == 2
    env = {"MOCK_KMS_ROOT_KEY": (data_dir / "root.key").read_text().strip()}
    with running_hosts(
        tmp_path / "hosts", count=1, env=env, database_url=url, extra_args=["--no-s3"]
    ) as group:
        kms = _kms(group.hosts[0])
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"from schema 2"
        assert kms.describe_key(KeyId="alias/old")["KeyMetadata"]["KeyId"] == key_id


def test_s3_dir_with_another_master_key_is_refused(
    deployment: Deployment, postgres: PostgresServer, tmp_path: Path
) -> None:
    """An --s3-dir where hosts already made their own SSE-S3 master key: the source's SSE-S3
    objects would not open under it, so nothing is copied."""
    from local_secrets.root_key import load_root_key
    from s3_service.sse_s3 import load_master_key

    s3_dir = tmp_path / "s3"
    load_master_key(s3_dir, load_root_key(deployment.data_dir, None, create=False), create=True)
    before = (s3_dir / "master-key.bin").read_bytes()
    url = postgres.create_database()
    result = migrate("--from", str(deployment.data_dir), "--to", url, "--s3-dir", str(s3_dir))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mock-kms: error: {s3_dir / 'master-key.bin'} holds another S3 master key (hosts"
        f" already started on --s3-dir {s3_dir}?): SSE-S3 objects of the source would not open"
        " under it; migrate into an --s3-dir no host has used yet"
    ]
    assert (s3_dir / "master-key.bin").read_bytes() == before
    assert not (s3_dir / "blobs").exists() or not any((s3_dir / "blobs").iterdir())
    assert _rows(url, "SELECT count(*) FROM keys")[0][0] == 0
