"""Sign, Verify and GetPublicKey: every signing algorithm of every spec, RAW and DIGEST,
checked by code no one here wrote (`cryptography`, the openssl command line, PyJWT), and
every error AWS gives for bad input."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from backends import ed25519ph
from clients.kms import KmsClient as ThinClient
from tests.support.key_kinds import create_key_of, declared, public_key_of, public_pem
from tests.support.kms_ops import NO_MESSAGE, KmsClient, account_of, create_key, expect_error
from tests.support.server import RunningServer

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
MESSAGE = b"a message signed by mock-kms"

#: Every signing algorithm at least once and every spec at least once.
CASES = [
    ("RSA_2048", "RSASSA_PSS_SHA_256"),
    ("RSA_2048", "RSASSA_PSS_SHA_384"),
    ("RSA_2048", "RSASSA_PSS_SHA_512"),
    ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"),
    ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_384"),
    ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_512"),
    ("RSA_3072", "RSASSA_PSS_SHA_384"),
    ("RSA_4096", "RSASSA_PKCS1_V1_5_SHA_512"),
    ("ECC_NIST_P256", "ECDSA_SHA_256"),
    ("ECC_NIST_P384", "ECDSA_SHA_384"),
    ("ECC_NIST_P521", "ECDSA_SHA_512"),
    ("ECC_SECG_P256K1", "ECDSA_SHA_256"),
    ("ECC_NIST_EDWARDS25519", "ED25519_SHA_512"),
    ("ECC_NIST_EDWARDS25519", "ED25519_PH_SHA_512"),
    ("ML_DSA_44", "ML_DSA_SHAKE_256"),
    ("ML_DSA_65", "ML_DSA_SHAKE_256"),
    ("ML_DSA_87", "ML_DSA_SHAKE_256"),
]


def _hash_of(algorithm: str) -> type[hashes.HashAlgorithm]:
    return HASHES[algorithm.rsplit("_", 1)[1]]


def _digest(algorithm: str, message: bytes) -> bytes:
    digest = hashes.Hash(_hash_of(algorithm)())
    digest.update(message)
    return digest.finalize()


def verify_offline(public: object, algorithm: str, message: bytes, signature: bytes) -> None:
    """Verify with `cryptography` alone (raises InvalidSignature on failure)."""
    if algorithm == "ED25519_PH_SHA_512":
        assert isinstance(public, ed25519.Ed25519PublicKey)
        raw = public.public_bytes_raw()
        assert ed25519ph.verify(raw, hashlib.sha512(message).digest(), signature)
    elif algorithm == "ED25519_SHA_512":
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(signature, message)
    elif algorithm == "ML_DSA_SHAKE_256":
        public.verify(signature, message)  # type: ignore[attr-defined]
    elif algorithm.startswith("ECDSA"):
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, message, ec.ECDSA(_hash_of(algorithm)()))
    else:
        assert isinstance(public, rsa.RSAPublicKey)
        hash_type = _hash_of(algorithm)
        scheme = (
            padding.PSS(mgf=padding.MGF1(hash_type()), salt_length=hash_type().digest_size)
            if "PSS" in algorithm
            else padding.PKCS1v15()
        )
        public.verify(signature, message, scheme, hash_type())


@pytest.mark.parametrize(("spec", "algorithm"), CASES)
def test_signatures_verify_offline_and_in_kms(kms: KmsClient, spec: str, algorithm: str) -> None:
    key = create_key_of(kms, spec, "SIGN_VERIFY")
    public = public_key_of(kms, key["KeyId"])
    if algorithm == "ED25519_PH_SHA_512":
        kinds = [("DIGEST", hashlib.sha512(MESSAGE).digest())]
    elif algorithm in ("ED25519_SHA_512", "ML_DSA_SHAKE_256"):
        kinds = [("RAW", MESSAGE)]
    else:
        kinds = [("RAW", MESSAGE), ("DIGEST", _digest(algorithm, MESSAGE))]
    for message_type, message in kinds:
        signed = declared(
            lambda message=message, message_type=message_type: kms.sign(
                KeyId=key["KeyId"], Message=message, MessageType=message_type,
                SigningAlgorithm=algorithm,
            )
        )  # fmt: skip
        assert signed["KeyId"] == key["Arn"]
        assert signed["SigningAlgorithm"] == algorithm
        verify_offline(public, algorithm, MESSAGE, signed["Signature"])
        verified = kms.verify(
            KeyId=key["KeyId"], Message=message, MessageType=message_type,
            Signature=signed["Signature"], SigningAlgorithm=algorithm,
        )  # fmt: skip
        assert verified["SignatureValid"] is True
        assert verified["KeyId"] == key["Arn"]
        with expect_error("KMSInvalidSignatureException", NO_MESSAGE):
            kms.verify(
                KeyId=key["KeyId"], Message=message[:-1] + bytes([message[-1] ^ 1]),
                MessageType=message_type, Signature=signed["Signature"],
                SigningAlgorithm=algorithm,
            )  # fmt: skip


def test_signature_made_offline_style_checks_the_digest_form(kms: KmsClient) -> None:
    """A RAW signature verifies as DIGEST of the same message's hash, and not as RAW of it."""
    key = create_key_of(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    signature = kms.sign(KeyId=key["KeyId"], Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256")[
        "Signature"
    ]
    digest = hashlib.sha256(MESSAGE).digest()
    assert kms.verify(
        KeyId=key["KeyId"], Message=digest, MessageType="DIGEST", Signature=signature,
        SigningAlgorithm="ECDSA_SHA_256",
    )["SignatureValid"]  # fmt: skip
    with expect_error("KMSInvalidSignatureException", NO_MESSAGE):
        kms.verify(
            KeyId=key["KeyId"], Message=digest, Signature=signature,
            SigningAlgorithm="ECDSA_SHA_256",
        )  # fmt: skip


def test_raw_messages_up_to_4096_bytes(kms: KmsClient) -> None:
    key = create_key_of(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    longest = bytes(4096)
    signature = kms.sign(KeyId=key["KeyId"], Message=longest, SigningAlgorithm="ECDSA_SHA_256")
    verify_offline(
        public_key_of(kms, key["KeyId"]), "ECDSA_SHA_256", longest, signature["Signature"]
    )
    with expect_error(
        "ValidationException",
        "1 validation error detected: Value at 'message' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096",
    ):
        kms.sign(KeyId=key["KeyId"], Message=bytes(4097), SigningAlgorithm="ECDSA_SHA_256")


# --- interoperability: openssl and a JWT library -------------------------------------------
def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("spec", "algorithm", "options"),
    [
        ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256", ["-sha256"]),
        ("RSA_3072", "RSASSA_PSS_SHA_384",
         ["-sha384", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:-1"]),
        ("ECC_NIST_P256", "ECDSA_SHA_256", ["-sha256"]),
        ("ECC_NIST_P384", "ECDSA_SHA_384", ["-sha384"]),
        ("ECC_SECG_P256K1", "ECDSA_SHA_256", ["-sha256"]),
    ],
)  # fmt: skip
def test_openssl_dgst_verifies_kms_signatures(
    kms: KmsClient, tmp_path: Path, spec: str, algorithm: str, options: list[str]
) -> None:
    key = create_key_of(kms, spec, "SIGN_VERIFY")
    message = tmp_path / "message.txt"
    message.write_bytes(MESSAGE)
    signature = tmp_path / "signature.bin"
    signature.write_bytes(
        declared(lambda: kms.sign(KeyId=key["KeyId"], Message=MESSAGE, SigningAlgorithm=algorithm))[
            "Signature"
        ]
    )
    pem = public_pem(kms, key["KeyId"], tmp_path / "public.pem")
    good = _openssl(
        "dgst", *options, "-verify", str(pem), "-signature", str(signature), str(message)
    )
    assert good.returncode == 0 and "Verified OK" in good.stdout, good.stderr
    message.write_bytes(MESSAGE + b"!")
    bad = _openssl(
        "dgst", *options, "-verify", str(pem), "-signature", str(signature), str(message)
    )
    assert bad.returncode != 0 and "verification failure" in bad.stdout.lower()


def test_openssl_pkeyutl_verifies_ed25519(kms: KmsClient, tmp_path: Path) -> None:
    key = create_key_of(kms, "ECC_NIST_EDWARDS25519", "SIGN_VERIFY")
    message = tmp_path / "message.txt"
    message.write_bytes(MESSAGE)
    signature = tmp_path / "signature.bin"
    signature.write_bytes(
        declared(
            lambda: kms.sign(
                KeyId=key["KeyId"], Message=MESSAGE, SigningAlgorithm="ED25519_SHA_512"
            )
        )["Signature"]
    )
    pem = public_pem(kms, key["KeyId"], tmp_path / "public.pem")
    args = ["pkeyutl", "-verify", "-pubin", "-inkey", str(pem), "-rawin", "-in", str(message),
            "-sigfile", str(signature)]  # fmt: skip
    good = _openssl(*args)
    assert good.returncode == 0 and "Signature Verified Successfully" in good.stdout, good.stderr
    message.write_bytes(MESSAGE + b"!")
    assert _openssl(*args).returncode != 0


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("jwt_algorithm", "spec", "kms_algorithm"),
    [
        ("RS256", "RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"),
        ("PS256", "RSA_2048", "RSASSA_PSS_SHA_256"),
        ("ES256", "ECC_NIST_P256", "ECDSA_SHA_256"),
        ("EdDSA", "ECC_NIST_EDWARDS25519", "ED25519_SHA_512"),
    ],
)
def test_jwt_signed_by_kms_verifies_with_pyjwt(
    kms_server: RunningServer, kms: KmsClient, jwt_algorithm: str, spec: str, kms_algorithm: str
) -> None:
    """The thin client signs a JWT's signing input; PyJWT verifies it with the public key."""
    key = create_key_of(kms, spec, "SIGN_VERIFY")
    thin = ThinClient(
        kms_server.endpoint, region_name="us-east-1", aws_access_key_id=account_of(kms),
        aws_secret_access_key="mock-kms-test-secret", max_attempts=1,
    )  # fmt: skip
    header = {"alg": jwt_algorithm, "typ": "JWT", "kid": key["KeyId"]}
    claims = {"sub": "user-1", "iss": "mock-kms"}
    signing_input = (
        _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
    ).encode()
    signature = declared(
        lambda: thin.sign(KeyId=key["KeyId"], Message=signing_input, SigningAlgorithm=kms_algorithm)
    )["Signature"]
    signature_for_kms = signature
    if jwt_algorithm == "ES256":
        r, s = utils.decode_dss_signature(signature)  # JWS wants r || s, KMS gives DER
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    token = signing_input.decode() + "." + _b64url(signature)
    pem = thin.get_public_key(KeyId=key["KeyId"])["PublicKey"]
    public = jwt.algorithms.get_default_algorithms()[jwt_algorithm].from_jwk(  # type: ignore[attr-defined]
        jwt.algorithms.get_default_algorithms()[jwt_algorithm].to_jwk(  # type: ignore[attr-defined]
            public_key_of(kms, key["KeyId"])
        )
    )
    assert pem == kms.get_public_key(KeyId=key["KeyId"])["PublicKey"]
    assert jwt.decode(token, public, algorithms=[jwt_algorithm]) == claims
    with pytest.raises(thin.exceptions.KMSInvalidSignatureException):
        thin.verify(
            KeyId=key["KeyId"], Message=signing_input + b"x", Signature=signature_for_kms,
            SigningAlgorithm=kms_algorithm,
        )  # fmt: skip
    tampered = token[: token.rindex(".") - 2] + "AA" + token[token.rindex(".") :]
    with pytest.raises(jwt.InvalidTokenError):
        jwt.decode(tampered, public, algorithms=[jwt_algorithm])


# --- GetPublicKey --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "usage", "member", "expected"),
    [
        ("RSA_2048", "ENCRYPT_DECRYPT", "EncryptionAlgorithms",
         ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]),
        ("ECC_SECG_P256K1", "SIGN_VERIFY", "SigningAlgorithms", ["ECDSA_SHA_256"]),
        ("ECC_NIST_P521", "KEY_AGREEMENT", "KeyAgreementAlgorithms", ["ECDH"]),
    ],
)  # fmt: skip
def test_get_public_key_returns_every_field(
    kms: KmsClient, spec: str, usage: str, member: str, expected: list[str]
) -> None:
    key = create_key_of(kms, spec, usage)
    answers = [kms.get_public_key(KeyId=key["KeyId"]) for _ in range(4)]  # both workers
    response = answers[0]
    assert set(response) - {"ResponseMetadata"} == {
        "KeyId", "PublicKey", "CustomerMasterKeySpec", "KeySpec", "KeyUsage", member
    }  # fmt: skip
    assert response["KeyId"] == key["Arn"]
    assert response["KeySpec"] == response["CustomerMasterKeySpec"] == spec
    assert response["KeyUsage"] == usage
    assert response[member] == expected
    assert all(answer["PublicKey"] == response["PublicKey"] for answer in answers)
    public = public_key_of(kms, key["KeyId"])
    if spec.startswith("RSA"):
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert (
            public.curve.name
            == {"ECC_SECG_P256K1": "secp256k1", "ECC_NIST_P521": "secp521r1"}[spec]
        )


