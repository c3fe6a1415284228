"""Multi-Region keys through boto3 clients in two regions (the region comes from the SigV4
credential scope) and the AWS CLI: ReplicateKey for every key kind, ciphertexts, signatures
and MACs accepted across regions, UpdatePrimaryRegion, rotation reaching the replicas, the
deletion rules of primaries and replicas on the movable clock, and every refusal with AWS's
error and message. On both key backends (the session servers, and a developer-endpoint
server per backend for the clock)."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from clients.kms import KmsClient as ThinKmsClient
from tests.conftest import KEY_BACKENDS, backend_env
from tests.integration.test_aws_cli import AwsCli
from tests.support.admin import DEV, admin
from tests.support.backends import run_python
from tests.support.kms_ops import (
    MRK_PATTERN,
    KmsClient,
    account_client,
    expect_error,
    keystore_material_ids,
    new_account_id,
)
from tests.support.server import RunningServer, start_server

US = "us-east-1"
EU = "eu-west-1"
AP = "ap-southeast-2"
DAY = 86400.0


def arn(client: KmsClient, key_id: str, region: str) -> str:
    account = client._request_signer._credentials.access_key
    return f"arn:aws:kms:{region}:{account}:key/{key_id}"


def clients(endpoint: str, *regions: str) -> list[KmsClient]:
    """One boto3 client per region, all in one fresh account."""
    account = new_account_id()
    return [account_client(endpoint, account, region) for region in regions]


@pytest.fixture()
def us_eu(kms_server: RunningServer) -> tuple[KmsClient, KmsClient]:
    us, eu = clients(kms_server.endpoint, US, EU)
    return us, eu


def configuration(client: KmsClient, key_id: str) -> dict[str, Any]:
    return dict(client.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"])


def replicated(us: KmsClient, **create: Any) -> tuple[str, dict[str, Any]]:
    """A multi-Region primary in us-east-1 and its replica in eu-west-1: (key id, the
    ReplicateKey response)."""
    key_id = us.create_key(MultiRegion=True, **create)["KeyMetadata"]["KeyId"]
    answer = us.replicate_key(KeyId=key_id, ReplicaRegion=EU)
    return key_id, answer


# --- ReplicateKey ----------------------------------------------------------------------------
def test_replicate_symmetric_key_answers_and_configurations(
    us_eu: tuple[KmsClient, KmsClient],
) -> None:
    us, eu = us_eu
    primary = us.create_key(MultiRegion=True, Description="primary")["KeyMetadata"]
    key_id = primary["KeyId"]
    assert primary["MultiRegionConfiguration"] == {
        "MultiRegionKeyType": "PRIMARY",
        "PrimaryKey": {"Arn": arn(us, key_id, US), "Region": US},
        "ReplicaKeys": [],
    }
    answer = us.replicate_key(
        KeyId=key_id,
        ReplicaRegion=EU,
        Description="the Irish copy",
        Tags=[{"TagKey": "team", "TagValue": "eu"}],
    )
    assert set(answer) - {"ResponseMetadata"} == {
        "ReplicaKeyMetadata",
        "ReplicaPolicy",
        "ReplicaTags",
    }
    replica = answer["ReplicaKeyMetadata"]
    assert replica["KeyId"] == key_id and replica["Arn"] == arn(us, key_id, EU)
    assert replica["KeyState"] == "Enabled" and replica["Enabled"] is True
    assert replica["Description"] == "the Irish copy"
    assert replica["MultiRegion"] is True
    assert replica["CurrentKeyMaterialId"] == primary["CurrentKeyMaterialId"]
    assert answer["ReplicaTags"] == [{"TagKey": "team", "TagValue": "eu"}]
    # The default key policy, not the primary's: policies are not shared.
    assert json.loads(answer["ReplicaPolicy"])["Statement"][0]["Sid"] == (
        "Enable IAM User Permissions"
    )
    both = [
        {"Arn": arn(us, key_id, EU), "Region": EU},
    ]
    expected_replica = {
        "MultiRegionKeyType": "REPLICA",
        "PrimaryKey": {"Arn": arn(us, key_id, US), "Region": US},
        "ReplicaKeys": both,
    }
    assert replica["MultiRegionConfiguration"] == expected_replica
    assert configuration(eu, key_id) == expected_replica
    assert configuration(us, key_id) == {**expected_replica, "MultiRegionKeyType": "PRIMARY"}
    # Each region lists its own key; the replica's tags and description are its own.
    assert [k["KeyArn"] for k in eu.list_keys()["Keys"]] == [arn(us, key_id, EU)]
    assert us.list_resource_tags(KeyId=key_id)["Tags"] == []
    assert us.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "primary"

    us.replicate_key(KeyId=key_id, ReplicaRegion=AP)
    (ap,) = clients_in_account(us, AP)
    assert configuration(ap, key_id)["ReplicaKeys"] == [
        {"Arn": arn(us, key_id, AP), "Region": AP},
        {"Arn": arn(us, key_id, EU), "Region": EU},
    ]
    assert configuration(eu, key_id) == configuration(ap, key_id)


def clients_in_account(client: KmsClient, *regions: str) -> list[KmsClient]:
    account = client._request_signer._credentials.access_key
    return [account_client(client.meta.endpoint_url, account, region) for region in regions]


def test_symmetric_ciphertexts_decrypt_in_either_region(
    us_eu: tuple[KmsClient, KmsClient],
) -> None:
    us, eu = us_eu
    key_id, _ = replicated(us)
    context = {"purpose": "cross-region"}
    from_us = us.encrypt(KeyId=key_id, Plaintext=b"made in us", EncryptionContext=context)
    from_eu = eu.encrypt(KeyId=key_id, Plaintext=b"made in eu", EncryptionContext=context)
    assert from_eu["KeyId"] == arn(us, key_id, EU)
    decrypted = eu.decrypt(CiphertextBlob=from_us["CiphertextBlob"], EncryptionContext=context)
    assert decrypted["Plaintext"] == b"made in us"
    assert decrypted["KeyId"] == arn(us, key_id, EU)
    assert (
        us.decrypt(CiphertextBlob=from_eu["CiphertextBlob"], EncryptionContext=context)["Plaintext"]
        == b"made in eu"
    )
    # Data keys too, and the context still binds.
    data_key = us.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    again = eu.decrypt(CiphertextBlob=data_key["CiphertextBlob"], KeyId=key_id)
    assert again["Plaintext"] == data_key["Plaintext"]
    with expect_error("InvalidCiphertextException", ""):
        eu.decrypt(CiphertextBlob=from_us["CiphertextBlob"], EncryptionContext={"x": "y"})
    # A single-Region key's ciphertext names a key the other region does not have.
    single = us.create_key()["KeyMetadata"]["KeyId"]
    blob = us.encrypt(KeyId=single, Plaintext=b"stay")["CiphertextBlob"]
    with expect_error("InvalidCiphertextException", ""):
        eu.decrypt(CiphertextBlob=blob)


def test_rsa_replica_decrypts_what_the_primary_public_key_encrypted(
    us_eu: tuple[KmsClient, KmsClient],
) -> None:
    us, eu = us_eu
    key_id, answer = replicated(us, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    assert answer["ReplicaKeyMetadata"]["KeySpec"] == "RSA_2048"
    assert answer["ReplicaKeyMetadata"]["EncryptionAlgorithms"] == [
        "RSAES_OAEP_SHA_1",
        "RSAES_OAEP_SHA_256",
    ]
    assert (
        us.get_public_key(KeyId=key_id)["PublicKey"]
        == (eu.get_public_key(KeyId=key_id)["PublicKey"])
    )
    for source, target in ((us, eu), (eu, us)):
        blob = source.encrypt(
            KeyId=key_id, Plaintext=b"oaep", EncryptionAlgorithm="RSAES_OAEP_SHA_256"
        )["CiphertextBlob"]
        plain = target.decrypt(
            CiphertextBlob=blob, KeyId=key_id, EncryptionAlgorithm="RSAES_OAEP_SHA_256"
        )["Plaintext"]
        assert plain == b"oaep"


def test_ecc_replica_signature_verifies_with_the_primary_public_key(
    us_eu: tuple[KmsClient, KmsClient],
) -> None:
    us, eu = us_eu
    key_id, answer = replicated(us, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    assert answer["ReplicaKeyMetadata"]["SigningAlgorithms"] == ["ECDSA_SHA_256"]
    message = b"signed in Ireland"
    signature = eu.sign(
        KeyId=key_id, Message=message, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
    )["Signature"]
    primary_public = us.get_public_key(KeyId=key_id)["PublicKey"]
    assert eu.get_public_key(KeyId=key_id)["PublicKey"] == primary_public
    public = serialization.load_der_public_key(primary_public)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, message, ec.ECDSA(hashes.SHA256()))  # raises if it does not verify
    assert us.verify(
        KeyId=key_id,
        Message=message,
        MessageType="RAW",
        Signature=signature,
        SigningAlgorithm="ECDSA_SHA_256",
    )["SignatureValid"]


def test_hmac_replica_verifies_the_primary_mac(us_eu: tuple[KmsClient, KmsClient]) -> None:
    us, eu = us_eu
    key_id, answer = replicated(us, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    assert answer["ReplicaKeyMetadata"]["MacAlgorithms"] == ["HMAC_SHA_256"]
    mac = us.generate_mac(KeyId=key_id, Message=b"tick", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert eu.generate_mac(KeyId=key_id, Message=b"tick", MacAlgorithm="HMAC_SHA_256")["Mac"] == mac
    assert eu.verify_mac(KeyId=key_id, Message=b"tick", MacAlgorithm="HMAC_SHA_256", Mac=mac)[
        "MacValid"
    ]
    with expect_error("KMSInvalidMacException", ""):
        eu.verify_mac(KeyId=key_id, Message=b"tock", MacAlgorithm="HMAC_SHA_256", Mac=mac)


def test_replica_state_aliases_and_policy_are_its_own(
    us_eu: tuple[KmsClient, KmsClient],
) -> None:
    us, eu = us_eu
    key_id, _ = replicated(us)
    eu.disable_key(KeyId=key_id)
    with expect_error("DisabledException", f"{arn(us, key_id, EU)} is disabled."):
        eu.encrypt(KeyId=key_id, Plaintext=b"x")
    assert us.encrypt(KeyId=key_id, Plaintext=b"x")["KeyId"] == arn(us, key_id, US)
    eu.enable_key(KeyId=key_id)
    eu.create_alias(AliasName="alias/irish", TargetKeyId=key_id)
    assert eu.encrypt(KeyId="alias/irish", Plaintext=b"x")["KeyId"] == arn(us, key_id, EU)
    with expect_error("NotFoundException"):
        us.encrypt(KeyId="alias/irish", Plaintext=b"x")
    policy = us.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    eu.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy.replace("IAM", "iam"))
    assert us.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"] == policy


# --- refusals --------------------------------------------------------------------------------
def test_replicate_key_refusals(kms_server: RunningServer) -> None:
    us, eu = clients(kms_server.endpoint, US, EU)
    loose = account_client(kms_server.endpoint, us._request_signer._credentials.access_key, US,
                           validate=False)  # fmt: skip
    key_id, _ = replicated(us)
    with expect_error(
        "UnsupportedOperationException",
        f"{arn(us, key_id, EU)} is not a multi-region primary key.",
    ):
        eu.replicate_key(KeyId=key_id, ReplicaRegion=AP)
    with expect_error("AlreadyExistsException", f"{arn(us, key_id, EU)} already exists."):
        us.replicate_key(KeyId=key_id, ReplicaRegion=EU)
    with expect_error(
        "ValidationException",
        f"The replica Region {US} is the Region of the primary key {arn(us, key_id, US)}; "
        "a replica must be in another Region.",
    ):
        us.replicate_key(KeyId=key_id, ReplicaRegion=US)
    single = us.create_key()["KeyMetadata"]["KeyId"]
    with expect_error(
        "UnsupportedOperationException",
        f"{arn(us, single, US)} is not a multi-region primary key.",
    ):
        us.replicate_key(KeyId=single, ReplicaRegion=EU)
    for bad in ("EU-WEST-1", "eu-west", "europe", "eu-west-1-", "a-b-c-d-e-1"):
        with expect_error(
            "ValidationException",
            f"1 validation error detected: Value '{bad}' at 'replicaRegion' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: ^([a-z]+-){2,3}\\d+$",
        ):
            loose.replicate_key(KeyId=key_id, ReplicaRegion=bad)
    with expect_error("ValidationException"):
        loose.replicate_key(KeyId=key_id, ReplicaRegion="x" * 30 + "-a-1")
    missing = "mrk-" + "0" * 32
    with expect_error("NotFoundException", f"Key '{arn(us, missing, US)}' does not exist"):
        us.replicate_key(KeyId=missing, ReplicaRegion=EU)
    # Key states of the primary.
    other = us.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    us.disable_key(KeyId=other)
    with expect_error("DisabledException", f"{arn(us, other, US)} is disabled."):
        us.replicate_key(KeyId=other, ReplicaRegion=EU)
    us.schedule_key_deletion(KeyId=other, PendingWindowInDays=7)
    with expect_error("KMSInvalidStateException", f"{arn(us, other, US)} is pending deletion."):
        us.replicate_key(KeyId=other, ReplicaRegion=EU)
    with expect_error("NotFoundException"):
        eu.describe_key(KeyId=other)  # nothing was created by the refusals
    # An ARN of another region is refused as for every KeyId.
    with expect_error("NotFoundException", f"Invalid arn {EU}"):
        us.replicate_key(KeyId=arn(us, key_id, EU), ReplicaRegion=AP)


def test_concurrent_replications_create_one_replica(kms_server: RunningServer) -> None:
    """Eight ReplicateKey calls at once, over both workers: one replica, seven
    AlreadyExistsException, and a configuration naming the replica once."""
    (us,) = clients(kms_server.endpoint, US)
    key_id = us.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    account = us._request_signer._credentials.access_key
    callers = [account_client(kms_server.endpoint, account, US) for _ in range(8)]

    def attempt(client: KmsClient) -> str:
        try:
            client.replicate_key(KeyId=key_id, ReplicaRegion=EU)
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "created"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = sorted(pool.map(attempt, callers))
    assert outcomes == ["AlreadyExistsException"] * 7 + ["created"]
    assert configuration(us, key_id)["ReplicaKeys"] == [{"Arn": arn(us, key_id, EU), "Region": EU}]


def test_replica_rotation_settings_are_managed_on_the_primary(
    us_eu: tuple[KmsClient, KmsClient],
) -> None:
    us, eu = us_eu
    key_id, _ = replicated(us)
    message = f"{arn(us, key_id, EU)} is not a multi-region primary key."
    with expect_error("UnsupportedOperationException", message):
        eu.enable_key_rotation(KeyId=key_id)
    with expect_error("UnsupportedOperationException", message):
        eu.disable_key_rotation(KeyId=key_id)
    with expect_error("UnsupportedOperationException", message):
        eu.rotate_key_on_demand(KeyId=key_id)
    us.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=180)
    status = eu.get_key_rotation_status(KeyId=key_id)
    assert status["KeyRotationEnabled"] is True and status["RotationPeriodInDays"] == 180
    assert (
        status["NextRotationDate"] == us.get_key_rotation_status(KeyId=key_id)["NextRotationDate"]
    )
    us.disable_key_rotation(KeyId=key_id)
    assert eu.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False
    # Asymmetric and HMAC multi-Region keys do not rotate, as their single-Region kinds.
    hmac_id, _ = replicated(us, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    with expect_error("UnsupportedOperationException", ""):
        us.enable_key_rotation(KeyId=hmac_id)
    with expect_error("UnsupportedOperationException", ""):
        eu.rotate_key_on_demand(KeyId=hmac_id)


def test_on_demand_rotation_of_the_primary_reaches_the_replicas(
    us_eu: tuple[KmsClient, KmsClient],
) -> None:
    us, eu = us_eu
    key_id, answer = replicated(us)
    original = answer["ReplicaKeyMetadata"]["CurrentKeyMaterialId"]
    old_us = us.encrypt(KeyId=key_id, Plaintext=b"old us")["CiphertextBlob"]
    old_eu = eu.encrypt(KeyId=key_id, Plaintext=b"old eu")["CiphertextBlob"]
    us.rotate_key_on_demand(KeyId=key_id)
    current = us.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert current != original
    assert eu.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == current
    for client in (us, eu):
        (rotation,) = client.list_key_rotations(KeyId=key_id)["Rotations"]
        assert rotation["KeyMaterialId"] == current and rotation["RotationType"] == "ON_DEMAND"
        assert rotation["KeyMaterialState"] == "CURRENT"
        everything = client.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
        assert [r["KeyMaterialId"] for r in everything["Rotations"]] == [original, current]
    new_eu = eu.encrypt(KeyId=key_id, Plaintext=b"new eu")["CiphertextBlob"]
    for client in (us, eu):
        assert client.decrypt(CiphertextBlob=old_us)["Plaintext"] == b"old us"
        assert client.decrypt(CiphertextBlob=old_eu)["Plaintext"] == b"old eu"
        decrypted = client.decrypt(CiphertextBlob=new_eu)
        assert decrypted["Plaintext"] == b"new eu" and decrypted["KeyMaterialId"] == current
    # A replica created after the rotation gets the whole history.
    (ap,) = clients_in_account(us, AP)
    us.replicate_key(KeyId=key_id, ReplicaRegion=AP)
    assert ap.decrypt(CiphertextBlob=old_eu)["Plaintext"] == b"old eu"
    assert ap.list_key_rotations(KeyId=key_id)["Rotations"][0]["KeyMaterialId"] == current


# --- UpdatePrimaryRegion ---------------------------------------------------------------------
def test_update_primary_region_flips_the_configurations(
    us_eu: tuple[KmsClient, KmsClient],
) -> None:
    us, eu = us_eu
    key_id, _ = replicated(us)
    us.replicate_key(KeyId=key_id, ReplicaRegion=AP)
    (ap,) = clients_in_account(us, AP)
    answer = us.update_primary_region(KeyId=key_id, PrimaryRegion=EU)
    assert set(answer) == {"ResponseMetadata"}
    replicas = [
        {"Arn": arn(us, key_id, AP), "Region": AP},
        {"Arn": arn(us, key_id, US), "Region": US},
    ]
    primary = {"Arn": arn(us, key_id, EU), "Region": EU}
    for client, kind in ((us, "REPLICA"), (eu, "PRIMARY"), (ap, "REPLICA")):
        assert configuration(client, key_id) == {
            "MultiRegionKeyType": kind,
            "PrimaryKey": primary,
            "ReplicaKeys": replicas,
        }
        assert client.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    # The new primary replicates and manages rotation; the old one no longer does.
    old = f"{arn(us, key_id, US)} is not a multi-region primary key."
    with expect_error("UnsupportedOperationException", old):
        us.replicate_key(KeyId=key_id, ReplicaRegion="ca-central-1")
    with expect_error("UnsupportedOperationException", old):
        us.enable_key_rotation(KeyId=key_id)
    eu.enable_key_rotation(KeyId=key_id)
    assert us.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True
    created = eu.replicate_key(KeyId=key_id, ReplicaRegion="ca-central-1")
    assert created["ReplicaKeyMetadata"]["MultiRegionConfiguration"]["PrimaryKey"] == primary
    with expect_error("UnsupportedOperationException", old):
        us.update_primary_region(KeyId=key_id, PrimaryRegion=AP)
    eu.update_primary_region(KeyId=key_id, PrimaryRegion=US)
    assert configuration(us, key_id)["MultiRegionKeyType"] == "PRIMARY"
    assert configuration(eu, key_id)["MultiRegionKeyType"] == "REPLICA"


def test_update_primary_region_refusals(kms_server: RunningServer) -> None:
    us, eu = clients(kms_server.endpoint, US, EU)
    loose = account_client(kms_server.endpoint, us._request_signer._credentials.access_key, US,
                           validate=False)  # fmt: skip
    key_id, _ = replicated(us)
    single = us.create_key()["KeyMetadata"]["KeyId"]
    with expect_error(
        "UnsupportedOperationException",
        f"{arn(us, single, US)} is not a multi-region primary key.",
    ):
        us.update_primary_region(KeyId=single, PrimaryRegion=EU)
    with expect_error("NotFoundException", f"Key '{arn(us, key_id, AP)}' does not exist"):
        us.update_primary_region(KeyId=key_id, PrimaryRegion=AP)
    with expect_error(
        "ValidationException",
        f"{arn(us, key_id, US)} is already the primary key; PrimaryRegion must name the "
        "Region of one of its replica keys.",
    ):
        us.update_primary_region(KeyId=key_id, PrimaryRegion=US)
    with expect_error(
        "ValidationException",
        "1 validation error detected: Value 'Europe' at 'primaryRegion' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ^([a-z]+-){2,3}\\d+$",
    ):
        loose.update_primary_region(KeyId=key_id, PrimaryRegion="Europe")
    eu.disable_key(KeyId=key_id)
    with expect_error("DisabledException", f"{arn(us, key_id, EU)} is disabled."):
        us.update_primary_region(KeyId=key_id, PrimaryRegion=EU)
    eu.enable_key(KeyId=key_id)
    us.disable_key(KeyId=key_id)
    with expect_error("DisabledException", f"{arn(us, key_id, US)} is disabled."):
        us.update_primary_region(KeyId=key_id, PrimaryRegion=EU)
    assert configuration(eu, key_id)["MultiRegionKeyType"] == "REPLICA"
    # A single-Region key with the same id cannot exist; another account's key is not found.
    (stranger,) = clients(kms_server.endpoint, US)
    with expect_error("NotFoundException"):
        stranger.update_primary_region(KeyId=key_id, PrimaryRegion=EU)


# --- deletion --------------------------------------------------------------------------------
def test_primary_with_replicas_waits_in_pending_replica_deletion(
    us_eu: tuple[KmsClient, KmsClient],
) -> None:
    us, eu = us_eu
    key_id, _ = replicated(us)
    answer = us.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=9)
    assert answer["KeyState"] == "PendingReplicaDeletion"
    assert answer["PendingWindowInDays"] == 9 and "DeletionDate" not in answer
    metadata = us.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "PendingReplicaDeletion" and metadata["Enabled"] is False
    assert metadata["PendingDeletionWindowInDays"] == 9 and "DeletionDate" not in metadata
    with expect_error(
        "KMSInvalidStateException", f"{arn(us, key_id, US)} is pending replica deletion."
    ):
        us.encrypt(KeyId=key_id, Plaintext=b"x")
    with expect_error(
        "KMSInvalidStateException", f"{arn(us, key_id, US)} is pending replica deletion."
    ):
        us.schedule_key_deletion(KeyId=key_id)
    with expect_error(
        "KMSInvalidStateException", f"{arn(us, key_id, US)} is pending replica deletion."
    ):
        us.replicate_key(KeyId=key_id, ReplicaRegion=AP)
    with expect_error(
        "KMSInvalidStateException", f"{arn(us, key_id, US)} is pending replica deletion."
    ):
        us.update_key_description(KeyId=key_id, Description="changed")
    with expect_error(
        "KMSInvalidStateException", f"{arn(us, key_id, US)} is pending replica deletion."
    ):
        us.create_alias(AliasName="alias/doomed", TargetKeyId=key_id)
    with expect_error(
        "KMSInvalidStateException", f"{arn(us, key_id, US)} is pending replica deletion."
    ):
        us.tag_resource(KeyId=key_id, Tags=[{"TagKey": "a", "TagValue": "b"}])
    # The replica is unaffected.
    blob = eu.encrypt(KeyId=key_id, Plaintext=b"still here")["CiphertextBlob"]
    assert eu.decrypt(CiphertextBlob=blob)["Plaintext"] == b"still here"
    assert us.cancel_key_deletion(KeyId=key_id)["KeyId"] == arn(us, key_id, US)
    metadata = us.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "Disabled" and "PendingDeletionWindowInDays" not in metadata
    with expect_error(
        "KMSInvalidStateException", f"{arn(us, key_id, US)} is not pending deletion."
    ):
        us.cancel_key_deletion(KeyId=key_id)
    # A replica's own deletion: PendingDeletion with a date, cancellable.
    scheduled = eu.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert scheduled["KeyState"] == "PendingDeletion"
    assert scheduled["DeletionDate"].timestamp() > time.time() + 6.9 * DAY
    eu.cancel_key_deletion(KeyId=key_id)
    assert eu.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"


@pytest.fixture(scope="module", params=KEY_BACKENDS)
def clock_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """A server with the developer endpoints (the movable clock), on each key backend."""
    backend: str = request.param
    base = tmp_path_factory.mktemp(f"mrk-clock-{backend}")
    env = {**backend_env(backend, base / "hsm"), **DEV}
    server = start_server(base / "data", workers=2, env=env)
    try:
        yield server
    finally:
        server.stop()


def _advance(server: RunningServer, days: float) -> dict[str, Any]:
    status, answer = admin(server, "POST", "/clock/advance", {"seconds": days * DAY})
    assert status == 200, answer
    return dict(answer)


#: Lists the material ids of the mock-kms key objects in the token, read by python-pkcs11
#: directly (not through mock-kms) in a child process with the server's token settings.
_TOKEN_LABELS_PROGRAM = """
import json, os, sys
from pathlib import Path
import pkcs11
from pkcs11 import Attribute
json.load(sys.stdin)
token = pkcs11.lib(os.environ["PKCS11_MODULE"]).get_token(
    token_label=os.environ["PKCS11_TOKEN_LABEL"])
