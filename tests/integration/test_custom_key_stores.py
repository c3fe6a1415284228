"""Custom key stores over PKCS#11 tokens, presented as AWS CloudHSM key stores
(docs/custom-key-stores.md), driven with boto3 and the AWS CLI against a real ``mock-kms
serve`` (2 gunicorn workers) on real SoftHSM tokens: the default token of ``--backend
pkcs11`` and three more, each the "cluster" of a key store.
"""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backends.softhsm import SoftHsmToken, init_softhsm_token
from tests.conftest import require_in_ci
from tests.integration.test_aws_cli import AwsCli
from tests.support.admin import DEV, admin
from tests.support.kms_ops import KmsClient, account_client, expect_error, key_arn
from tests.support.server import RunningServer, start_server
from tests.support.softhsm import MISSING_REASON, create_softhsm_token, softhsm_available

pytestmark = pytest.mark.hsm

CLUSTER_A = "cluster-teamaaaaaaaa"
CLUSTER_B = "cluster-teambbbbbbbb"
CLUSTER_C = "cluster-teamcccccccc"
UNKNOWN_CLUSTER = "cluster-nosuchcluster"
DEFAULT_STORE = "cks-mock-kms-pkcs11"
DEFAULT_CLUSTER = "cluster-mockkmsdefault"
TRUST_ANCHOR = "-----BEGIN CERTIFICATE-----\nMIIB (the cluster's issuing certificate)\n"


@dataclass
class Deployment:
    server: RunningServer
    tokens: dict[str, SoftHsmToken]  # cluster id → token

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def pin(self, cluster_id: str) -> str:
        return self.tokens[cluster_id].read_pin()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if not softhsm_available():
        require_in_ci(MISSING_REASON)
    base = tmp_path_factory.mktemp("key-stores")
    hsm = base / "hsm"
    env = create_softhsm_token(hsm, "default-token")
    tokens = {
        CLUSTER_A: init_softhsm_token(hsm, "team-a"),
        CLUSTER_B: init_softhsm_token(hsm, "team-b"),
        CLUSTER_C: init_softhsm_token(hsm, "team-c"),
    }
    clusters = {cluster: token.label for cluster, token in tokens.items()}
    env["MOCK_KMS_PKCS11_CLUSTERS"] = json.dumps(clusters)
    env.update(DEV)  # the movable clock, for the deletion test (the last one of the file)
    server = start_server(base / "data", workers=2, env=env)
    try:
        yield Deployment(server, tokens)
    finally:
        server.stop()


@pytest.fixture()
def kms(deployment: Deployment) -> KmsClient:
    """A client of a fresh account: key stores are per account and Region."""
    return account_client(deployment.endpoint)


def create_store(kms: KmsClient, deployment: Deployment, cluster: str, **extra: Any) -> str:
    request = {
        "CustomKeyStoreName": f"store-{cluster}",
        "CloudHsmClusterId": cluster,
        "TrustAnchorCertificate": TRUST_ANCHOR,
        "KeyStorePassword": deployment.pin(cluster),
        **extra,
    }
    return str(kms.create_custom_key_store(**request)["CustomKeyStoreId"])


def describe(kms: KmsClient, store_id: str) -> dict[str, Any]:
    stores = kms.describe_custom_key_stores(CustomKeyStoreId=store_id)["CustomKeyStores"]
    assert len(stores) == 1
    return dict(stores[0])


def token_objects(token: SoftHsmToken) -> set[str]:
    return {path.name for path in token.token_dir().glob("*.object")} - {"token.object"}


def connected_store(kms: KmsClient, deployment: Deployment, cluster: str) -> str:
    store_id = create_store(kms, deployment, cluster)
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert describe(kms, store_id)["ConnectionState"] == "CONNECTED"
    return store_id


def unavailable(kms: KmsClient, key_id: str) -> str:
    return f"{key_arn(kms, key_id)} is unavailable."


# --- The default key store -------------------------------------------------------------------


