"""The ceiling: the fastest a Flask app under mock-kms's gunicorn settings can answer.

Its handler does only what any KMS has to do for the benchmarked operations: read the JSON
body, then the raw `cryptography` operation under fixed keys: ``os.urandom`` plus one AES-GCM
operation (GenerateDataKey, Encrypt, Decrypt), an RSA-PSS or ECDSA signature (Sign), an ECDSA
verification (Verify), an HMAC (GenerateMac), a P-256 key pair sealed with AES-GCM
(GenerateDataKeyPair), and answer the same JSON shape as mock-kms (blob framing of the same
length, key ARN, key-material id). No key lookup, no validation, no authentication, no error
shapes.

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

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hmac import HMAC
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


#: The ceiling's RSA key, made once in the master and inherited by every worker (through the
#: environment, as PKCS#8 DER in hex) so that all workers sign with the same key.
RSA_KEY_VARIABLE = "MOCK_KMS_CEILING_RSA_KEY"
#: A fixed P-256 scalar: every worker derives the same ECDSA key from it.
EC_SCALAR = int.from_bytes(bytes(range(1, 33)), "big")
HMAC_KEY = bytes(range(32, 64))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _rsa_key() -> rsa.RSAPrivateKey:
    encoded = os.environ.get(RSA_KEY_VARIABLE)
    if encoded is None:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = serialization.load_der_private_key(bytes.fromhex(encoded), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _key_type_result(operation: str, body: dict[str, Any], seal: Any) -> dict[str, Any] | None:
    """The asymmetric and HMAC operations, or None for another operation."""
    if operation == "Sign":
        message = base64.b64decode(body["Message"])
        if body["SigningAlgorithm"].startswith("RSASSA_PSS"):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            signature = RSA_KEY.sign(message, pss, hashes.SHA256())
        else:
            signature = EC_KEY.sign(message, ec.ECDSA(hashes.SHA256()))
        return {"KeyId": KEY_ARN, "Signature": _b64(signature),
                "SigningAlgorithm": body["SigningAlgorithm"]}  # fmt: skip
    if operation == "Verify":
        EC_KEY.public_key().verify(
            base64.b64decode(body["Signature"]),
            base64.b64decode(body["Message"]),
            ec.ECDSA(hashes.SHA256()),
        )
        return {"KeyId": KEY_ARN, "SignatureValid": True,
                "SigningAlgorithm": body["SigningAlgorithm"]}  # fmt: skip
    if operation == "GenerateMac":
        mac = HMAC(HMAC_KEY, hashes.SHA256())
        mac.update(base64.b64decode(body["Message"]))
        return {"Mac": _b64(mac.finalize()), "MacAlgorithm": body["MacAlgorithm"],
                "KeyId": KEY_ARN}  # fmt: skip
    if operation == "GenerateDataKeyPair":
        private = ec.generate_private_key(ec.SECP256R1())
        private_der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public_der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {
            "PrivateKeyCiphertextBlob": _b64(seal(private_der)),
            "PrivateKeyPlaintext": _b64(private_der),
            "PublicKey": _b64(public_der),
            "KeyId": KEY_ARN,
            "KeyPairSpec": body["KeyPairSpec"],
            "KeyMaterialId": MATERIAL_ID,
        }
    return None


RSA_KEY = _rsa_key()
EC_KEY = ec.derive_private_key(EC_SCALAR, ec.SECP256R1())


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
            key_type_result = _key_type_result(operation, body, seal)
            if key_type_result is None:
                return Response(
                    json.dumps({"__type": "UnknownOperationException"}),
                    status=400,
                    content_type=CONTENT_TYPE,
                )
            result = key_type_result
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
    # One RSA key for every worker (they fork from this process and inherit the variable).
    os.environ[RSA_KEY_VARIABLE] = RSA_KEY.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).hex()
    CeilingServer(settings).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
