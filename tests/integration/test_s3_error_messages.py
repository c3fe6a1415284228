"""Every S3 error carries a message, as S3's do: a KMS error the KMS sent without one
(``InvalidCiphertextException``) reaches the AWS CLI and boto3 with a message, never as
``<Message />`` (on which the AWS CLI fails with ``argument of type 'NoneType' is not
iterable`` instead of reporting the error)."""

from __future__ import annotations

import base64
import json
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.sse import sse_kms
from tests.support.s3 import aws_cli, fails, s3_client
from tests.support.server import RunningServer, running_server
from tests.support.wire import raw_request

BUCKET = "messages"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("s3msg") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def tampered(server: RunningServer) -> str:
    """An SSE-KMS object whose stored data key no longer decrypts: its KMS ciphertext's last
    byte (the GCM tag) is flipped in the database, so the KMS answers
    ``InvalidCiphertextException``, which it sends with no message."""
    s3 = s3_client(server)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="tampered", Body=b"payload", **sse_kms())
    database = server.data_dir / "s3" / "s3.sqlite3"
    with sqlite3.connect(database) as db:
        (envelope,) = db.execute(
            "SELECT envelope FROM objects WHERE bucket = ? AND key = ?", (BUCKET, b"tampered")
        ).fetchone()
        stored = json.loads(envelope)
        blob = bytearray(base64.b64decode(stored["ciphertext"]))
        blob[-1] ^= 0x01
        stored["ciphertext"] = base64.b64encode(bytes(blob)).decode()
        db.execute(
            "UPDATE objects SET envelope = ? WHERE bucket = ? AND key = ?",
            (json.dumps(stored), BUCKET, b"tampered"),
        )
    return "tampered"


def test_passed_through_kms_error_has_a_message_on_the_wire(
    server: RunningServer, tampered: str
) -> None:
    response = raw_request(server.port, b"", method="GET", path=f"/{BUCKET}/{tampered}")
    assert response.status == 400
    root = ET.fromstring(response.body)
    assert root.findtext("Code") == "KMS.InvalidCiphertextException"
    assert (root.findtext("Message") or "").strip()


def test_boto3_reads_the_message(server: RunningServer, tampered: str) -> None:
    status, code, message = fails(s3_client(server).get_object, Bucket=BUCKET, Key=tampered)
    assert (status, code) == (400, "KMS.InvalidCiphertextException")
    assert "InvalidCiphertextException" in message


@pytest.mark.parametrize(
    "command",
    [
        ["s3api", "get-object", "--bucket", BUCKET, "--key", "tampered"],
        ["s3", "cp", f"s3://{BUCKET}/tampered"],
    ],
    ids=["s3api", "s3"],
)
def test_aws_cli_reports_the_error(
    server: RunningServer, tampered: str, tmp_path: Path, command: list[str]
) -> None:
    result = aws_cli(server, *command, str(tmp_path / "out"), check=False)
    assert result.returncode != 0
    assert "NoneType" not in result.stderr
    assert "KMS.InvalidCiphertextException" in result.stderr, result.stderr
