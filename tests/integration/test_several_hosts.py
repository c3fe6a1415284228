"""Several hosts, one KMS: two ``mock-kms serve`` processes (each with its own gunicorn
workers and data directory) on one PostgreSQL database and one root key.

For each change that every host must see at once (key disabled and enabled again, alias
retargeted, key scheduled for deletion and then deleted by the clock, grant revoked, key
policy changed, clock advanced), threads hammer host B with requests on fresh connections
while host A makes the change. Every request to B that *started* after A acknowledged the
change must see it (requests in flight across the acknowledgement may see either state), and
so must one request from a brand-new thread right after the acknowledgement.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.cross_host import (
    Answer,
    Cluster,
    Hammer,
    admin,
    call,
    new_account,
    running_cluster,
)
from tests.support.postgres import PostgresServer
from tests.support.server import RunningServer

#: Threads hammering host B during each change.
THREADS = 6
#: How long the hammering goes on after the acknowledgement.
AFTER_ACK_S = 0.6
PLAINTEXT = base64.b64encode(b"cross-host").decode()


pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def cluster(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    """Two hosts on a fresh database of the session's PostgreSQL server."""
    base = tmp_path_factory.mktemp("several-hosts")
    with running_cluster(base, hosts=2, postgres=postgres) as started:
        yield started


@pytest.fixture()
def a(cluster: Cluster) -> RunningServer:
    """The host that makes each change."""
    return cluster.hosts[0]


@pytest.fixture()
def b(cluster: Cluster) -> RunningServer:
    """The host that must see it."""
    return cluster.hosts[1]


def ok(host: RunningServer, operation: str, params: dict[str, Any], account: str) -> Any:
    """``operation``'s answer body; fails the test unless it succeeded."""
    answer = call(host, operation, params, account)
    assert answer.status == 200, (operation, answer)
    return answer.body


def create_key(host: RunningServer, account: str, **params: Any) -> str:
    return str(ok(host, "CreateKey", params, account)["KeyMetadata"]["KeyId"])


def label(answer: Answer, *, old: str | None, new: str | None) -> str:
    """ "old" or "new" when ``answer`` is the outcome before or after the change (an error
    name, or None for success), else what it was."""
    outcome = answer.error
    if outcome == old:
        return "old"
    if outcome == new:
        return "new"
    return outcome or "ok"


def fresh_thread(request: Callable[[], str]) -> str:
    """``request()`` run in a thread started now (no state shared with earlier requests)."""
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(request()))
    thread.start()
    thread.join(30)
    assert result, "the request did not finish in 30 s"
    return result[0]


def seen_at_once(probe: Callable[[], str], change: Callable[[], None]) -> None:
    """Hammer host B with ``probe`` until its answers are "old" (the caches are warm), run
    ``change`` on host A, and check that every probe started after ``change`` returned, and
    one from a fresh thread right then, answered "new"."""
    with Hammer(probe, THREADS) as hammer:
        hammer.wait_for("old")
        change()
        acknowledged = time.monotonic()
        assert fresh_thread(probe) == "new"
        time.sleep(AFTER_ACK_S)
    after = hammer.started_after(acknowledged)
    assert len(after) >= THREADS, (len(after), hammer.outcomes())
    stale = [probe for probe in after if probe.outcome != "new"]
    assert not stale, (
        f"{len(stale)} of {len(after)} requests started after the acknowledgement saw "
        f"{sorted({probe.outcome for probe in stale})}, "
        f"the first {stale[0].started - acknowledged:.4f}s after it"
    )


def test_disabled_and_enabled_key(a: RunningServer, b: RunningServer) -> None:
    account = new_account()
    key = create_key(a, account)
    encrypt = {"KeyId": key, "Plaintext": PLAINTEXT}
    decrypt = {"CiphertextBlob": ok(a, "Encrypt", encrypt, account)["CiphertextBlob"]}
    turn = itertools.count()

    def use_key() -> Answer:
        # Encrypt and Decrypt in turn (the counter is shared by the threads: any mix will do).
        if next(turn) % 2:
            return call(b, "Decrypt", decrypt, account)
        return call(b, "Encrypt", encrypt, account)

    # Three rounds: the window a stale cache would leave is milliseconds wide.
    for _ in range(3):
        seen_at_once(
            lambda: label(use_key(), old=None, new="DisabledException"),
            lambda: ok(a, "DisableKey", {"KeyId": key}, account),
        )
        # And back: a host that cached "disabled" must not keep refusing.
        seen_at_once(
            lambda: label(use_key(), old="DisabledException", new=None),
            lambda: ok(a, "EnableKey", {"KeyId": key}, account),
        )