def test_default_store_is_listed_connected_and_holds_pkcs11_keys(kms: KmsClient) -> None:
    stores = kms.describe_custom_key_stores()["CustomKeyStores"]
    assert [store["CustomKeyStoreId"] for store in stores] == [DEFAULT_STORE]
    default = stores[0]
    assert default["ConnectionState"] == "CONNECTED"
    assert default["CloudHsmClusterId"] == DEFAULT_CLUSTER
    assert default["CustomKeyStoreType"] == "AWS_CLOUDHSM"
    assert "ConnectionErrorCode" not in default

    plain = kms.create_key()["KeyMetadata"]
    assert plain["CustomKeyStoreId"] == DEFAULT_STORE
    assert plain["CloudHsmClusterId"] == DEFAULT_CLUSTER
    assert plain["Origin"] == "AWS_KMS"
    explicit = kms.create_key(CustomKeyStoreId=DEFAULT_STORE, Origin="AWS_CLOUDHSM")["KeyMetadata"]
    assert explicit["Origin"] == "AWS_CLOUDHSM"
    assert explicit["CustomKeyStoreId"] == DEFAULT_STORE
    blob = kms.encrypt(KeyId=explicit["KeyId"], Plaintext=b"in the default token")
    assert kms.decrypt(CiphertextBlob=blob["CiphertextBlob"])["Plaintext"] == (
        b"in the default token"
    )
    message = (
        f"{DEFAULT_STORE} is the default key store of this mock-kms, configured by "
        "PKCS11_MODULE, PKCS11_TOKEN_LABEL and PKCS11_PIN; it cannot be deleted."
    )
    kms.disconnect_custom_key_store(CustomKeyStoreId=DEFAULT_STORE)
    try:
        assert kms.describe_key(KeyId=plain["KeyId"])["KeyMetadata"]["KeyState"] == "Unavailable"
        with expect_error("KMSInvalidStateException", unavailable(kms, plain["KeyId"])):
            kms.encrypt(KeyId=plain["KeyId"], Plaintext=b"x")
        with expect_error("UnsupportedOperationException", message):
            kms.delete_custom_key_store(CustomKeyStoreId=DEFAULT_STORE)
    finally:
        kms.connect_custom_key_store(CustomKeyStoreId=DEFAULT_STORE)
    assert describe(kms, DEFAULT_STORE)["ConnectionState"] == "CONNECTED"
    assert kms.describe_key(KeyId=plain["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob["CiphertextBlob"])["Plaintext"] == (
        b"in the default token"
    )


# --- Two stores on two tokens ----------------------------------------------------------------


def test_keys_in_two_stores_live_in_their_own_tokens(
    kms: KmsClient, deployment: Deployment
) -> None:
    store_a = create_store(kms, deployment, CLUSTER_A)
    store_b = create_store(kms, deployment, CLUSTER_B)
    for store_id, cluster in ((store_a, CLUSTER_A), (store_b, CLUSTER_B)):
        entry = describe(kms, store_id)
        assert entry["ConnectionState"] == "DISCONNECTED"
        assert entry["CloudHsmClusterId"] == cluster
        assert entry["TrustAnchorCertificate"] == TRUST_ANCHOR
        assert entry["CustomKeyStoreName"] == f"store-{cluster}"
        assert entry["CustomKeyStoreType"] == "AWS_CLOUDHSM"
        assert entry["CreationDate"].timestamp() > 0
        assert "KeyStorePassword" not in entry and "ConnectionErrorCode" not in entry
        kms.connect_custom_key_store(CustomKeyStoreId=store_id)
        assert describe(kms, store_id)["ConnectionState"] == "CONNECTED"

    blobs = {}
    for store_id, cluster in ((store_a, CLUSTER_A), (store_b, CLUSTER_B)):
        token = deployment.tokens[cluster]
        other = deployment.tokens[CLUSTER_B if cluster == CLUSTER_A else CLUSTER_A]
        before, other_before = token_objects(token), token_objects(other)
        metadata = kms.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")["KeyMetadata"]
        assert metadata["CustomKeyStoreId"] == store_id
        assert metadata["CloudHsmClusterId"] == cluster
        assert metadata["Origin"] == "AWS_CLOUDHSM"
        assert metadata["KeySpec"] == "SYMMETRIC_DEFAULT"
        assert metadata["KeyState"] == "Enabled"
        # The material was generated in this store's token, and only there.
        assert len(token_objects(token) - before) == 1
        assert token_objects(other) == other_before
        described = kms.describe_key(KeyId=metadata["KeyId"])["KeyMetadata"]
        assert described["CloudHsmClusterId"] == cluster
        blob = kms.encrypt(KeyId=metadata["KeyId"], Plaintext=cluster.encode())["CiphertextBlob"]
        blobs[metadata["KeyId"]] = (blob, cluster.encode())
        data_key = kms.generate_data_key(KeyId=metadata["KeyId"], KeySpec="AES_256")
        assert (
            kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"]
            == (data_key["Plaintext"])
        )
        assert len(
            kms.generate_random(NumberOfBytes=32, CustomKeyStoreId=store_id)["Plaintext"]
        ) == (32)
    for _round in range(3):  # both workers
        for key_id, (blob, plaintext) in blobs.items():
            answer = kms.decrypt(CiphertextBlob=blob)
            assert answer["Plaintext"] == plaintext
            assert answer["KeyId"] == key_arn(kms, key_id)
    # A ciphertext re-encrypted from one store's key to the other's.
    (_, (blob_a, plain_a)), (key_b, _) = blobs.items()
    moved = kms.re_encrypt(CiphertextBlob=blob_a, DestinationKeyId=key_b)["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=moved)["Plaintext"] == plain_a


def test_disconnected_store_makes_its_keys_unavailable_until_reconnected(
    kms: KmsClient, deployment: Deployment
) -> None:
    store_id = connected_store(kms, deployment, CLUSTER_A)
    key_id = kms.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")["KeyMetadata"][
        "KeyId"
    ]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"kept")["CiphertextBlob"]
    kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    assert describe(kms, store_id)["ConnectionState"] == "DISCONNECTED"
    for _round in range(3):  # every worker sees the shared state
        metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        assert metadata["KeyState"] == "Unavailable" and metadata["Enabled"] is False
        with expect_error("KMSInvalidStateException", unavailable(kms, key_id)):
            kms.decrypt(CiphertextBlob=blob)
        with expect_error("KMSInvalidStateException", unavailable(kms, key_id)):
            kms.encrypt(KeyId=key_id, Plaintext=b"x")
        with expect_error("KMSInvalidStateException", unavailable(kms, key_id)):
            kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    with expect_error(
        "CustomKeyStoreInvalidStateException",
        f"Custom key store {store_id} is not connected (ConnectionState is DISCONNECTED)."
        " CreateKey is valid only when the custom key store ConnectionState is CONNECTED.",
    ):
        kms.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")
    with expect_error(
        "CustomKeyStoreInvalidStateException",
        f"Custom key store {store_id} is not connected (ConnectionState is DISCONNECTED)."
        " GenerateRandom is valid only when the CloudHSM key store ConnectionState is"
        " CONNECTED.",
    ):
        kms.generate_random(NumberOfBytes=8, CustomKeyStoreId=store_id)
    with expect_error(
        "CustomKeyStoreInvalidStateException",
        f"Custom key store {store_id} is already DISCONNECTED.",
    ):
        kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)  # connecting a CONNECTED store: ok
    for _round in range(3):
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"


