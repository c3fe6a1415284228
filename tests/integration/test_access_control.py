"""Access control against the real server: several principals and accounts, sigv4 and open
mode, boto3, the AWS CLI and the thin client (docs/access-control.md).

The identities file below is the README's worked example: an administrator, a role that may
only encrypt, a service that works through a grant, and a second account.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from clients.kms import KmsClient as ThinClient
from clients.kms import KmsClientError
from tests.support.server import RunningServer, start_server
from tests.support.wire import KmsClient, kms_client

A = "111122223333"  # the server's default account
B = "444455556666"
ADMIN = {"access_key_id": "AKIDADMIN0000001", "secret_access_key": "admin-secret"}
ENCRYPTOR = {"access_key_id": "AKIDENCRYPTOR001", "secret_access_key": "encryptor-secret"}
SERVICE = {"access_key_id": "AKIDSERVICE00001", "secret_access_key": "service-secret"}
PARTNER = {"access_key_id": "AKIDPARTNER00001", "secret_access_key": "partner-secret"}
ENCRYPTOR_ARN = f"arn:aws:iam::{A}:role/encryptor"
SERVICE_ARN = f"arn:aws:iam::{A}:user/billing-service"
PARTNER_ARN = f"arn:aws:iam::{B}:user/partner"
ADMIN_ARN = f"arn:aws:iam::{A}:user/admin"
ENCRYPT_ONLY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": f"arn:aws:kms:*:{A}:key/*",
            }
        ],
    }
)
SERVICE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:ListKeys", "Resource": "*"}],
    }
)
PARTNER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
            "Resource": f"arn:aws:kms:*:{A}:key/*",
        },
        {"Effect": "Allow", "Action": "kms:CreateKey", "Resource": "*"},
    ],
}
CREDENTIALS = f"""\
[admin]
aws_access_key_id = {ADMIN["access_key_id"]}
aws_secret_access_key = {ADMIN["secret_access_key"]}

[encryptor]
aws_access_key_id = {ENCRYPTOR["access_key_id"]}
aws_secret_access_key = {ENCRYPTOR["secret_access_key"]}
principal_arn = {ENCRYPTOR_ARN}
iam_policy = {ENCRYPT_ONLY}

[billing-service]
aws_access_key_id = {SERVICE["access_key_id"]}
aws_secret_access_key = {SERVICE["secret_access_key"]}
iam_policy = {SERVICE_POLICY}