def test_alias_retargeted(a: RunningServer, b: RunningServer) -> None:
    account = new_account()
    first, second = create_key(a, account), create_key(a, account)
    ok(a, "CreateAlias", {"AliasName": "alias/moving", "TargetKeyId": first}, account)

    def probe() -> str:
        answer = call(b, "Encrypt", {"KeyId": "alias/moving", "Plaintext": PLAINTEXT}, account)
        if answer.status != 200:
            return answer.error or "?"
        used = str(answer.body["KeyId"])
        return "old" if used.endswith(first) else "new" if used.endswith(second) else used

    seen_at_once(
        probe,
        lambda: ok(a, "UpdateAlias", {"AliasName": "alias/moving", "TargetKeyId": second}, account),
    )


def test_key_scheduled_for_deletion_then_deleted_by_the_clock(
    a: RunningServer, b: RunningServer
) -> None:
    account = new_account()
    key = create_key(a, account)
    seen_at_once(
        lambda: label(
            call(b, "Encrypt", {"KeyId": key, "Plaintext": PLAINTEXT}, account),
            old=None,
            new="KMSInvalidStateException",
        ),
        lambda: ok(a, "ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": 7}, account),
    )
    try:
        # The deletion falls due when the clock passes it: B's next request finds no key
        # (whichever host's request or sweep applied the deletion first).
        seen_at_once(
            lambda: label(
                call(b, "DescribeKey", {"KeyId": key}, account), old=None, new="NotFoundException"
            ),
            lambda: admin(a, "POST", "/clock/advance", {"duration": "8d"}),
        )
    finally:
        admin(a, "POST", "/clock/reset")
    for host in (a, b):
        assert ok(host, "ListKeys", {}, account)["Keys"] == []


def test_grant_revoked(a: RunningServer, b: RunningServer) -> None:
    owner, grantee = new_account(), new_account()
    key_arn = ok(a, "CreateKey", {}, owner)["KeyMetadata"]["Arn"]
    encrypt = {"KeyId": key_arn, "Plaintext": PLAINTEXT}
    assert call(b, "Encrypt", encrypt, grantee).error == "AccessDeniedException"
    grant = ok(
        a,
        "CreateGrant",
        {
            "KeyId": key_arn,
            "GranteePrincipal": f"arn:aws:iam::{grantee}:root",
            "Operations": ["Encrypt"],
        },
        owner,
    )["GrantId"]
    seen_at_once(
        lambda: label(call(b, "Encrypt", encrypt, grantee), old=None, new="AccessDeniedException"),
        lambda: ok(a, "RevokeGrant", {"KeyId": key_arn, "GrantId": grant}, owner),
    )


def _policy(*accounts: str) -> str:
    owner = accounts[0]
    statements: list[dict[str, Any]] = [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{owner}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    statements += [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{other}:root"},
            "Action": ["kms:Encrypt"],
            "Resource": "*",
        }
        for other in accounts[1:]
    ]
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def test_key_policy_changed(a: RunningServer, b: RunningServer) -> None:
    owner, partner = new_account(), new_account()
    key_arn = ok(a, "CreateKey", {"Policy": _policy(owner, partner)}, owner)["KeyMetadata"]["Arn"]
    encrypt = {"KeyId": key_arn, "Plaintext": PLAINTEXT}
    seen_at_once(
        lambda: label(call(b, "Encrypt", encrypt, partner), old=None, new="AccessDeniedException"),
        lambda: ok(
            a,
            "PutKeyPolicy",
            {"KeyId": key_arn, "PolicyName": "default", "Policy": _policy(owner)},
            owner,
        ),
    )


def test_clock_advanced(a: RunningServer, b: RunningServer) -> None:
    day = 86400.0
    start = admin(b, "GET", "/clock")["offset_seconds"]

    def probe() -> str:
        offset = admin(b, "GET", "/clock")["offset_seconds"]
        return "old" if offset == start else "new" if offset == start + 3 * day else str(offset)

    try:
        seen_at_once(probe, lambda: admin(a, "POST", "/clock/advance", {"duration": "3d"}))
        # What the clock is for: a key made on B right after is three days in the future.
        account = new_account()
        created = ok(b, "CreateKey", {}, account)["KeyMetadata"]["CreationDate"]
        ahead = created - datetime.now(UTC).timestamp()
        assert 3 * day - 60 < ahead < 3 * day + 60
    finally:
        admin(a, "POST", "/clock/reset")


