"""CreateKey, DescribeKey and ListKeys for every key kind; the AWS errors for key specs and
usages that do not fit; key-state rules and rotation refusals for the new kinds."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.key_kinds import HMAC_SPECS, RSA_SPECS, SIGNING_SPECS, create_key_of
from tests.support.kms_ops import NO_MESSAGE, KmsClient, create_key, expect_error

RSA_SIGNING = [
    "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512",
]  # fmt: skip
ALL_USAGES = ["ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT"]
ALLOWED = {
    "SYMMETRIC_DEFAULT": {"ENCRYPT_DECRYPT"},
    **{spec: {"ENCRYPT_DECRYPT", "SIGN_VERIFY"} for spec in RSA_SPECS},
    "ECC_NIST_P256": {"SIGN_VERIFY", "KEY_AGREEMENT"},
    "ECC_NIST_P384": {"SIGN_VERIFY", "KEY_AGREEMENT"},
    "ECC_NIST_P521": {"SIGN_VERIFY", "KEY_AGREEMENT"},
    "ECC_SECG_P256K1": {"SIGN_VERIFY"},
    "ECC_NIST_EDWARDS25519": {"SIGN_VERIFY"},
    "ML_DSA_44": {"SIGN_VERIFY"},
    "ML_DSA_65": {"SIGN_VERIFY"},
    "ML_DSA_87": {"SIGN_VERIFY"},
    **{spec: {"GENERATE_VERIFY_MAC"} for spec in HMAC_SPECS},
}

#: (spec, usage) -> the one algorithm list AWS reports, by its member name.
OAEP = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
ED25519 = ["ED25519_SHA_512", "ED25519_PH_SHA_512"]
EXPECTED_ALGORITHMS: list[tuple[str, str, str, list[str]]] = [
    ("RSA_2048", "ENCRYPT_DECRYPT", "EncryptionAlgorithms", OAEP),
    ("RSA_3072", "SIGN_VERIFY", "SigningAlgorithms", RSA_SIGNING),
    ("ECC_NIST_P256", "SIGN_VERIFY", "SigningAlgorithms", ["ECDSA_SHA_256"]),
    ("ECC_NIST_P384", "SIGN_VERIFY", "SigningAlgorithms", ["ECDSA_SHA_384"]),
    ("ECC_NIST_P521", "SIGN_VERIFY", "SigningAlgorithms", ["ECDSA_SHA_512"]),
    ("ECC_SECG_P256K1", "SIGN_VERIFY", "SigningAlgorithms", ["ECDSA_SHA_256"]),
    ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY", "SigningAlgorithms", ED25519),
    ("ML_DSA_44", "SIGN_VERIFY", "SigningAlgorithms", ["ML_DSA_SHAKE_256"]),
    ("ECC_NIST_P384", "KEY_AGREEMENT", "KeyAgreementAlgorithms", ["ECDH"]),
    ("HMAC_224", "GENERATE_VERIFY_MAC", "MacAlgorithms", ["HMAC_SHA_224"]),
    ("HMAC_512", "GENERATE_VERIFY_MAC", "MacAlgorithms", ["HMAC_SHA_512"]),
]  # fmt: skip
ALGORITHM_MEMBERS = {
    "EncryptionAlgorithms", "SigningAlgorithms", "MacAlgorithms", "KeyAgreementAlgorithms"
}  # fmt: skip


@pytest.mark.parametrize(("spec", "usage", "member", "algorithms"), EXPECTED_ALGORITHMS)
def test_create_and_describe_report_every_field(
    kms: KmsClient, spec: str, usage: str, member: str, algorithms: list[str]
) -> None:
    created = create_key_of(kms, spec, usage, Description=f"{spec} key")
    assert created["KeySpec"] == spec
    assert created["KeyUsage"] == usage
    assert created[member] == algorithms
    assert not (ALGORITHM_MEMBERS - {member}) & set(created)
    # Only symmetric encryption keys show their key material id.
    assert "CurrentKeyMaterialId" not in created
    if spec in ("ECC_NIST_EDWARDS25519", "ML_DSA_44"):
        assert "CustomerMasterKeySpec" not in created  # not in that deprecated enum
    else:
        assert created["CustomerMasterKeySpec"] == spec
    assert created["KeyState"] == "Enabled" and created["Enabled"] is True
    assert created["Origin"] == "AWS_KMS"
    described = kms.describe_key(KeyId=created["KeyId"])["KeyMetadata"]
    assert described == created
    listed = [entry["KeyId"] for entry in kms.list_keys()["Keys"]]
    assert listed == [created["KeyId"]]


def test_customer_master_key_spec_still_works(kms: KmsClient) -> None:
    created = declared_create(kms, CustomerMasterKeySpec="HMAC_384", KeyUsage="GENERATE_VERIFY_MAC")
    assert created["KeySpec"] == "HMAC_384"
    assert created["MacAlgorithms"] == ["HMAC_SHA_384"]


def declared_create(kms: KmsClient, **kwargs: Any) -> dict[str, Any]:
    from tests.support.key_kinds import declared

    return dict(declared(lambda: kms.create_key(**kwargs))["KeyMetadata"])


@pytest.mark.parametrize(
    ("spec", "usage"),
    [
        (spec, usage)
        for spec, allowed in ALLOWED.items()
        for usage in ALL_USAGES
        if usage not in allowed
    ],
)
def test_every_incompatible_spec_and_usage_is_refused(
    kms: KmsClient, spec: str, usage: str
) -> None:
    with expect_error(
        "ValidationException", f"KeyUsage {usage} is not compatible with KeySpec {spec}"
    ):
        kms.create_key(KeySpec=spec, KeyUsage=usage)
    assert kms.list_keys()["Keys"] == []


@pytest.mark.parametrize("spec", ["RSA_2048", "ECC_NIST_P256", "HMAC_256", "ML_DSA_65"])
def test_key_usage_is_required_except_for_symmetric_keys(kms: KmsClient, spec: str) -> None:
    with expect_error(
        "ValidationException",
        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
    ):
        kms.create_key(KeySpec=spec)


@pytest.mark.parametrize("member", ["KeySpec", "CustomerMasterKeySpec"])
def test_sm2_is_not_offered_in_commercial_regions(kms: KmsClient, member: str) -> None:
    """A commercial-Region endpoint's enum does not list SM2 (China Regions only)."""
    with expect_error("ValidationException") as info:
        kms.create_key(**{member: "SM2"}, KeyUsage="SIGN_VERIFY")
    message = info.value.response["Error"]["Message"]
    path = "keySpec" if member == "KeySpec" else "customerMasterKeySpec"
    assert message.startswith(
        f"1 validation error detected: Value 'SM2' at '{path}' failed to satisfy constraint: "
        "Member must satisfy enum value set: [RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256"
    )
    assert "SM2," not in message and "SM2]" not in message
    assert kms.list_keys()["Keys"] == []