[partner]
aws_access_key_id = {PARTNER["access_key_id"]}
aws_secret_access_key = {PARTNER["secret_access_key"]}
aws_account_id = {B}
iam_policy_file = partner-policy.json
"""


def _write_identities(root: Path) -> Path:
    (root / "partner-policy.json").write_text(json.dumps(PARTNER_POLICY, indent=2))
    credentials = root / "credentials"
    credentials.write_text(CREDENTIALS)
    return credentials


@pytest.fixture(scope="module", params=["sigv4", "open"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp(f"access-{request.param}")
    credentials = _write_identities(root)
    started = start_server(
        root / "data",
        workers=2,
        env={"MOCK_KMS_AUTH": request.param, "MOCK_KMS_CREDENTIALS_FILE": str(credentials)},
        extra_args=["--audit-log", str(root / "audit.jsonl")],
    )
    try:
        yield started
    finally:
        started.stop()


def as_(server: RunningServer, who: dict[str, str], region: str = "us-east-1") -> KmsClient:
    return kms_client(server.endpoint, region=region, **who)


def denied(call: Any, **kwargs: Any) -> str:
    """The AccessDeniedException message of a refused call (HTTP 400)."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    assert response["Error"]["Code"] == "AccessDeniedException", response["Error"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return str(response["Error"]["Message"])


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def test_a_role_that_may_only_encrypt(server: RunningServer) -> None:
    admin = as_(server, ADMIN)
    key = admin.create_key()["KeyMetadata"]
    encryptor = as_(server, ENCRYPTOR)
    blob = encryptor.encrypt(KeyId=key["KeyId"], Plaintext=b"payload")["CiphertextBlob"]
    assert len(encryptor.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256")["Plaintext"]) == 32
    assert denied(encryptor.decrypt, CiphertextBlob=blob) == (
        f"User: {ENCRYPTOR_ARN} is not authorized to perform: kms:Decrypt on resource: "
        f"{key['Arn']} because no identity-based policy allows the kms:Decrypt action"
    )
    assert denied(encryptor.create_key) == (
        f"User: {ENCRYPTOR_ARN} is not authorized to perform: kms:CreateKey on resource: * "
        "because no identity-based policy allows the kms:CreateKey action"
    )
    assert admin.decrypt(CiphertextBlob=blob)["Plaintext"] == b"payload"
    # ReEncrypt needs kms:ReEncryptFrom and kms:ReEncryptTo: the role has neither.
    message = denied(encryptor.re_encrypt, CiphertextBlob=blob, DestinationKeyId=key["KeyId"])
    assert "kms:ReEncrypt" in message


def test_key_policy_deny_and_conditions(server: RunningServer) -> None:
    admin = as_(server, ADMIN)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Admins",
                "Effect": "Allow",
                "Principal": {"AWS": ADMIN_ARN},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "Decrypt billing data only",
                "Effect": "Allow",
                "Principal": {"AWS": ENCRYPTOR_ARN},
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:EncryptionContext:purpose": "billing"}},
            },
            {
                "Sid": "Never this one",
                "Effect": "Deny",
                "Principal": {"AWS": ENCRYPTOR_ARN},
                "Action": "kms:GenerateDataKey*",
                "Resource": "*",
            },
        ],
    }
    key = admin.create_key(Policy=json.dumps(policy))["KeyMetadata"]
    encryptor = as_(server, ENCRYPTOR)
    billing = admin.encrypt(
        KeyId=key["KeyId"], Plaintext=b"b", EncryptionContext={"purpose": "billing"}
    )["CiphertextBlob"]
    other = admin.encrypt(
        KeyId=key["KeyId"], Plaintext=b"o", EncryptionContext={"purpose": "other"}
    )["CiphertextBlob"]
    # Named directly by the key policy: its IAM policy (encrypt only) does not matter.
    assert (
        encryptor.decrypt(CiphertextBlob=billing, EncryptionContext={"purpose": "billing"})[
            "Plaintext"
        ]
        == b"b"
    )
    assert denied(
        encryptor.decrypt, CiphertextBlob=other, EncryptionContext={"purpose": "other"}
    ).endswith("because no resource-based policy allows the kms:Decrypt action")
    assert denied(encryptor.generate_data_key, KeyId=key["KeyId"], KeySpec="AES_256") == (
        f"User: {ENCRYPTOR_ARN} is not authorized to perform: kms:GenerateDataKey on resource: "
        f"{key['Arn']} with an explicit deny in a resource-based policy"
    )
    # The key policy names no account root, so IAM cannot open Encrypt to the role.
    assert denied(encryptor.encrypt, KeyId=key["KeyId"], Plaintext=b"x").endswith(
        "because no resource-based policy allows the kms:Encrypt action"
    )


def test_policy_checks_and_lockout(server: RunningServer) -> None:
    admin = as_(server, ADMIN)
    key_id = admin.create_key()["KeyMetadata"]["KeyId"]
    bad_principal = json.dumps(
        {
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": "bob"}, "Action": "kms:*", "Resource": "*"}
            ]
        }
    )
    assert error_of(admin.put_key_policy, KeyId=key_id, Policy=bad_principal) == (
        "MalformedPolicyDocumentException",
        "Policy contains a statement with one or more invalid principals.",
    )
    assert error_of(admin.create_key, Policy=bad_principal)[0] == (
        "MalformedPolicyDocumentException"
    )
    others_only = json.dumps(
        {
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": ENCRYPTOR_ARN},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ]
        }
    )
    assert error_of(admin.put_key_policy, KeyId=key_id, Policy=others_only) == (
        "MalformedPolicyDocumentException",
        "The new key policy will not allow you to update the key policy in the future.",
    )
    assert error_of(admin.create_key, Policy=others_only)[0] == "MalformedPolicyDocumentException"
    admin.put_key_policy(KeyId=key_id, Policy=others_only, BypassPolicyLockoutSafetyCheck=True)
    assert "kms:GetKeyPolicy" in denied(admin.get_key_policy, KeyId=key_id, PolicyName="default")
    # The role named there may now manage the key, whatever its IAM policy says.
    encryptor = as_(server, ENCRYPTOR)
    assert encryptor.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"] == others_only