pin = Path(os.environ["PKCS11_PIN_FILE"]).read_text().strip()
with token.open(user_pin=pin) as session:
    labels = {str(o[Attribute.LABEL]) for o in session.get_objects({})}
print(json.dumps(sorted(label.removeprefix("mock-kms:") for label in labels
                        if label.startswith("mock-kms:"))))
"""


def _material_ids(server: RunningServer) -> set[str]:
    """Material the server's backend still holds: the software keystore file's entries, or
    the key objects in the PKCS#11 token."""
    if server.env.get("MOCK_KMS_BACKEND") == "pkcs11":
        return set(run_python(_TOKEN_LABELS_PROGRAM, {}, env=server.env))
    return keystore_material_ids(server.data_dir)


def test_deleting_replicas_then_the_primary_on_the_clock(clock_server: RunningServer) -> None:
    us, eu, ap = clients(clock_server.endpoint, US, EU, AP)
    key_id, answer = replicated(us)
    us.replicate_key(KeyId=key_id, ReplicaRegion=AP)
    material = answer["ReplicaKeyMetadata"]["CurrentKeyMaterialId"]
    blob = us.encrypt(KeyId=key_id, Plaintext=b"survivor")["CiphertextBlob"]
    us.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    eu.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    ap.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=20)

    _advance(clock_server, 8)
    with expect_error("NotFoundException", f"Key '{arn(us, key_id, EU)}' does not exist"):
        eu.describe_key(KeyId=key_id)
    # The other replica still uses the material: nothing is destroyed, and it decrypts.
    assert material in _material_ids(clock_server)
    assert us.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingReplicaDeletion"
    assert configuration(ap, key_id)["ReplicaKeys"] == [{"Arn": arn(us, key_id, AP), "Region": AP}]
    ap.cancel_key_deletion(KeyId=key_id)
    ap.enable_key(KeyId=key_id)
    assert ap.decrypt(CiphertextBlob=blob)["Plaintext"] == b"survivor"
    ap.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)

    _advance(clock_server, 8)
    # The last replica is gone: the primary's own 7-day window has begun.
    with expect_error("NotFoundException"):
        ap.describe_key(KeyId=key_id)
    metadata = us.describe_key(KeyId=key_id)["KeyMetadata"]
    assert metadata["KeyState"] == "PendingDeletion"
    assert "PendingDeletionWindowInDays" not in metadata
    assert metadata["MultiRegionConfiguration"]["ReplicaKeys"] == []
    status, clock = admin(clock_server, "GET", "/clock")
    assert status == 200
    window_end = metadata["DeletionDate"].timestamp()
    assert clock["now_epoch_seconds"] + 5 * DAY < window_end <= clock["now_epoch_seconds"] + 7 * DAY
    assert material in _material_ids(clock_server)
    with expect_error("KMSInvalidStateException", f"{arn(us, key_id, US)} is pending deletion."):
        us.decrypt(CiphertextBlob=blob)

    _advance(clock_server, 8)
    with expect_error("NotFoundException"):
        us.describe_key(KeyId=key_id)
    assert material not in _material_ids(clock_server)