def test_wrong_password_fails_with_invalid_credentials(
    kms: KmsClient, deployment: Deployment
) -> None:
    store_id = create_store(kms, deployment, CLUSTER_B, KeyStorePassword="not-the-pin")
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    entry = describe(kms, store_id)
    assert entry["ConnectionState"] == "FAILED"
    assert entry["ConnectionErrorCode"] == "INVALID_CREDENTIALS"
    refusal = (
        f"Custom key store {store_id} is in the FAILED state. To reconnect a custom key store"
        " in a FAILED state, disconnect it (DisconnectCustomKeyStore), then connect it"
        " (ConnectCustomKeyStore)."
    )
    with expect_error("CustomKeyStoreInvalidStateException", refusal):
        kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    with expect_error(
        "CustomKeyStoreInvalidStateException",
        f"Custom key store {store_id} is FAILED. UpdateCustomKeyStore can change only"
        " NewCustomKeyStoreName of a CONNECTED custom key store; for all other properties its"
        " ConnectionState must be DISCONNECTED.",
    ):
        kms.update_custom_key_store(
            CustomKeyStoreId=store_id, KeyStorePassword=deployment.pin(CLUSTER_B)
        )
    kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    assert "ConnectionErrorCode" not in describe(kms, store_id)
    kms.update_custom_key_store(
        CustomKeyStoreId=store_id, KeyStorePassword=deployment.pin(CLUSTER_B)
    )
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert describe(kms, store_id)["ConnectionState"] == "CONNECTED"
    key_id = kms.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")["KeyMetadata"][
        "KeyId"
    ]
    assert kms.encrypt(KeyId=key_id, Plaintext=b"ok")["KeyId"] == key_arn(kms, key_id)