def test_a_second_account(server: RunningServer) -> None:
    admin = as_(server, ADMIN)
    partner = as_(server, PARTNER)
    private = admin.create_key()["KeyMetadata"]
    assert denied(partner.encrypt, KeyId=private["Arn"], Plaintext=b"x") == (
        f"User: {PARTNER_ARN} is not authorized to perform: kms:Encrypt on resource: "
        f"{private['Arn']} because no resource-based policy allows the kms:Encrypt action"
    )
    shared_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{A}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Principal": {"AWS": B},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "*",
            },
        ],
    }
    shared = admin.create_key(Policy=json.dumps(shared_policy))["KeyMetadata"]
    admin.create_alias(AliasName="alias/shared", TargetKeyId=shared["KeyId"])
    blob = partner.encrypt(KeyId=shared["Arn"], Plaintext=b"cross")["CiphertextBlob"]
    alias_arn = f"arn:aws:kms:us-east-1:{A}:alias/shared"
    partner.encrypt(KeyId=alias_arn, Plaintext=b"by alias")
    assert partner.decrypt(CiphertextBlob=blob, KeyId=shared["Arn"])["Plaintext"] == b"cross"
    assert admin.decrypt(CiphertextBlob=blob)["Plaintext"] == b"cross"
    # The key policy allows GenerateDataKey to account B, but B's IAM policy does not.
    assert denied(partner.generate_data_key, KeyId=shared["Arn"], KeySpec="AES_256").endswith(
        "because no identity-based policy allows the kms:GenerateDataKey action"
    )
    # A bare key id or alias name always means the caller's own account.
    assert error_of(partner.encrypt, KeyId=shared["KeyId"], Plaintext=b"x")[0] == (
        "NotFoundException"
    )
    assert error_of(partner.encrypt, KeyId="alias/shared", Plaintext=b"x")[0] == (
        "NotFoundException"
    )
    # Its own keys: CreateKey is allowed by its IAM policy, the key lives in account B.
    own = partner.create_key()["KeyMetadata"]
    assert own["AWSAccountId"] == B


def test_a_service_with_a_grant(server: RunningServer) -> None:
    admin = as_(server, ADMIN)
    service = as_(server, SERVICE)
    key = admin.create_key()["KeyMetadata"]
    context = {"app": "billing"}
    assert denied(service.encrypt, KeyId=key["KeyId"], Plaintext=b"x").endswith(
        "because no identity-based policy allows the kms:Encrypt action"
    )
    grant = admin.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=SERVICE_ARN,
        RetiringPrincipal=ADMIN_ARN,
        Operations=["Encrypt", "Decrypt", "GenerateDataKey"],
        Constraints={"EncryptionContextSubset": context},
        Name="billing",
    )
    assert len(grant["GrantId"]) == 64
    again = admin.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=SERVICE_ARN,
        RetiringPrincipal=ADMIN_ARN,
        Operations=["Decrypt", "Encrypt", "GenerateDataKey"],
        Constraints={"EncryptionContextSubset": context},
        Name="billing",
    )
    assert again["GrantId"] == grant["GrantId"]
    # Usable at once, with or without the token.
    blob = service.encrypt(
        KeyId=key["KeyId"],
        Plaintext=b"s",
        EncryptionContext=context,
        GrantTokens=[grant["GrantToken"]],
    )["CiphertextBlob"]
    more = {**context, "extra": "ok"}
    service.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_128", EncryptionContext=more)
    assert service.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == b"s"
    # The constraint is enforced; operations outside the grant are not allowed.
    denied(service.encrypt, KeyId=key["KeyId"], Plaintext=b"s")
    denied(service.describe_key, KeyId=key["KeyId"])
    assert error_of(
        service.encrypt,
        KeyId=key["KeyId"],
        Plaintext=b"s",
        EncryptionContext=context,
        GrantTokens=["not-a-token"],
    )[0] == ("InvalidGrantTokenException")
    listed = admin.list_grants(KeyId=key["KeyId"])["Grants"]
    assert [g["GrantId"] for g in listed] == [grant["GrantId"]]
    assert listed[0]["GranteePrincipal"] == SERVICE_ARN
    assert listed[0]["IssuingAccount"] == f"arn:aws:iam::{A}:root"
    assert listed[0]["Constraints"] == {"EncryptionContextSubset": context}
    assert listed[0]["KeyId"] == key["Arn"]
    retirable = admin.list_retirable_grants(RetiringPrincipal=ADMIN_ARN)["Grants"]
    assert grant["GrantId"] in [g["GrantId"] for g in retirable]
    # The grantee may not retire it (RetireGrant is not among its operations)...
    denied(service.retire_grant, GrantToken=grant["GrantToken"])
    # ...the retiring principal may, and then the grant is gone.
    admin.retire_grant(KeyId=key["Arn"], GrantId=grant["GrantId"])
    denied(service.encrypt, KeyId=key["KeyId"], Plaintext=b"s", EncryptionContext=context)
    assert error_of(
        service.encrypt,
        KeyId=key["KeyId"],
        Plaintext=b"s",
        EncryptionContext=context,
        GrantTokens=[grant["GrantToken"]],
    )[0] == ("InvalidGrantTokenException")
    assert admin.list_grants(KeyId=key["KeyId"])["Grants"] == []
    # RevokeGrant by the key's administrators.
    second = admin.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=SERVICE_ARN, Operations=["DescribeKey", "RetireGrant"]
    )
    assert service.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Arn"] == key["Arn"]
    admin.revoke_grant(KeyId=key["KeyId"], GrantId=second["GrantId"])
    denied(service.describe_key, KeyId=key["KeyId"])
    assert error_of(admin.revoke_grant, KeyId=key["KeyId"], GrantId=second["GrantId"])[0] == (
        "NotFoundException"
    )
    # A grantee with RetireGrant may retire its own grant.
    third = admin.create_grant(
        KeyId=key["KeyId"], GranteePrincipal=SERVICE_ARN, Operations=["DescribeKey", "RetireGrant"]
    )
    service.retire_grant(GrantToken=third["GrantToken"])
    assert admin.list_grants(KeyId=key["KeyId"])["Grants"] == []


