"""S3 honours access control (sigv4 mode): SSE-KMS calls KMS as the S3 caller with
``kms:ViaService``, key policies refuse uploads and downloads with S3's 403, and the S3
endpoint verifies signatures (boto3, presigned URLs, the AWS CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.support.server import RunningServer, start_server

A = "111122223333"
REGION = "us-east-1"
ADMIN = ("AKIDS3ADMIN00001", "s3-admin-secret")
UPLOADER = ("AKIDS3UPLOADER01", "s3-uploader-secret")
VIA_ONLY = ("AKIDS3VIAONLY001", "s3-via-secret")
UPLOADER_ARN = f"arn:aws:iam::{A}:user/uploader"
VIA_ONLY_ARN = f"arn:aws:iam::{A}:user/via-only"
ADMIN_ARN = f"arn:aws:iam::{A}:user/admin"
CREDENTIALS = f"""\
[admin]
aws_access_key_id = {ADMIN[0]}
aws_secret_access_key = {ADMIN[1]}

[uploader]
aws_access_key_id = {UPLOADER[0]}
aws_secret_access_key = {UPLOADER[1]}

[via-only]
aws_access_key_id = {VIA_ONLY[0]}
aws_secret_access_key = {VIA_ONLY[1]}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("access-s3")
    credentials = root / "credentials"
    credentials.write_text(CREDENTIALS)
    started = start_server(
        root / "data",
        workers=2,
        env={"MOCK_KMS_AUTH": "sigv4", "MOCK_KMS_CREDENTIALS_FILE": str(credentials)},
    )
    try:
        yield started
    finally:
        started.stop()


def client(server: RunningServer, service: str, who: tuple[str, str], **config: Any) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.endpoint,
        region_name=REGION,
        aws_access_key_id=who[0],
        aws_secret_access_key=who[1],
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
            **config,
        ),
    )


def s3_error(call: Any, **kwargs: Any) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response["Error"].get("Message", ""),
    )


@pytest.fixture(scope="module")
def key_arn(server: RunningServer) -> str:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Admin",
                "Effect": "Allow",
                "Principal": {"AWS": ADMIN_ARN},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "Upload only",
                "Effect": "Allow",
                "Principal": {"AWS": UPLOADER_ARN},
                "Action": "kms:GenerateDataKey",
                "Resource": "*",
            },
            {
                "Sid": "Through S3 only",
                "Effect": "Allow",
                "Principal": {"AWS": VIA_ONLY_ARN},
                "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "kms:ViaService": f"s3.{REGION}.amazonaws.com",
                        "kms:CallerAccount": A,
                    }
                },
            },
        ],
    }
    kms = client(server, "kms", ADMIN)
    arn: str = kms.create_key(Policy=json.dumps(policy))["KeyMetadata"]["Arn"]
    client(server, "s3", ADMIN).create_bucket(Bucket="vault")
    return arn


def put(s3: Any, key: str, key_arn: str, body: bytes = b"secret data") -> Any:
    return s3.put_object(
        Bucket="vault", Key=key, Body=body, ServerSideEncryption="aws:kms", SSEKMSKeyId=key_arn
    )


def test_key_policy_decides_uploads_and_downloads(server: RunningServer, key_arn: str) -> None:
    admin = client(server, "s3", ADMIN)
    uploader = client(server, "s3", UPLOADER)
    put(uploader, "from-uploader", key_arn)
    status, code, message = s3_error(uploader.get_object, Bucket="vault", Key="from-uploader")
    assert (status, code) == (403, "AccessDenied")
    assert f"User: {UPLOADER_ARN} is not authorized to perform: kms:Decrypt" in message
    assert admin.get_object(Bucket="vault", Key="from-uploader")["Body"].read() == b"secret data"