# --- rotation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "usage"),
    [
        ("RSA_2048", "ENCRYPT_DECRYPT"),
        ("ECC_NIST_P256", "SIGN_VERIFY"),
        ("HMAC_256", "GENERATE_VERIFY_MAC"),
    ],
)
@pytest.mark.parametrize(
    "operation",
    [
        "enable_key_rotation",
        "disable_key_rotation",
        "get_key_rotation_status",
        "rotate_key_on_demand",
    ],
)
def test_rotation_is_refused_for_asymmetric_and_hmac_keys(
    kms: KmsClient, spec: str, usage: str, operation: str
) -> None:
    key = create_key_of(kms, spec, usage)
    with expect_error("UnsupportedOperationException", NO_MESSAGE):
        getattr(kms, operation)(KeyId=key["KeyId"])


# --- data keys need symmetric keys ---------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda kms, k: kms.generate_data_key(KeyId=k, KeySpec="AES_256"),
        lambda kms, k: kms.generate_data_key_without_plaintext(KeyId=k, NumberOfBytes=16),
        lambda kms, k: kms.generate_data_key_pair(KeyId=k, KeyPairSpec="ECC_NIST_P256"),
        lambda kms, k: kms.generate_data_key_pair_without_plaintext(
            KeyId=k, KeyPairSpec="RSA_2048"
        ),
    ],
    ids=["GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
         "GenerateDataKeyPairWithoutPlaintext"],
)  # fmt: skip
def test_data_keys_refuse_rsa_encryption_keys(
    kms: KmsClient, call: Callable[[KmsClient, str], Any], request: pytest.FixtureRequest
) -> None:
    operation = request.node.callspec.id.split("-")[-1]
    key = create_key_of(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    with expect_error(
        "InvalidKeyUsageException",
        f"{key['Arn']} key KeySpec is RSA_2048 which is not valid for {operation}.",
    ):
        call(kms, key["KeyId"])


def test_data_keys_refuse_hmac_keys_by_usage(kms: KmsClient) -> None:
    key = create_key_of(kms, "HMAC_256", "GENERATE_VERIFY_MAC")
    with expect_error(
        "InvalidKeyUsageException",
        f"{key['Arn']} key usage is GENERATE_VERIFY_MAC which is not valid for GenerateDataKey.",
    ):
        kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")


# --- key states: every new operation -------------------------------------------------------
def _operations() -> list[tuple[str, str, str, Callable[[KmsClient, str], Any]]]:
    digest = hashlib.sha256(b"m").digest()
    return [
        ("ECC_NIST_P256", "SIGN_VERIFY", "Sign",
         lambda kms, k: kms.sign(KeyId=k, Message=b"m", SigningAlgorithm="ECDSA_SHA_256")),
        ("ECC_NIST_P256", "SIGN_VERIFY", "Verify",
         lambda kms, k: kms.verify(KeyId=k, Message=digest, MessageType="DIGEST",
                                   Signature=b"\x30\x00", SigningAlgorithm="ECDSA_SHA_256")),
        ("ECC_NIST_P256", "SIGN_VERIFY", "GetPublicKey",
         lambda kms, k: kms.get_public_key(KeyId=k)),
        ("RSA_2048", "ENCRYPT_DECRYPT", "Encrypt",
         lambda kms, k: kms.encrypt(KeyId=k, Plaintext=b"p",
                                    EncryptionAlgorithm="RSAES_OAEP_SHA_256")),
        ("RSA_2048", "ENCRYPT_DECRYPT", "Decrypt",
         lambda kms, k: kms.decrypt(KeyId=k, CiphertextBlob=b"c" * 256,
                                    EncryptionAlgorithm="RSAES_OAEP_SHA_256")),
        ("HMAC_256", "GENERATE_VERIFY_MAC", "GenerateMac",
         lambda kms, k: kms.generate_mac(KeyId=k, Message=b"m", MacAlgorithm="HMAC_SHA_256")),
        ("HMAC_256", "GENERATE_VERIFY_MAC", "VerifyMac",
         lambda kms, k: kms.verify_mac(KeyId=k, Message=b"m", MacAlgorithm="HMAC_SHA_256",
                                       Mac=b"\x00" * 32)),
        ("ECC_NIST_P256", "KEY_AGREEMENT", "DeriveSharedSecret",
         lambda kms, k: kms.derive_shared_secret(KeyId=k, KeyAgreementAlgorithm="ECDH",
                                                 PublicKey=b"\x30\x00")),
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "GenerateDataKeyPair",
         lambda kms, k: kms.generate_data_key_pair(KeyId=k, KeyPairSpec="ECC_NIST_P256")),
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "GenerateDataKeyPairWithoutPlaintext",
         lambda kms, k: kms.generate_data_key_pair_without_plaintext(
             KeyId=k, KeyPairSpec="ECC_NIST_P256")),
    ]  # fmt: skip