def test_update_cluster_id(kms: KmsClient, deployment: Deployment) -> None:
    store_id = create_store(kms, deployment, CLUSTER_A)  # starts DISCONNECTED
    with expect_error(
        "CloudHsmClusterNotFoundException",
        f"KMS cannot find the CloudHSM cluster with the specified cluster ID {UNKNOWN_CLUSTER}."
        " Retry the request with a different cluster ID.",
    ):
        kms.update_custom_key_store(CustomKeyStoreId=store_id, CloudHsmClusterId=UNKNOWN_CLUSTER)
    kms.update_custom_key_store(CustomKeyStoreId=store_id, CloudHsmClusterId=CLUSTER_B)
    # The password is still team-a's PIN: team-b's token refuses it.
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    entry = describe(kms, store_id)
    assert entry["CloudHsmClusterId"] == CLUSTER_B
    assert (entry["ConnectionState"], entry["ConnectionErrorCode"]) == (
        "FAILED",
        "INVALID_CREDENTIALS",
    )


# --- A token removed while serving, then restored ---------------------------------------------


def test_token_removed_while_serving_then_restored(
    kms: KmsClient, deployment: Deployment, tmp_path: Path
) -> None:
    store_id = connected_store(kms, deployment, CLUSTER_C)
    key_id = kms.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")["KeyMetadata"][
        "KeyId"
    ]
    blobs = [
        kms.encrypt(KeyId=key_id, Plaintext=b"before %d" % i)["CiphertextBlob"] for i in range(4)
    ]
    token_dir = deployment.tokens[CLUSTER_C].token_dir()
    away = tmp_path / "away"
    shutil.move(token_dir, away)
    try:
        for blob in blobs:  # each worker finds the token gone, or the store FAILED already
            with expect_error("KMSInvalidStateException", unavailable(kms, key_id)):
                kms.decrypt(CiphertextBlob=blob)
        entry = describe(kms, store_id)
        assert (entry["ConnectionState"], entry["ConnectionErrorCode"]) == (
            "FAILED",
            "NETWORK_ERRORS",
        )
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Unavailable"
        with expect_error("KMSInvalidStateException", unavailable(kms, key_id)):
            kms.encrypt(KeyId=key_id, Plaintext=b"x")
        # Reconnecting while the token is still gone fails again.
        kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
        kms.connect_custom_key_store(CustomKeyStoreId=store_id)
        entry = describe(kms, store_id)
        assert (entry["ConnectionState"], entry["ConnectionErrorCode"]) == (
            "FAILED",
            "NETWORK_ERRORS",
        )
    finally:
        shutil.move(away, token_dir)
    kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    kms.connect_custom_key_store(CustomKeyStoreId=store_id)
    assert describe(kms, store_id)["ConnectionState"] == "CONNECTED"
    for _round in range(2):
        for number, blob in enumerate(blobs):
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"before %d" % number
    fresh = kms.encrypt(KeyId=key_id, Plaintext=b"after")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=fresh)["Plaintext"] == b"after"


# --- Update, delete, describe ------------------------------------------------------------------