def test_grant_errors(server: RunningServer) -> None:
    admin = as_(server, ADMIN)
    key_id = admin.create_key()["KeyMetadata"]["KeyId"]
    assert error_of(
        admin.create_grant,
        KeyId=key_id,
        GranteePrincipal=SERVICE_ARN,
        Operations=["Sign"],
        Constraints={"EncryptionContextEquals": {"a": "b"}},
    )[0] == ("ValidationException")
    assert (
        error_of(
            admin.create_grant, KeyId=key_id, GranteePrincipal="nobody", Operations=["Encrypt"]
        )[0]
        == "ValidationException"
    )
    assert error_of(admin.list_grants, KeyId=key_id, GrantId="xyz")[0] == (
        "InvalidGrantIdException"
    )
    assert error_of(admin.retire_grant, GrantToken="bogus")[0] == "InvalidGrantTokenException"
    admin.disable_key(KeyId=key_id)
    assert (
        error_of(
            admin.create_grant, KeyId=key_id, GranteePrincipal=SERVICE_ARN, Operations=["Encrypt"]
        )[0]
        == "DisabledException"
    )


def test_the_aws_cli_and_the_thin_client_act_as_identities(
    server: RunningServer, tmp_path: Path
) -> None:
    admin = as_(server, ADMIN)
    key = admin.create_key()["KeyMetadata"]
    blob = admin.encrypt(KeyId=key["KeyId"], Plaintext=b"cli")["CiphertextBlob"]
    (tmp_path / "blob").write_bytes(blob)
    credentials = tmp_path / "credentials"
    credentials.write_text(CREDENTIALS)  # the identities file is an AWS CLI credentials file
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    }
    aws = str(Path(sys.executable).parent / "aws")

    def cli(profile: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                aws,
                "kms",
                "decrypt",
                "--ciphertext-blob",
                f"fileb://{tmp_path / 'blob'}",
                "--profile",
                profile,
                "--endpoint-url",
                server.endpoint,
                "--output",
                "json",
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    refused = cli("encryptor")
    assert refused.returncode != 0
    assert "AccessDeniedException" in refused.stderr
    assert f"User: {ENCRYPTOR_ARN} is not authorized to perform: kms:Decrypt" in refused.stderr
    allowed = cli("admin")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["KeyId"] == key["Arn"]

    thin = ThinClient(
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=ENCRYPTOR["access_key_id"],
        aws_secret_access_key=ENCRYPTOR["secret_access_key"],
        max_attempts=1,
    )
    try:
        thin.encrypt(KeyId=key["KeyId"], Plaintext=b"thin")
        with pytest.raises(KmsClientError) as caught:
            thin.decrypt(CiphertextBlob=blob)
        assert caught.value.code == "AccessDeniedException"
        assert "no identity-based policy allows the kms:Decrypt action" in caught.value.message
    finally:
        thin.close()


def test_refusals_are_audited(server: RunningServer) -> None:
    admin = as_(server, ADMIN)
    key = admin.create_key(Description="audited")["KeyMetadata"]
    denied(
        as_(server, ENCRYPTOR).decrypt,
        CiphertextBlob=admin.encrypt(KeyId=key["KeyId"], Plaintext=b"a")["CiphertextBlob"],
    )
    audit = server.data_dir.parent / "audit.jsonl"
    import time

    deadline = time.monotonic() + 10
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = (
            [json.loads(line) for line in audit.read_text().splitlines()]
            if (audit.exists())
            else []
        )
        # This test's refusal: the one on this key (earlier tests refused other keys).
        events = [
            e
            for e in events
            if e.get("errorCode") == "AccessDeniedException"
            and e["eventName"] == "Decrypt"
            and e.get("additionalEventData", {}).get("authorizations", [{}])[-1].get("resource")
            == key["Arn"]
        ]
        if events:
            break
        time.sleep(0.1)
    assert events, "no AccessDeniedException event in the audit log"
    assert events[-1]["userIdentity"]["arn"] == ENCRYPTOR_ARN
    assert events[-1]["userIdentity"]["type"] == "AssumedRole"
    assert events[-1]["additionalEventData"]["authorizations"] == [
        {
            "action": "kms:Decrypt",
            "resource": key["Arn"],
            "decision": "Deny",
            "reason": "no identity-based policy allows",
        }
    ]


def test_callers_outside_the_file(server: RunningServer) -> None:
    """Open mode: a profile's access key id takes its identity without the right secret, and
    anyone else is the root of the account a 12-digit key id names. Sigv4: both refused."""
    stranger = kms_client(server.endpoint, access_key_id="999988887777")
    encryptor = kms_client(
        server.endpoint, access_key_id=ENCRYPTOR["access_key_id"], secret_access_key="anything"
    )
    if server.env["MOCK_KMS_AUTH"] == "sigv4":
        assert error_of(stranger.create_key)[0] == "UnrecognizedClientException"
        assert error_of(encryptor.create_key)[0] == "InvalidSignatureException"
        return
    key = stranger.create_key()["KeyMetadata"]
    assert key["AWSAccountId"] == "999988887777"
    assert stranger.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Arn"] == key["Arn"]
    assert "kms:CreateKey" in denied(encryptor.create_key)


def test_a_grantee_with_create_grant_may_only_narrow(server: RunningServer) -> None:
    admin = as_(server, ADMIN)
    service = as_(server, SERVICE)
    key_id = admin.create_key()["KeyMetadata"]["KeyId"]
    admin.create_grant(
        KeyId=key_id,
        GranteePrincipal=SERVICE_ARN,
        Operations=["Encrypt", "Decrypt", "CreateGrant"],
        Constraints={"EncryptionContextSubset": {"app": "billing"}},
    )
    narrower = service.create_grant(
        KeyId=key_id,
        GranteePrincipal=PARTNER_ARN,
        Operations=["Decrypt"],
        Constraints={"EncryptionContextEquals": {"app": "billing", "team": "a"}},
    )
    assert len(narrower["GrantId"]) == 64
    assert "because the grant that allows it" in denied(
        service.create_grant,
        KeyId=key_id,
        GranteePrincipal=PARTNER_ARN,
        Operations=["Decrypt", "ReEncryptFrom"],
        Constraints={"EncryptionContextSubset": {"app": "billing"}},
    )
    denied(service.create_grant, KeyId=key_id, GranteePrincipal=PARTNER_ARN, Operations=["Decrypt"])


def test_alias_operations_need_both_keys_and_the_alias(server: RunningServer) -> None:
    admin = as_(server, ADMIN)
    mine = admin.create_key()["KeyMetadata"]["KeyId"]
    locked = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": ENCRYPTOR_ARN},
                "Action": "kms:*",
                "Resource": "*",
            }
        ]
    }
    theirs = admin.create_key(Policy=json.dumps(locked), BypassPolicyLockoutSafetyCheck=True)[
        "KeyMetadata"
    ]
    admin.create_alias(AliasName="alias/moving", TargetKeyId=mine)
    # The admin may not move the alias onto a key whose policy does not let it.
    assert "kms:UpdateAlias" in denied(
        admin.update_alias, AliasName="alias/moving", TargetKeyId=theirs["KeyId"]
    )
    # The role's IAM policy has no kms:UpdateAlias (nor kms:CreateAlias) on aliases.
    encryptor = as_(server, ENCRYPTOR)
    message = denied(encryptor.create_alias, AliasName="alias/theirs", TargetKeyId=theirs["KeyId"])
    assert message.endswith(
        f"on resource: arn:aws:kms:us-east-1:{A}:alias/theirs because no identity-based "
        "policy allows the kms:CreateAlias action"
    )
