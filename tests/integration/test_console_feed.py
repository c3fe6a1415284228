"""The console's request feed as the workers use it: several writers on one ring directory,
rotation that keeps the ring bounded, and reading back the newest requests as audit events.
Real files, real threads; no server needed."""

from __future__ import annotations

import threading
from pathlib import Path

from kms_service.console.feed import RING_FILE, RequestFeed, read_recent
from kms_service.operations import RequestScope

SCOPE = RequestScope("111122223333", "us-east-1", "arn:aws:iam::111122223333:root")
KEY = "4d441463-ee16-4c97-a836-ecda59fe74c3"


def _record(feed: RequestFeed, request_id: str, error: str | None = None) -> None:
    feed.record(
        request_id,
        "Encrypt",
        SCOPE,
        {"KeyId": KEY, "Plaintext": b"top secret", "EncryptionContext": {"tenant": "acme-42"}},
        {"KeyId": SCOPE.key_arn(KEY), "CiphertextBlob": b"blob"},
        error,
        "127.0.0.1",
        "test-agent",
    )


def test_events_read_back_newest_first_without_secrets(tmp_path: Path) -> None:
    feed = RequestFeed(tmp_path, "us-east-1")
    _record(feed, "first")
    _record(feed, "second", "DisabledException")
    feed.flush()
    entries = read_recent(tmp_path, "us-east-1")
    assert [e.request_id for e in entries] == ["second", "first"]
    assert entries[0].refused and entries[0].error_code == "DisabledException"
    assert not entries[1].refused
    event = entries[1].event
    assert event["eventName"] == "Encrypt" and event["eventSource"] == "kms.amazonaws.com"
    assert event["requestParameters"] == {"keyId": KEY, "encryptionContextKeys": ["tenant"]}
    assert event["resources"][0]["ARN"] == SCOPE.key_arn(KEY)
    assert event["userIdentity"]["arn"] == SCOPE.principal_arn
    # The event id is stable across reads (derived from the request id).
    assert read_recent(tmp_path, "us-east-1")[1].event["eventID"] == event["eventID"]
    ring = (tmp_path / RING_FILE).read_bytes()
    assert b"top secret" not in ring and b"acme-42" not in ring and b"blob" not in ring
    assert (tmp_path / RING_FILE).stat().st_mode & 0o777 == 0o600


def test_ring_stays_bounded_with_several_writers(tmp_path: Path) -> None:
    ring_bytes = 20_000
    writers = [RequestFeed(tmp_path, "us-east-1", ring_bytes=ring_bytes) for _ in range(3)]

    def write(index: int, feed: RequestFeed) -> None:
        for number in range(600):
            _record(feed, f"w{index}-{number:04d}")
            if number % 50 == 49:
                feed.flush()
        feed.flush()

    threads = [
        threading.Thread(target=write, args=(index, feed)) for index, feed in enumerate(writers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files = sorted(p.name for p in tmp_path.glob(RING_FILE + "*"))
    # It rotated (several times: 1,800 requests are far more than 2 x 20 kB), and kept at
    # most the two halves.
    assert RING_FILE + ".1" in files and set(files) <= {RING_FILE, RING_FILE + ".1"}
    # Each half stops growing at the first flush past the limit: one batch over at most.
    batch_bytes = 50 * 400 * len(writers)
    for name in files:
        assert (tmp_path / name).stat().st_size <= ring_bytes + batch_bytes
    # Every writer reopened the ring after the others rotated it: a last request from each
    # lands where the console reads (a writer still on a rotated-away file would be lost).
    for index, feed in enumerate(writers):
        _record(feed, f"final-{index}")
        feed.flush()
    newest = {e.request_id for e in read_recent(tmp_path, "us-east-1", limit=10)}
    assert {f"final-{index}" for index in range(len(writers))} <= newest
    lines = [line for name in files for line in (tmp_path / name).read_bytes().splitlines()]
    assert all(line.startswith(b"[") and line.endswith(b"]") for line in lines)  # none torn