def test_ciphertext_from_one_host_decrypts_on_the_other(a: RunningServer, b: RunningServer) -> None:
    account = new_account()
    # A key created on B and used on A at once: its material is in the shared keystore.
    for maker, user in ((a, b), (b, a)):
        key = create_key(maker, account)
        blob = ok(maker, "Encrypt", {"KeyId": key, "Plaintext": PLAINTEXT}, account)
        back = ok(user, "Decrypt", {"CiphertextBlob": blob["CiphertextBlob"]}, account)
        assert back["Plaintext"] == PLAINTEXT
        assert back["KeyId"] == blob["KeyId"]
        data_key = ok(user, "GenerateDataKey", {"KeyId": key, "KeySpec": "AES_256"}, account)
        again = ok(maker, "Decrypt", {"CiphertextBlob": data_key["CiphertextBlob"]}, account)
        assert again["Plaintext"] == data_key["Plaintext"]
        # A rotation on one host: new ciphertexts on the other use the new material, and
        # the old ciphertext still decrypts there.
        ok(maker, "RotateKeyOnDemand", {"KeyId": key}, account)
        newer = ok(user, "Encrypt", {"KeyId": key, "Plaintext": PLAINTEXT}, account)
        assert newer["CiphertextBlob"][:60] != blob["CiphertextBlob"][:60]
        assert (
            ok(maker, "Decrypt", {"CiphertextBlob": newer["CiphertextBlob"]}, account)["Plaintext"]
            == PLAINTEXT
        )
        assert (
            ok(user, "Decrypt", {"CiphertextBlob": blob["CiphertextBlob"]}, account)["Plaintext"]
            == PLAINTEXT
        )


def test_concurrent_creates_on_both_hosts_lose_nothing(a: RunningServer, b: RunningServer) -> None:
    account = new_account()
    created: list[str] = []
    aliases: list[str] = []
    failures: list[Answer] = []
    lock = threading.Lock()

    def worker(host: RunningServer, index: int) -> None:
        for n in range(6):
            answer = call(host, "CreateKey", {"Description": f"t{index}-{n}"}, account)
            if answer.status != 200:
                failures.append(answer)
                continue
            key = str(answer.body["KeyMetadata"]["KeyId"])
            alias = f"alias/t{index}-{n}"
            made = call(host, "CreateAlias", {"AliasName": alias, "TargetKeyId": key}, account)
            with lock:
                created.append(key)
                if made.status == 200:
                    aliases.append(alias)
                else:
                    failures.append(made)

    threads = [threading.Thread(target=worker, args=((a, b)[i % 2], i)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures[:3]
    assert len(created) == 48 == len(set(created))
    for host in (a, b):
        listed = {key["KeyId"] for key in ok(host, "ListKeys", {"Limit": 1000}, account)["Keys"]}
        assert listed == set(created)
        names = {
            alias["AliasName"]
            for alias in ok(host, "ListAliases", {"Limit": 100}, account)["Aliases"]
            if "TargetKeyId" in alias
        }
        assert names == set(aliases)


def test_a_nul_character_is_refused_not_a_server_error(a: RunningServer, b: RunningServer) -> None:
    """PostgreSQL's TEXT cannot hold U+0000 (SQLite can): a member carrying one is a 400
    ValidationException naming no internals, and nothing of the request is stored."""
    account = new_account()
    answer = call(a, "CreateKey", {"Description": "before\u0000after"}, account)
    assert (answer.status, answer.error) == (400, "ValidationException"), answer
    assert "U+0000" in answer.body["message"] and "psycopg" not in answer.body["message"]
    assert call(b, "ListKeys", {}, account).body["Keys"] == []
    key_id = call(b, "CreateKey", {}, account).body["KeyMetadata"]["KeyId"]
    tagged = call(a, "TagResource", {"KeyId": key_id, "Tags": [
        {"TagKey": "k", "TagValue": "v\u0000"}]}, account)  # fmt: skip
    assert (tagged.status, tagged.error) == (400, "ValidationException"), tagged
    assert call(b, "ListResourceTags", {"KeyId": key_id}, account).body["Tags"] == []
