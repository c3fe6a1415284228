"""Identities in the credentials file, grant constraints, and grants removed with their key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kms_service.domain.errors import ConfigurationError
from kms_service.operations.grant_rules import constraints_met
from kms_service.store import GrantRecord, MetadataStore
from kms_service.wire.auth.credentials import CredentialStore
from tests.support.records import key_record

DEFAULT = "111122223333"
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}],
    }
)


def load(tmp_path: Path, body: str) -> CredentialStore:
    path = tmp_path / "credentials"
    path.write_text(body)
    return CredentialStore.load(path, DEFAULT)


def test_profiles_take_principals_and_iam_policies(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(POLICY)
    store = load(
        tmp_path,
        "[plain]\naws_access_key_id = K1\naws_secret_access_key = s\n\n"
        "[role]\naws_access_key_id = K2\naws_secret_access_key = s\n"
        "principal_arn = arn:aws:iam::444455556666:role/app\n"
        f"iam_policy = {POLICY}\n\n"
        "[filed]\naws_access_key_id = K3\naws_secret_access_key = s\n"
        "iam_policy_file = p.json\n",
    )
    plain = store.lookup("K1")
    assert plain is not None
    assert plain.identity().principal_arn == f"arn:aws:iam::{DEFAULT}:user/plain"
    assert plain.identity().iam_policy is None
    role = store.lookup("K2")
    assert role is not None
    assert role.account_id == "444455556666"  # from the principal ARN
    assert role.identity().iam_policy is not None
    filed = store.lookup("K3")
    assert filed is not None and filed.iam_policy is not None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("principal_arn = bob", "principal_arn 'bob' is not an IAM user, role or root ARN"),
        (
            "principal_arn = arn:aws:iam::444455556666:user/x\naws_account_id = 777788889999",
            "principal_arn is in account 444455556666 but aws_account_id is 777788889999",
        ),
        (
            "iam_policy = {not json",
            "iam_policy is not an IAM policy: The policy document is not valid JSON.",
        ),
        (
            'iam_policy = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "kms:*",'
            ' "Resource": "*"}]}',
            "should not specify a principal",
        ),
        ("iam_policy_file = missing.json", "cannot read iam_policy_file"),
        (f"iam_policy = {POLICY}\niam_policy_file = p.json", "not both"),
    ],
)
def test_bad_identities_are_configuration_errors(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match="\\[p\\]") as caught:
        load(tmp_path, f"[p]\naws_access_key_id = K\naws_secret_access_key = s\n{extra}\n")
    assert message in str(caught.value)


def test_constraints() -> None:
    assert constraints_met(None, None)
    assert constraints_met({"EncryptionContextSubset": {"a": "1"}}, {"a": "1", "b": "2"})
    assert not constraints_met({"EncryptionContextSubset": {"a": "1"}}, {"A": "1"})
    assert not constraints_met({"EncryptionContextSubset": {"a": "1"}}, None)
    assert constraints_met({"EncryptionContextEquals": {"a": "1"}}, {"a": "1"})
    assert not constraints_met({"EncryptionContextEquals": {"a": "1"}}, {"a": "1", "b": "2"})


def test_grants_go_with_their_key(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path)
    store.initialise()
    key = key_record(account_id=DEFAULT)
    grant = GrantRecord(
        grant_id="a" * 64,
        account_id=DEFAULT,
        region="us-east-1",
        key_id=key.key_id,
        grant_token="token",
        name=None,
        grantee_principal=f"arn:aws:iam::{DEFAULT}:user/x",
        retiring_principal=None,
        issuing_account=f"arn:aws:iam::{DEFAULT}:root",
        operations=("Encrypt",),
        constraints={"EncryptionContextEquals": {"a": "b"}},
        creation_date=1.0,
    )
    with store.write():
        store.insert_key(key)
        store.insert_grant(grant)
    assert store.grant_by_token("token") == grant
    with store.write():
        store.delete_key(key)
    assert store.grant_by_id(grant.grant_id) is None
    store.close()