def test_update_and_delete(kms: KmsClient, deployment: Deployment) -> None:
    store_id = connected_store(kms, deployment, CLUSTER_A)
    kms.update_custom_key_store(CustomKeyStoreId=store_id, NewCustomKeyStoreName="renamed")
    by_name = kms.describe_custom_key_stores(CustomKeyStoreName="renamed")["CustomKeyStores"]
    assert [entry["CustomKeyStoreId"] for entry in by_name] == [store_id]
    with expect_error(
        "CustomKeyStoreInvalidStateException",
        f"Custom key store {store_id} is CONNECTED. DeleteCustomKeyStore is valid only when"
        " the custom key store ConnectionState is DISCONNECTED.",
    ):
        kms.delete_custom_key_store(CustomKeyStoreId=store_id)
    key_id = kms.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")["KeyMetadata"][
        "KeyId"
    ]
    kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    with expect_error(
        "CustomKeyStoreHasCMKsException",
        f"Custom key store {store_id} contains KMS keys. Delete them (ScheduleKeyDeletion) and"
        " wait for their deletion before deleting the custom key store.",
    ):
        kms.delete_custom_key_store(CustomKeyStoreId=store_id)

    empty = create_store(kms, deployment, CLUSTER_B)
    kms.delete_custom_key_store(CustomKeyStoreId=empty)
    with expect_error(
        "CustomKeyStoreNotFoundException", f"Custom key store {empty} does not exist."
    ):
        kms.describe_custom_key_stores(CustomKeyStoreId=empty)
    with expect_error(
        "CustomKeyStoreNotFoundException", f"Custom key store {empty} does not exist."
    ):
        kms.connect_custom_key_store(CustomKeyStoreId=empty)


def test_describe_pages_and_filters(kms: KmsClient, deployment: Deployment) -> None:
    created = sorted(
        create_store(kms, deployment, cluster) for cluster in (CLUSTER_A, CLUSTER_B, CLUSTER_C)
    )
    everything = sorted([*created, DEFAULT_STORE])
    first = kms.describe_custom_key_stores(Limit=2)
    assert first["Truncated"] is True
    second = kms.describe_custom_key_stores(Limit=2, Marker=first["NextMarker"])
    assert second["Truncated"] is False and "NextMarker" not in second
    listed = [e["CustomKeyStoreId"] for e in first["CustomKeyStores"] + second["CustomKeyStores"]]
    assert listed == everything
    # Another account sees only the default store.
    other = account_client(deployment.endpoint)
    assert [
        e["CustomKeyStoreId"] for e in other.describe_custom_key_stores()["CustomKeyStores"]
    ] == [DEFAULT_STORE]
    with expect_error(
        "CustomKeyStoreNotFoundException", f"Custom key store {created[0]} does not exist."
    ):
        other.describe_custom_key_stores(CustomKeyStoreId=created[0])
    with expect_error(
        "CustomKeyStoreNotFoundException", "Custom key store with name nothing does not exist."
    ):
        kms.describe_custom_key_stores(CustomKeyStoreName="nothing")
    with expect_error(
        "ValidationException",
        "You can specify either the CustomKeyStoreId or the CustomKeyStoreName parameter, but"
        " not both.",
    ):
        kms.describe_custom_key_stores(CustomKeyStoreId=created[0], CustomKeyStoreName="x")
    with expect_error("InvalidMarkerException", "Invalid marker"):
        kms.describe_custom_key_stores(Marker="not-a-marker")


# --- Every refusal, with AWS's error and message -------------------------------------------


def test_create_refusals(kms: KmsClient, deployment: Deployment) -> None:
    store_id = create_store(kms, deployment, CLUSTER_A)
    with expect_error(
        "CustomKeyStoreNameInUseException",
        f"A custom key store with name store-{CLUSTER_A} already exists.",
    ):
        create_store(kms, deployment, CLUSTER_B, CustomKeyStoreName=f"store-{CLUSTER_A}")
    with expect_error(
        "CloudHsmClusterInUseException",
        f"The CloudHSM cluster {CLUSTER_A} is already associated with the custom key store"
        f" {store_id}.",
    ):
        create_store(kms, deployment, CLUSTER_A, CustomKeyStoreName="another")
    with expect_error(
        "CloudHsmClusterNotFoundException",
        f"KMS cannot find the CloudHSM cluster with the specified cluster ID {UNKNOWN_CLUSTER}."
        " Retry the request with a different cluster ID.",
    ):
        kms.create_custom_key_store(
            CustomKeyStoreName="x",
            CloudHsmClusterId=UNKNOWN_CLUSTER,
            TrustAnchorCertificate=TRUST_ANCHOR,
            KeyStorePassword="1234567",
        )
    with expect_error(
        "ValidationException",
        "KeyStorePassword is required when creating a custom key store of type AWS_CLOUDHSM.",
    ):
        kms.create_custom_key_store(
            CustomKeyStoreName="x", CloudHsmClusterId=CLUSTER_B, TrustAnchorCertificate="t"
        )
    with expect_error(
        "UnsupportedOperationException",
        "External key stores (EXTERNAL_KEY_STORE) are not supported by mock-kms; it offers"
        " AWS_CLOUDHSM key stores backed by PKCS#11 tokens.",
    ):
        kms.create_custom_key_store(
            CustomKeyStoreName="xks",
            CustomKeyStoreType="EXTERNAL_KEY_STORE",
            XksProxyUriEndpoint="https://xks.example.com",
            XksProxyUriPath="/kms/xks/v1",
            XksProxyConnectivity="PUBLIC_ENDPOINT",
        )
    secret = "short"
    raw = account_client(deployment.endpoint, validate=False)
    with expect_error("ValidationException") as info:
        raw.create_custom_key_store(
            CustomKeyStoreName="x",
            CloudHsmClusterId=CLUSTER_B,
            TrustAnchorCertificate="t",
            KeyStorePassword=secret,
        )
    message = info.value.response["Error"]["Message"]
    assert "keyStorePassword" in message and secret not in message
    with expect_error("ValidationException") as info:
        raw.create_custom_key_store(
            CustomKeyStoreName="x",
            CloudHsmClusterId="cluster-1",
            TrustAnchorCertificate="t",
            KeyStorePassword="1234567",
        )
    assert "cloudHsmClusterId" in info.value.response["Error"]["Message"]