def test_a_via_service_policy_works_through_s3_only(server: RunningServer, key_arn: str) -> None:
    s3 = client(server, "s3", VIA_ONLY)
    put(s3, "via", key_arn, b"through s3")
    assert s3.get_object(Bucket="vault", Key="via")["Body"].read() == b"through s3"
    kms = client(server, "kms", VIA_ONLY)
    with pytest.raises(ClientError) as caught:
        kms.generate_data_key(KeyId=key_arn, KeySpec="AES_256")
    assert caught.value.response["Error"]["Code"] == "AccessDeniedException"
    assert (
        "because no resource-based policy allows the kms:GenerateDataKey action"
        in (caught.value.response["Error"]["Message"])
    )


def test_a_refused_upload_names_the_kms_action(server: RunningServer, key_arn: str) -> None:
    other_key = client(server, "kms", ADMIN).create_key(
        Policy=json.dumps(
            {
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"AWS": ADMIN_ARN},
                        "Action": "kms:*",
                        "Resource": "*",
                    }
                ]
            }
        )
    )["KeyMetadata"]["Arn"]
    status, code, message = s3_error(
        put, s3=client(server, "s3", UPLOADER), key="refused", key_arn=other_key
    )
    assert (status, code) == (403, "AccessDenied")
    assert "kms:GenerateDataKey" in message and UPLOADER_ARN in message


def test_signatures_are_checked(server: RunningServer, key_arn: str) -> None:
    wrong = client(server, "s3", (ADMIN[0], "not-the-secret"))
    assert s3_error(wrong.list_objects_v2, Bucket="vault")[:2] == (403, "SignatureDoesNotMatch")
    unknown = client(server, "s3", ("AKIDNOBODY", "x"))
    assert s3_error(unknown.list_objects_v2, Bucket="vault")[:2] == (403, "InvalidAccessKeyId")
    anonymous = client(server, "s3", ADMIN, signature_version=UNSIGNED)
    assert s3_error(anonymous.list_objects_v2, Bucket="vault")[:2] == (403, "AccessDenied")