def test_deleting_a_replica_keeps_the_primary_material(clock_server: RunningServer) -> None:
    us, eu = clients(clock_server.endpoint, US, EU)
    key_id, _ = replicated(us)
    us.rotate_key_on_demand(KeyId=key_id)
    materials = {
        r["KeyMaterialId"]
        for r in us.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")[
            "Rotations"
        ]
    }
    assert len(materials) == 2
    blob = eu.encrypt(KeyId=key_id, Plaintext=b"from the replica")["CiphertextBlob"]
    eu.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    _advance(clock_server, 8)
    with expect_error("NotFoundException"):
        eu.describe_key(KeyId=key_id)
    assert materials <= _material_ids(clock_server)
    assert us.decrypt(CiphertextBlob=blob)["Plaintext"] == b"from the replica"
    assert us.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"] == {
        "MultiRegionKeyType": "PRIMARY",
        "PrimaryKey": {"Arn": arn(us, key_id, US), "Region": US},
        "ReplicaKeys": [],
    }
    # Replicating again gives the region a fresh replica of the same material.
    again = us.replicate_key(KeyId=key_id, ReplicaRegion=EU)["ReplicaKeyMetadata"]
    assert again["KeyState"] == "Enabled"
    assert eu.decrypt(CiphertextBlob=blob)["Plaintext"] == b"from the replica"