def test_key_refusals(kms: KmsClient, deployment: Deployment) -> None:
    store_id = connected_store(kms, deployment, CLUSTER_B)
    only_symmetric = (
        "CustomKeyStoreId is valid only for symmetric encryption KMS keys in a single Region."
        " You cannot create any other type of KMS key in a custom key store."
    )
    with expect_error("UnsupportedOperationException", only_symmetric):
        kms.create_key(
            CustomKeyStoreId=store_id,
            Origin="AWS_CLOUDHSM",
            KeySpec="RSA_2048",
            KeyUsage="SIGN_VERIFY",
        )
    with expect_error("UnsupportedOperationException", only_symmetric):
        kms.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM", MultiRegion=True)
    with expect_error(
        "UnsupportedOperationException",
        "Origin AWS_CLOUDHSM needs a CustomKeyStoreId: the ID of the AWS CloudHSM key store to"
        " create the KMS key in.",
    ):
        kms.create_key(Origin="AWS_CLOUDHSM")
    with expect_error(
        "ValidationException",
        f"Origin must be AWS_CLOUDHSM to create a KMS key in the AWS CloudHSM key store"
        f" {store_id}.",
    ):
        kms.create_key(CustomKeyStoreId=store_id)
    with expect_error(
        "CustomKeyStoreNotFoundException", "Custom key store cks-00000000000000000 does not exist."
    ):
        kms.create_key(CustomKeyStoreId="cks-00000000000000000", Origin="AWS_CLOUDHSM")
    with expect_error(
        "CustomKeyStoreNotFoundException", "Custom key store cks-00000000000000000 does not exist."
    ):
        kms.generate_random(NumberOfBytes=8, CustomKeyStoreId="cks-00000000000000000")
    assert kms.list_keys()["Keys"] == []
    key_id = kms.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")["KeyMetadata"][
        "KeyId"
    ]
    # AWS does not rotate keys in custom key stores (message-less, as for asymmetric keys).
    for rotation in (
        lambda: kms.enable_key_rotation(KeyId=key_id),
        lambda: kms.rotate_key_on_demand(KeyId=key_id),
        lambda: kms.get_key_rotation_status(KeyId=key_id),
    ):
        with expect_error("UnsupportedOperationException", ""):
            rotation()
    with expect_error(
        "UnsupportedOperationException",
        f"{DEFAULT_STORE} is the default key store of this mock-kms, configured by"
        " PKCS11_MODULE, PKCS11_TOKEN_LABEL and PKCS11_PIN; it cannot be updated.",
    ):
        kms.update_custom_key_store(CustomKeyStoreId=DEFAULT_STORE, NewCustomKeyStoreName="x")


# --- Secrets ----------------------------------------------------------------------------------


def test_password_never_in_responses_logs_or_data_dir(
    kms: KmsClient, deployment: Deployment
) -> None:
    password = deployment.pin(CLUSTER_C)
    store_id = connected_store(kms, deployment, CLUSTER_C)
    kms.update_custom_key_store(CustomKeyStoreId=store_id, NewCustomKeyStoreName="secretive")
    kms.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")
    responses = json.dumps(kms.describe_custom_key_stores(), default=str)
    assert password not in responses
    assert password not in deployment.server.log()
    needles = (password.encode(), base64.b64encode(password.encode()))
    for path in deployment.server.data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(needle in content for needle in needles), path


