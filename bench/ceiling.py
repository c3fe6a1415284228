"""The ceiling: the fastest a Flask app under mock-kms's gunicorn settings can answer.

Its handler does only what any KMS has to do for the three benchmarked operations: read the
JSON body, ``os.urandom`` (data key and nonce) plus one AES-GCM operation under one fixed key,
and answer the same JSON shape as mock-kms (blob framing of the same length, key ARN,
key-material id). No key lookup, no validation, no authentication, no error shapes.

It runs under :class:`kms_service.serving.server.MockKmsServer` itself, so whatever worker model,
worker count and thread count mock-kms uses, the ceiling uses too.

Run: ``python -m bench.ceiling --bind 127.0.0.1:PORT [--workers N] [--threads N]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Flask, Response, request

from kms_service.serving.server import MockKmsServer
from kms_service.settings import Settings

CONTENT_TYPE = "application/x-amz-json-1.1"
KEY_ID = "00000000-0000-4000-8000-000000000000"
KEY_ARN = f"arn:aws:kms:us-east-1:111122223333:key/{KEY_ID}"
MATERIAL_ID = "00" * 32
NONCE_SIZE = 12
# Same length as mock-kms's blob header (version, backend, id length, key id, material id),
# so both answer blobs of the same size.
HEADER = bytes((1, 1, len(KEY_ID))) + KEY_ID.encode("ascii") + bytes.fromhex(MATERIAL_ID)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def create_ceiling_app() -> Flask:
    """A Flask app answering GenerateDataKey, Encrypt and Decrypt in mock-kms's JSON shape."""
    app = Flask("ceiling")
    # One fixed key for every worker: a blob sealed by one worker must open in the other. It
    # protects nothing; this app exists only to be measured.
    cipher = AESGCM(bytes(range(32)))

    def seal(plaintext: bytes) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        return HEADER + nonce + cipher.encrypt(nonce, plaintext, HEADER)

    @app.post("/")
    def dispatch() -> Response:
        operation = request.headers.get("X-Amz-Target", "").removeprefix("TrentService.")
        body: dict[str, Any] = json.loads(request.get_data() or b"{}")
        result: dict[str, Any]
        if operation == "GenerateDataKey":
            data_key = os.urandom(32)
            result = {
                "CiphertextBlob": _b64(seal(data_key)),
                "Plaintext": _b64(data_key),
                "KeyId": KEY_ARN,
                "KeyMaterialId": MATERIAL_ID,
            }
        elif operation == "Encrypt":
            result = {
                "CiphertextBlob": _b64(seal(base64.b64decode(body["Plaintext"]))),
                "KeyId": KEY_ARN,
                "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
            }
        elif operation == "Decrypt":
            blob = base64.b64decode(body["CiphertextBlob"])
            nonce = blob[len(HEADER) : len(HEADER) + NONCE_SIZE]
            plaintext = cipher.decrypt(nonce, blob[len(HEADER) + NONCE_SIZE :], HEADER)
            result = {
                "KeyId": KEY_ARN,
                "Plaintext": _b64(plaintext),
                "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                "KeyMaterialId": MATERIAL_ID,
            }
        else:
            return Response(
                json.dumps({"__type": "UnknownOperationException"}),
                status=400,
                content_type=CONTENT_TYPE,
            )
        return Response(
            json.dumps(result, separators=(",", ":")),
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
            content_type=CONTENT_TYPE,
        )

    @app.get("/healthz")
    def healthz() -> Response:
        return Response('{"status": "ok"}', content_type="application/json")

    return app


class CeilingServer(MockKmsServer):
    """mock-kms's own gunicorn configuration, serving the ceiling app instead."""

    def load(self) -> Any:
        return create_ceiling_app()


def main(argv: list[str] | None = None) -> int:
    """Serve the ceiling app until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", required=True)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    options = {"bind": args.bind, "workers": args.workers, "threads": args.threads}
    # Settings.from_sources: the ceiling gets the same defaults (and MOCK_KMS_* overrides)
    # as `mock-kms serve`; the data dir is never touched by the ceiling app.
    settings = Settings.from_sources(options).with_changes(data_dir=Path(os.devnull))
    CeilingServer(settings).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
