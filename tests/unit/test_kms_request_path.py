"""``POST /`` is answered by :class:`KmsRequestPath` without Flask's request context; every
other KMS path still goes through Flask's routing to ``dispatch``. Both must give the same
answers: same status, same AWS error, same headers, same results."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client, TestResponse

from kms_service.serving.app import create_app
from kms_service.settings import Settings
from kms_service.wire.blueprint import KmsRequestPath

AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=AKIAREQUESTPATH/20260101/us-east-1/kms/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
)


@pytest.fixture()
def app(tmp_path: Path) -> Iterator[Flask]:
    application = create_app(
        Settings.from_sources({"data_dir": tmp_path, "bind": "127.0.0.1:4599"}, environ={})
    )
    yield application
    application.extensions["mock_kms.services"].close()


def call(
    client: Client, path: str, target: str | None, body: bytes, method: str = "POST"
) -> TestResponse:
    headers = {"Content-Type": "application/x-amz-json-1.1", "Authorization": AUTHORIZATION}
    if target is not None:
        headers["X-Amz-Target"] = f"TrentService.{target}"
    return client.open(path, method=method, data=body, headers=headers)


def shape(response: TestResponse) -> tuple[int, str | None, str | None, set[str]]:
    """What must match between the two paths (request ids differ by design)."""
    error = response.headers.get("X-Amzn-ErrorType")
    kind = json.loads(response.data).get("__type") if response.data else None
    return response.status_code, error, kind, {name.lower() for name, _ in response.headers.items()}


def test_the_app_routes_post_slash_to_the_fast_path(app: Flask) -> None:
    wrapped: Any = app.wsgi_app
    seen = []
    while wrapped is not None:
        seen.append(type(wrapped))
        wrapped = getattr(wrapped, "downstream", None) or getattr(wrapped, "kms", None)
    assert KmsRequestPath in seen


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("ListKeys", b"{}"),
        ("CreateKey", b'{"Description": "x"}'),
        ("Encrypt", b'{"KeyId": "not-a-key", "Plaintext": "eA=="}'),
        ("Encrypt", b'{"KeyId": 3}'),
        ("GenerateRandom", b'{"NumberOfBytes": 5000}'),
        ("NoSuchOperation", b"{}"),
        ("ListKeys", b"{not json"),
        (None, b"{}"),
    ],
)
def test_slash_and_other_paths_answer_alike(app: Flask, target: str | None, body: bytes) -> None:
    client = Client(app)
    fast = call(client, "/", target, body)
    routed = call(client, "/some/path", target, body)
    assert shape(fast) == shape(routed)
    assert fast.headers["Content-Type"] == "application/x-amz-json-1.1"
    assert len(fast.headers["x-amzn-RequestId"]) == 36
    assert fast.headers["Content-Length"] == str(len(fast.data))


def test_a_key_made_on_one_path_is_used_on_the_other(app: Flask) -> None:
    client = Client(app)
    created = call(client, "/", "CreateKey", b"{}")
    assert created.status_code == 200
    key_id = json.loads(created.data)["KeyMetadata"]["KeyId"]
    plaintext = base64.b64encode(b"secret").decode()
    body = json.dumps({"KeyId": key_id, "Plaintext": plaintext}).encode()
    encrypted = call(client, "/elsewhere", "Encrypt", body)
    assert encrypted.status_code == 200
    blob = json.loads(encrypted.data)["CiphertextBlob"]
    decrypted = call(client, "/", "Decrypt", json.dumps({"CiphertextBlob": blob}).encode())
    assert json.loads(decrypted.data)["Plaintext"] == plaintext


def test_other_methods_on_slash_still_go_through_flask(app: Flask) -> None:
    """GET / with a KMS target is Flask's 405, in the AWS error shape, as before."""
    response = call(Client(app), "/", "ListKeys", b"", method="GET")
    assert response.status_code == 405
    assert json.loads(response.data)["__type"] == "UnknownOperationException"


def test_the_body_cap_holds_on_the_fast_path(app: Flask) -> None:
    limit = int(app.config["MAX_CONTENT_LENGTH"])
    response = call(Client(app), "/", "ListKeys", b" " * (limit + 1))
    assert response.status_code == 413
    assert json.loads(response.data)["__type"] == "RequestEntityTooLargeException"