# --- The AWS CLI ------------------------------------------------------------------------------


def test_every_operation_with_the_aws_cli(deployment: Deployment, tmp_path: Path) -> None:
    cli = AwsCli(deployment.endpoint, tmp_path)
    store_id = cli.ok(
        "create-custom-key-store",
        "--custom-key-store-name", "cli-store",
        "--cloud-hsm-cluster-id", CLUSTER_A,
        "--trust-anchor-certificate", TRUST_ANCHOR,
        "--key-store-password", deployment.pin(CLUSTER_A),
    )["CustomKeyStoreId"]  # fmt: skip
    assert store_id.startswith("cks-") and len(store_id) == 21
    cli.ok("connect-custom-key-store", "--custom-key-store-id", store_id)
    stores = cli.ok("describe-custom-key-stores", "--custom-key-store-name", "cli-store")
    assert stores["CustomKeyStores"][0]["ConnectionState"] == "CONNECTED"
    key = cli.ok("create-key", "--custom-key-store-id", store_id, "--origin", "AWS_CLOUDHSM")[
        "KeyMetadata"
    ]
    assert key["CustomKeyStoreId"] == store_id and key["CloudHsmClusterId"] == CLUSTER_A
    random = cli.ok("generate-random", "--number-of-bytes", "16", "--custom-key-store-id", store_id)
    assert len(base64.b64decode(random["Plaintext"])) == 16
    cli.ok("disconnect-custom-key-store", "--custom-key-store-id", store_id)
    failed = cli.run("encrypt", "--key-id", key["KeyId"], "--plaintext", "aGk=")
    assert failed.returncode != 0
    assert "KMSInvalidStateException" in failed.stderr and "is unavailable." in failed.stderr
    cli.ok(
        "update-custom-key-store",
        "--custom-key-store-id", store_id,
        "--new-custom-key-store-name", "cli-renamed",
        "--key-store-password", deployment.pin(CLUSTER_A),
    )  # fmt: skip
    refused = cli.run("delete-custom-key-store", "--custom-key-store-id", store_id)
    assert "CustomKeyStoreHasCMKsException" in refused.stderr
    other = cli.ok(
        "create-custom-key-store",
        "--custom-key-store-name", "to-delete",
        "--cloud-hsm-cluster-id", CLUSTER_B,
        "--trust-anchor-certificate", TRUST_ANCHOR,
        "--key-store-password", deployment.pin(CLUSTER_B),
    )["CustomKeyStoreId"]  # fmt: skip
    cli.ok("delete-custom-key-store", "--custom-key-store-id", other)
    listed = cli.ok("describe-custom-key-stores")["CustomKeyStores"]
    assert sorted(entry["CustomKeyStoreName"] for entry in listed) == [
        "cli-renamed",
        "mock-kms-pkcs11",
    ]


# --- Deleting the keys, then the store (moves the module server's clock: keep it last) ---------


def test_store_deleted_once_its_keys_are_gone(kms: KmsClient, deployment: Deployment) -> None:
    store_id = connected_store(kms, deployment, CLUSTER_B)
    token = deployment.tokens[CLUSTER_B]
    before = token_objects(token)
    key_id = kms.create_key(CustomKeyStoreId=store_id, Origin="AWS_CLOUDHSM")["KeyMetadata"][
        "KeyId"
    ]
    assert len(token_objects(token) - before) == 1
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    status, _ = admin(deployment.server, "POST", "/clock/advance", {"duration": "8d"})
    assert status == 200
    with expect_error("NotFoundException"):
        kms.describe_key(KeyId=key_id)
    # The material is destroyed in the store's token, not left behind.
    assert token_objects(token) == before
    kms.disconnect_custom_key_store(CustomKeyStoreId=store_id)
    kms.delete_custom_key_store(CustomKeyStoreId=store_id)
    assert [e["CustomKeyStoreId"] for e in kms.describe_custom_key_stores()["CustomKeyStores"]] == [
        DEFAULT_STORE
    ]