def test_automatic_rotation_of_the_primary_reaches_the_replica(
    clock_server: RunningServer,
) -> None:
    us, eu = clients(clock_server.endpoint, US, EU)
    key_id, answer = replicated(us)
    us.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    old = eu.encrypt(KeyId=key_id, Plaintext=b"before")["CiphertextBlob"]
    _advance(clock_server, 91)
    # Whichever region is asked first, both show one automatic rotation to the same material.
    (seen_in_eu,) = eu.list_key_rotations(KeyId=key_id)["Rotations"]
    (seen_in_us,) = us.list_key_rotations(KeyId=key_id)["Rotations"]
    assert seen_in_eu["RotationType"] == "AUTOMATIC"
    assert seen_in_eu["KeyMaterialId"] == seen_in_us["KeyMaterialId"]
    assert seen_in_eu["KeyMaterialId"] != answer["ReplicaKeyMetadata"]["CurrentKeyMaterialId"]
    new = us.encrypt(KeyId=key_id, Plaintext=b"after")["CiphertextBlob"]
    for client in (us, eu):
        assert client.decrypt(CiphertextBlob=old)["Plaintext"] == b"before"
        assert client.decrypt(CiphertextBlob=new)["Plaintext"] == b"after"
    assert (
        eu.get_key_rotation_status(KeyId=key_id)["NextRotationDate"]
        == us.get_key_rotation_status(KeyId=key_id)["NextRotationDate"]
    )


