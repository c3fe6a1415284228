"""The bench ceiling answers the key-type operations with real cryptography (so the figures it
sets are for the same work mock-kms does), in mock-kms's response shape."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from bench.ceiling import EC_KEY, HMAC_KEY, KEY_ARN, RSA_KEY, create_ceiling_app

MESSAGE = b"bench message"


def _call(client: Any, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        "/", data=json.dumps(body), headers={"X-Amz-Target": f"TrentService.{operation}"}
    )
    assert response.status_code == 200, response.data
    answer: dict[str, Any] = json.loads(response.data)
    return answer


def test_ceiling_signs_verifies_macs_and_makes_pairs() -> None:
    client = create_ceiling_app().test_client()
    message = base64.b64encode(MESSAGE).decode()
    pss = _call(
        client, "Sign", {"KeyId": "k", "Message": message, "SigningAlgorithm": "RSASSA_PSS_SHA_256"}
    )
    assert pss["KeyId"] == KEY_ARN
    RSA_KEY.public_key().verify(
        base64.b64decode(pss["Signature"]), MESSAGE,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256(),
    )  # fmt: skip
    ecdsa = _call(
        client, "Sign", {"KeyId": "k", "Message": message, "SigningAlgorithm": "ECDSA_SHA_256"}
    )
    EC_KEY.public_key().verify(
        base64.b64decode(ecdsa["Signature"]), MESSAGE, ec.ECDSA(hashes.SHA256())
    )
    verify = {"KeyId": "k", "Message": message, "SigningAlgorithm": "ECDSA_SHA_256"}
    verified = _call(client, "Verify", {**verify, "Signature": ecdsa["Signature"]})
    assert verified["SignatureValid"] is True
    mac = _call(
        client, "GenerateMac", {"KeyId": "k", "Message": message, "MacAlgorithm": "HMAC_SHA_256"}
    )
    assert base64.b64decode(mac["Mac"]) == hmac.new(HMAC_KEY, MESSAGE, hashlib.sha256).digest()
    pair = _call(client, "GenerateDataKeyPair", {"KeyId": "k", "KeyPairSpec": "ECC_NIST_P256"})
    private = serialization.load_der_private_key(
        base64.b64decode(pair["PrivateKeyPlaintext"]), None
    )
    assert private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == base64.b64decode(pair["PublicKey"])
    assert len(base64.b64decode(pair["PrivateKeyCiphertextBlob"])) > len(
        base64.b64decode(pair["PrivateKeyPlaintext"])
    )