def _raw(server: RunningServer, request: AWSRequest) -> tuple[int, bytes]:
    prepared = request.prepare()
    raw = urllib.request.Request(
        prepared.url,
        data=prepared.body,
        method=prepared.method,
        headers=dict(prepared.headers.items()),
    )
    try:
        with urllib.request.urlopen(raw, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_request_time_too_skewed(server: RunningServer) -> None:
    request = AWSRequest(
        method="GET",
        url=f"{server.endpoint}/vault?list-type=2",
        headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"},
    )
    S3SigV4Auth(Credentials(*ADMIN), "s3", REGION).add_auth(request)
    request.headers.replace_header("X-Amz-Date", "20200101T000000Z")
    status, body = _raw(server, request)
    assert status == 403 and b"<Code>RequestTimeTooSkewed</Code>" in body


def test_unsigned_payload_and_presigned_urls(server: RunningServer, key_arn: str) -> None:
    admin = client(server, "s3", ADMIN, signature_version="s3v4")
    put(admin, "shared", key_arn, b"presigned body")
    # UNSIGNED-PAYLOAD, as SDKs send over HTTPS.
    request = AWSRequest(
        method="GET",
        url=f"{server.endpoint}/vault/shared",
        headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"},
    )
    S3SigV4Auth(Credentials(*ADMIN), "s3", REGION).add_auth(request)
    assert _raw(server, request) == (200, b"presigned body")
    url = admin.generate_presigned_url(
        "get_object", Params={"Bucket": "vault", "Key": "shared"}, ExpiresIn=60
    )
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"presigned body"
    tampered = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(tampered, timeout=10)
    assert caught.value.code == 403 and b"SignatureDoesNotMatch" in caught.value.read()
    short = admin.generate_presigned_url(
        "get_object", Params={"Bucket": "vault", "Key": "shared"}, ExpiresIn=1
    )
    time.sleep(2.1)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(short, timeout=10)
    body = caught.value.read()
    assert caught.value.code == 403 and b"<Message>Request has expired</Message>" in body
    # Presigned as someone the key policy refuses: S3's 403 from KMS.
    uploader = client(server, "s3", UPLOADER, signature_version="s3v4")
    refused = uploader.generate_presigned_url(
        "get_object", Params={"Bucket": "vault", "Key": "shared"}, ExpiresIn=60
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(refused, timeout=10)
    assert caught.value.code == 403 and b"kms:Decrypt" in caught.value.read()
    # boto3's default presigning (SigV2) is not SigV4: refused in sigv4 mode.
    legacy = client(server, "s3", ADMIN).generate_presigned_url(
        "get_object", Params={"Bucket": "vault", "Key": "shared"}, ExpiresIn=60
    )
    assert "AWSAccessKeyId=" in legacy
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(legacy, timeout=10)
    assert caught.value.code == 403 and b"<Code>AccessDenied</Code>" in caught.value.read()


def test_the_aws_cli_uploads_and_downloads(
    server: RunningServer, key_arn: str, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(CREDENTIALS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        AWS_CONFIG_FILE="/dev/null",
        AWS_DEFAULT_REGION=REGION,
    )
    aws = str(Path(sys.executable).with_name("aws"))
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(9 * 1024 * 1024))  # multipart with the CLI's defaults

    def cli(profile: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [aws, "s3", *args, "--profile", profile, "--endpoint-url", server.endpoint],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    uploaded = cli(
        "admin",
        "cp",
        str(source),
        "s3://vault/cli.bin",
        "--sse",
        "aws:kms",
        "--sse-kms-key-id",
        key_arn,
    )
    assert uploaded.returncode == 0, uploaded.stderr
    target = tmp_path / "back.bin"
    downloaded = cli("admin", "cp", "s3://vault/cli.bin", str(target))
    assert downloaded.returncode == 0, downloaded.stderr
    assert target.read_bytes() == source.read_bytes()
    refused = cli("uploader", "cp", "s3://vault/cli.bin", str(tmp_path / "no.bin"))
    assert refused.returncode != 0
    assert "AccessDenied" in refused.stderr or "403" in refused.stderr


def test_open_mode_s3_callers_take_their_identities(tmp_path: Path) -> None:
    """Open mode: nothing is verified, but an access key id from the file is that profile's
    identity for SSE-KMS too, so key policies still decide for S3 callers."""
    credentials = tmp_path / "credentials"
    credentials.write_text(CREDENTIALS)
    started = start_server(
        tmp_path / "data",
        workers=2,
        env={"MOCK_KMS_AUTH": "open", "MOCK_KMS_CREDENTIALS_FILE": str(credentials)},
    )
    try:
        policy = {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": ADMIN_ARN},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": UPLOADER_ARN},
                    "Action": "kms:GenerateDataKey",
                    "Resource": "*",
                },
            ]
        }
        key_arn = client(started, "kms", ADMIN).create_key(Policy=json.dumps(policy))[
            "KeyMetadata"
        ]["Arn"]
        admin = client(started, "s3", ADMIN)
        admin.create_bucket(Bucket="open-vault")
        uploader = client(started, "s3", (UPLOADER[0], "any secret at all"))
        uploader.put_object(
            Bucket="open-vault",
            Key="k",
            Body=b"v",
            ServerSideEncryption="aws:kms",
            SSEKMSKeyId=key_arn,
        )
        status, code, message = s3_error(uploader.get_object, Bucket="open-vault", Key="k")
        assert (status, code) == (403, "AccessDenied") and "kms:Decrypt" in message
        assert admin.get_object(Bucket="open-vault", Key="k")["Body"].read() == b"v"
        # Anyone else is an account root: the root of 111122223333 is not named either.
        stranger = client(started, "s3", ("AKIDSTRANGER", "x"))
        status, code, message = s3_error(stranger.get_object, Bucket="open-vault", Key="k")
        assert (status, code) == (403, "AccessDenied")
        assert f"User: arn:aws:iam::{A}:root is not authorized" in message
    finally:
        started.stop()
