"""Several real ``mock-kms serve`` hosts behind the round-robin proxy (tests/support/hosts.py):
the hosts' own logs show that successive requests of one boto3 client alternate between
them, and the group works as one KMS."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_kms_client, store_settings_supported
from tests.support.hosts import HostGroup, start_hosts

pytestmark = pytest.mark.postgres

#: gunicorn's debug line for each request: "[time] [<worker pid>] [DEBUG] POST /".
_REQUEST_LINE = re.compile(r"^\[[^\]]+\] \[(\d+)\] \[DEBUG\] (POST|GET) (\S+)$", re.MULTILINE)


@pytest.fixture(scope="module", params=["shared-sqlite", "postgres"])
def group(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HostGroup]:
    """Two hosts (2 workers each) logging every request: on one SQLite data directory, and on
    one PostgreSQL database (once mock-kms has --database-url)."""
    base = tmp_path_factory.mktemp(f"hosts-{request.param}")
    debug = ["--log-level", "debug"]
    if request.param == "shared-sqlite":
        started = start_hosts(base, count=2, shared_data_dir=True, extra_args=debug)
    else:
        supported = store_settings_supported()
        if "database_url" not in supported:
            pytest.skip("this mock-kms has no --database-url yet")
        started = start_hosts(
            base,
            count=2,
            database_url=request.getfixturevalue("postgres").create_database(),
            s3_dir=base / "s3" if "s3_dir" in supported else None,
            extra_args=debug,
        )
    try:
        yield started
    finally:
        started.stop()


def _parent(pid: int) -> int:
    # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, not ")".
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _hosts_serving(group: HostGroup, text: str, path: str) -> list[int]:
    """For each request to ``path`` logged in ``text``, the index of the host that served it
    (its worker's parent is that host's gunicorn master)."""
    masters = group.pids
    return [
        masters.index(_parent(int(pid)))
        for pid, _method, logged_path in _REQUEST_LINE.findall(text)
        if logged_path == path
    ]


def test_successive_requests_of_one_client_alternate_between_hosts(group: HostGroup) -> None:
    assert len(set(group.pids)) == 2
    offset = group.log_path.stat().st_size
    path = "/alternation-probe"
    kms = make_kms_client(group.endpoint + path)  # one keep-alive connection pool
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for size in range(1, 11):
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"p" * size)["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"p" * size
    with group.log_path.open("rb") as log:
        log.seek(offset)
        served = _hosts_serving(group, log.read().decode(errors="replace"), path)
    assert len(served) == 21, served
    first = served[0]
    assert served == [(first + turn) % 2 for turn in range(21)]


def test_a_change_through_one_host_is_seen_by_the_other(group: HostGroup) -> None:
    first, second = (make_kms_client(host.endpoint) for host in group.hosts)
    key_id = first.create_key()["KeyMetadata"]["KeyId"]
    blob = first.encrypt(KeyId=key_id, Plaintext=b"secret")["CiphertextBlob"]
    assert second.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"
    first.disable_key(KeyId=key_id)
    with pytest.raises(second.exceptions.DisabledException):
        second.encrypt(KeyId=key_id, Plaintext=b"x")


def test_the_group_is_one_server_to_its_clients(group: HostGroup) -> None:
    assert group.endpoint == f"http://127.0.0.1:{group.proxy.port}"
    assert group.health()["status"] == "ok"
    assert group.data_dir == group.hosts[0].data_dir
    assert group.log_path.read_text().count("Listening at:") == 2  # one log for both
    root_keys = {(host.data_dir / "root.key").read_bytes() for host in group.hosts}
    assert len(root_keys) == 1