def test_reset_destroys_the_shared_material_once(clock_server: RunningServer) -> None:
    """Last of the clock-server tests: the developer reset deletes every key of a set in one
    transaction and destroys their shared material."""
    us, eu = clients(clock_server.endpoint, US, EU)
    key_id, answer = replicated(us)
    us.rotate_key_on_demand(KeyId=key_id)
    materials = {
        r["KeyMaterialId"]
        for r in eu.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")[
            "Rotations"
        ]
    }
    assert answer["ReplicaKeyMetadata"]["CurrentKeyMaterialId"] in materials
    assert materials <= _material_ids(clock_server)
    status, _ = admin(clock_server, "POST", "/reset", {})
    assert status == 200
    for client in (us, eu):
        with expect_error("NotFoundException"):
            client.describe_key(KeyId=key_id)
    assert not materials & _material_ids(clock_server)


# --- the project's thin client --------------------------------------------------------------
def test_thin_client_replicates_and_decrypts_across_regions(kms_server: RunningServer) -> None:
    account = new_account_id()
    us, eu = (
        ThinKmsClient(
            kms_server.endpoint,
            region_name=region,
            aws_access_key_id=account,
            aws_secret_access_key="mock-kms-test-secret",
            max_attempts=1,
        )
        for region in (US, EU)
    )
    key_id = us.create_key(MultiRegion=True)["KeyMetadata"]["KeyId"]
    replica = us.replicate_key(KeyId=key_id, ReplicaRegion=EU)["ReplicaKeyMetadata"]
    assert replica["Arn"] == f"arn:aws:kms:{EU}:{account}:key/{key_id}"
    assert replica["CreationDate"].tzinfo is not None  # decoded as boto3 decodes it
    blob = eu.encrypt(KeyId=key_id, Plaintext=b"thin")["CiphertextBlob"]
    assert us.decrypt(CiphertextBlob=blob)["Plaintext"] == b"thin"
    us.update_primary_region(KeyId=key_id, PrimaryRegion=EU)
    assert (
        us.describe_key(KeyId=key_id)["KeyMetadata"]["MultiRegionConfiguration"][
            "MultiRegionKeyType"
        ]
        == "REPLICA"
    )
    with pytest.raises(us.exceptions.UnsupportedOperationException):
        us.replicate_key(KeyId=key_id, ReplicaRegion=AP)