# --- errors --------------------------------------------------------------------------------
def test_digest_of_the_wrong_length(kms: KmsClient) -> None:
    key = create_key_of(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    for call in (kms.sign, lambda **kw: kms.verify(Signature=b"\x30\x00", **kw)):
        with expect_error(
            "ValidationException", "Digest is invalid length for algorithm ECDSA_SHA_256."
        ):
            call(
                KeyId=key["KeyId"],
                Message=bytes(48),
                MessageType="DIGEST",
                SigningAlgorithm="ECDSA_SHA_256",
            )


def test_rsa_digest_of_the_wrong_length(kms: KmsClient) -> None:
    key = create_key_of(kms, "RSA_2048", "SIGN_VERIFY")
    with expect_error(
        "ValidationException", "Digest is invalid length for algorithm RSASSA_PSS_SHA_512."
    ):
        kms.sign(
            KeyId=key["KeyId"],
            Message=bytes(32),
            MessageType="DIGEST",
            SigningAlgorithm="RSASSA_PSS_SHA_512",
        )


def test_algorithm_of_another_spec(kms: KmsClient) -> None:
    key = create_key_of(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    with expect_error(
        "InvalidKeyUsageException",
        "Algorithm ECDSA_SHA_384 is incompatible with key spec ECC_NIST_P256.",
    ):
        kms.sign(KeyId=key["KeyId"], Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_384")
    with expect_error(
        "InvalidKeyUsageException",
        "Algorithm RSASSA_PSS_SHA_256 is incompatible with key spec ECC_NIST_P256.",
    ):
        kms.verify(
            KeyId=key["KeyId"],
            Message=MESSAGE,
            Signature=b"s",
            SigningAlgorithm="RSASSA_PSS_SHA_256",
        )


def test_encryption_key_cannot_sign(kms: KmsClient) -> None:
    key = create_key_of(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    with expect_error(
        "InvalidKeyUsageException",
        f"{key['Arn']} key usage is ENCRYPT_DECRYPT which is not valid for Sign.",
    ):
        kms.sign(KeyId=key["KeyId"], Message=MESSAGE, SigningAlgorithm="RSASSA_PSS_SHA_256")


def test_garbage_signature_is_an_invalid_signature(kms: KmsClient) -> None:
    for spec, algorithm in [("ECC_NIST_P256", "ECDSA_SHA_256"), ("RSA_2048", "RSASSA_PSS_SHA_256")]:
        key = create_key_of(kms, spec, "SIGN_VERIFY")
        with expect_error("KMSInvalidSignatureException", NO_MESSAGE):
            kms.verify(
                KeyId=key["KeyId"],
                Message=MESSAGE,
                Signature=b"\x00" * 70,
                SigningAlgorithm=algorithm,
            )


def test_ed25519_message_types(kms: KmsClient) -> None:
    key = create_key_of(kms, "ECC_NIST_EDWARDS25519", "SIGN_VERIFY")
    with expect_error(
        "ValidationException", "The ED25519_SHA_512 signing algorithm requires MessageType RAW."
    ):
        kms.sign(
            KeyId=key["KeyId"],
            Message=bytes(64),
            MessageType="DIGEST",
            SigningAlgorithm="ED25519_SHA_512",
        )
    with expect_error(
        "ValidationException",
        "The ED25519_PH_SHA_512 signing algorithm requires MessageType DIGEST.",
    ):
        kms.sign(KeyId=key["KeyId"], Message=MESSAGE, SigningAlgorithm="ED25519_PH_SHA_512")
    with expect_error(
        "ValidationException", "Digest is invalid length for algorithm ED25519_PH_SHA_512."
    ):
        kms.sign(
            KeyId=key["KeyId"],
            Message=bytes(32),
            MessageType="DIGEST",
            SigningAlgorithm="ED25519_PH_SHA_512",
        )


def test_external_mu(kms: KmsClient) -> None:
    """EXTERNAL_MU is for ML-DSA only and 64 bytes long; mock-kms cannot sign a caller's mu
    (`cryptography` has no interface for it) and says so."""
    ecdsa = create_key_of(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    with expect_error(
        "ValidationException",
        "MessageType EXTERNAL_MU is not valid for signing algorithm ECDSA_SHA_256.",
    ):
        kms.sign(
            KeyId=ecdsa["KeyId"],
            Message=bytes(64),
            MessageType="EXTERNAL_MU",
            SigningAlgorithm="ECDSA_SHA_256",
        )
    ml_dsa = create_key_of(kms, "ML_DSA_44", "SIGN_VERIFY")
    with expect_error(
        "ValidationException", "Digest is invalid length for algorithm ML_DSA_SHAKE_256."
    ):
        kms.sign(
            KeyId=ml_dsa["KeyId"],
            Message=bytes(32),
            MessageType="EXTERNAL_MU",
            SigningAlgorithm="ML_DSA_SHAKE_256",
        )
    with expect_error(
        "UnsupportedOperationException",
        "MessageType EXTERNAL_MU is not supported by mock-kms; sign the RAW message.",
    ):
        kms.sign(
            KeyId=ml_dsa["KeyId"],
            Message=bytes(64),
            MessageType="EXTERNAL_MU",
            SigningAlgorithm="ML_DSA_SHAKE_256",
        )
    with expect_error(
        "ValidationException", "The ML_DSA_SHAKE_256 signing algorithm requires MessageType RAW."
    ):
        kms.sign(
            KeyId=ml_dsa["KeyId"],
            Message=bytes(64),
            MessageType="DIGEST",
            SigningAlgorithm="ML_DSA_SHAKE_256",
        )


def test_dry_run(kms: KmsClient) -> None:
    key = create_key_of(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    with expect_error(
        "DryRunOperationException",
        "The request would have succeeded, but the DryRun option is set.",
    ):
        kms.sign(KeyId=key["KeyId"], Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256", DryRun=True)


def test_sign_through_an_alias(kms: KmsClient) -> None:
    key = create_key_of(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    kms.create_alias(AliasName="alias/signer", TargetKeyId=key["KeyId"])
    signed = kms.sign(KeyId="alias/signer", Message=MESSAGE, SigningAlgorithm="ECDSA_SHA_256")
    assert signed["KeyId"] == key["Arn"]
    assert create_key(kms)["KeyId"] != key["KeyId"]