def _id(value: object) -> str:
    return value if isinstance(value, str) else ""


@pytest.mark.parametrize(("spec", "usage", "name", "call"), _operations(), ids=_id)
@pytest.mark.parametrize("state", ["Disabled", "PendingDeletion"])
def test_every_new_operation_honours_key_state(
    kms: KmsClient,
    spec: str,
    usage: str,
    name: str,
    call: Callable[[KmsClient, str], Any],
    state: str,
) -> None:
    key = create_key(kms) if spec == "SYMMETRIC_DEFAULT" else create_key_of(kms, spec, usage)
    if state == "Disabled":
        kms.disable_key(KeyId=key["KeyId"])
        expected = ("DisabledException", f"{key['Arn']} is disabled.")
    else:
        kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
        expected = ("KMSInvalidStateException", f"{key['Arn']} is pending deletion.")
    with expect_error(*expected):
        call(kms, key["KeyId"])


@pytest.mark.parametrize(("spec", "usage", "name", "call"), _operations(), ids=_id)
def test_every_new_operation_refuses_a_key_of_another_usage(
    kms: KmsClient, spec: str, usage: str, name: str, call: Callable[[KmsClient, str], Any]
) -> None:
    """A key whose usage does not fit: AWS's InvalidKeyUsageException (GetPublicKey, which
    takes any asymmetric key, refuses a symmetric key as unsupported)."""
    if name.startswith("GenerateDataKeyPair"):
        other = create_key_of(kms, "HMAC_256", "GENERATE_VERIFY_MAC")
        expected_usage = "GENERATE_VERIFY_MAC"
    else:
        other = create_key(kms)
        expected_usage = "ENCRYPT_DECRYPT"
    if name == "GetPublicKey":
        with expect_error(
            "UnsupportedOperationException",
            f"{other['Arn']} key spec SYMMETRIC_DEFAULT is not valid for GetPublicKey.",
        ):
            call(kms, other["KeyId"])
        return
    if name == "Decrypt":
        # With a symmetric KeyId the bytes are read as a symmetric blob first.
        with expect_error("InvalidCiphertextException", NO_MESSAGE):
            call(kms, other["KeyId"])
        return
    if name == "Encrypt":
        # A symmetric key is an ENCRYPT_DECRYPT key: the RSA algorithm is what does not fit.
        with expect_error(
            "InvalidKeyUsageException",
            "Algorithm RSAES_OAEP_SHA_256 is incompatible with key spec SYMMETRIC_DEFAULT.",
        ):
            call(kms, other["KeyId"])
        return
    with expect_error(
        "InvalidKeyUsageException",
        f"{other['Arn']} key usage is {expected_usage} which is not valid for {name}.",
    ):
        call(kms, other["KeyId"])


def test_hmac_key_is_not_a_signing_key(kms: KmsClient) -> None:
    key = create_key_of(kms, "HMAC_256", "GENERATE_VERIFY_MAC")
    with expect_error(
        "InvalidKeyUsageException",
        f"{key['Arn']} key usage is GENERATE_VERIFY_MAC which is not valid for Sign.",
    ):
        kms.sign(KeyId=key["KeyId"], Message=b"m", SigningAlgorithm="ECDSA_SHA_256")
    with expect_error(
        "UnsupportedOperationException",
        f"{key['Arn']} key spec HMAC_256 is not valid for GetPublicKey.",
    ):
        kms.get_public_key(KeyId=key["KeyId"])


def test_signing_specs_are_listed() -> None:
    """The shared list the other tests draw from covers every commercial signing spec."""
    assert set(SIGNING_SPECS) == {s for s, u in ALLOWED.items() if "SIGN_VERIFY" in u}