# --- the AWS CLI -----------------------------------------------------------------------------
def test_aws_cli_replicate_and_update_primary_region(
    kms_server: RunningServer, tmp_path: Path
) -> None:
    cli = AwsCli(kms_server.endpoint, tmp_path)
    key = cli.ok("create-key", "--multi-region", "--region", US)["KeyMetadata"]
    assert re.match(MRK_PATTERN, key["KeyId"])
    replica = cli.ok(
        "replicate-key", "--key-id", key["KeyId"], "--replica-region", EU,
        "--description", "cli replica", "--region", US,
    )["ReplicaKeyMetadata"]  # fmt: skip
    assert replica["Arn"] == f"arn:aws:kms:{EU}:{cli.account_id}:key/{key['KeyId']}"
    (tmp_path / "plain").write_bytes(b"hello")
    blob = cli.ok(
        "encrypt", "--key-id", key["KeyId"], "--plaintext", f"fileb://{tmp_path / 'plain'}",
        "--region", US, "--output", "text", "--query", "CiphertextBlob",
    )  # fmt: skip
    (tmp_path / "blob").write_bytes(base64.b64decode(blob))
    plain = cli.ok(
        "decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'blob'}", "--region", EU,
        "--output", "text", "--query", "Plaintext",
    )  # fmt: skip
    assert base64.b64decode(plain) == b"hello"
    flipped = cli.ok(
        "update-primary-region", "--key-id", key["KeyId"], "--primary-region", EU,
        "--region", US,
    )  # fmt: skip
    assert flipped is None
    described = cli.ok("describe-key", "--key-id", key["KeyId"], "--region", EU)["KeyMetadata"]
    assert described["MultiRegionConfiguration"]["MultiRegionKeyType"] == "PRIMARY"
    refused = cli.run(
        "replicate-key", "--key-id", key["KeyId"], "--replica-region", AP, "--region", US
    )
    assert refused.returncode != 0
    assert "UnsupportedOperationException" in refused.stderr
    assert "is not a multi-region primary key." in refused.stderr
