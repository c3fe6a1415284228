"""The console's view of recent requests: a bounded ring file that every worker appends to.

Each gunicorn worker's :class:`RequestFeed` is handed the facts of every KMS request by the
request recorder (:mod:`kms_service.observability.recording`) and only appends a tuple to an
in-memory deque: no lock, no I/O, no formatting on the request's path. A background thread of
the worker reduces each tuple to a compact JSON line, passing the request through the audit
log's allow-list (:func:`kms_service.observability.audit.request_parameters`, which keeps
plaintext, data keys and context values out), and appends the lines, one ``write`` on an
``O_APPEND`` descriptor, to ``<data-dir>/console/requests.jsonl``. Reading rebuilds the
audit log's CloudTrail-shaped event (:func:`~kms_service.observability.audit.build_event`)
from each line.

The ring is two files: when the current one passes :data:`RING_BYTES`, the writer that
notices renames it to ``requests.jsonl.1`` (replacing the older half) under a file lock, and
every worker reopens the path on its next flush. So the ring never exceeds about twice
:data:`RING_BYTES`, and the console reads the newest events from the end of both files.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kms_service.observability.audit import _key_arn, build_event, request_parameters

log = logging.getLogger("mock_kms.console")

RING_FILE = "requests.jsonl"
RING_LOCK = "requests.lock"
#: Size at which the current half of the ring is rotated (about 10,000 events).
RING_BYTES = 4 * 1024 * 1024
FLUSH_SECONDS = 0.25
#: Events buffered in memory before the oldest are dropped (a writer that cannot keep up must
#: not grow the worker without bound).
MAX_PENDING = 50_000
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)

#: One request as the recorder hands it over: (time, request id, operation, caller, params,
#: result, error code, source IP, user agent).
Facts = tuple[float, str, str, Any, Any, Any, Any, Any, Any]


class RequestFeed:
    """Per-worker writer of the ring (see the module docstring). Thread-safe."""

    def __init__(self, directory: Path, default_region: str, ring_bytes: int = RING_BYTES) -> None:
        self._directory = directory
        self._path = directory / RING_FILE
        self._default_region = default_region
        self._ring_bytes = ring_bytes
        # deque.append and popleft are atomic: recording takes no lock; the oldest events go
        # first if a writer cannot keep up.
        self._pending: deque[Facts] = deque(maxlen=MAX_PENDING)
        self._flush_lock = threading.Lock()
        self._fd: int | None = None
        self._thread_pid: int | None = None
        self._closed = False
        directory.mkdir(parents=True, exist_ok=True)
        atexit.register(self.close)

    @property
    def path(self) -> Path:
        return self._path

    def record(
        self,
        request_id: str,
        operation: str,
        caller: Any,
        params: Mapping[str, Any] | None,
        result: Mapping[str, Any] | None,
        error_code: str | None,
        source_ip: str | None,
        user_agent: str | None,
    ) -> None:
        """Queue one answered request: a deque append, nothing else on the request's path."""
        self._pending.append(
            (time.time(), request_id, operation, caller, params, result, error_code, source_ip,
             user_agent)
        )  # fmt: skip
        if self._thread_pid != os.getpid():
            self._start_writer()

    def _start_writer(self) -> None:
        with self._flush_lock:
            if self._thread_pid == os.getpid():
                return
            # Started in the process that records (a worker, after fork), never inherited.
            self._thread_pid = os.getpid()
            self._fd = None
        threading.Thread(target=self._run, name="mock-kms-console-feed", daemon=True).start()

    def _run(self) -> None:
        while not self._closed:
            time.sleep(FLUSH_SECONDS)
            self.flush()

    def flush(self) -> None:
        """Append every queued event to the ring. Errors are logged, never raised."""
        with self._flush_lock:
            pending = self._pending
            lines = []
            while pending:
                lines.append(self._line(pending.popleft()))
            if not lines:
                return
            try:
                self._append(b"".join(lines))
            except OSError as exc:
                log.error("console feed: write failed, %d events lost: %s", len(lines), exc)

    def _line(self, facts: Facts) -> bytes:
        """One compact ring line: only what the audit event is made of, already filtered by
        the audit log's allow-list (:func:`request_parameters`); :func:`read_recent` builds
        the full event from it. Cheaper to write than the event itself, which matters since
        every request pays it."""
        at, request_id, operation, caller, params, result, error_code, source_ip, agent = facts
        who = None if caller is None else [caller.account_id, caller.region, caller.principal_arn]
        record = [
            round(at, 6), request_id, operation, who, _key_arn(params, result, caller),
            request_parameters(params), error_code, source_ip, agent,
        ]  # fmt: skip
        return (_ENCODER.encode(record) + "\n").encode()

    def _append(self, data: bytes) -> None:
        fd = self._current_fd()
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if os.fstat(fd).st_size > self._ring_bytes:
            self._rotate(fd)

    def _current_fd(self) -> int:
        """The descriptor of the ring's current half, reopened when another worker rotated."""
        fd = self._fd
        if fd is not None:
            try:
                if os.stat(self._path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._fd = fd
        return fd

    def _rotate(self, fd: int) -> None:
        lock_fd = os.open(self._directory / RING_LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            # Only if no other worker rotated it meanwhile.
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self._path).st_ino == os.fstat(fd).st_ino:
                    os.replace(self._path, self._path.with_name(RING_FILE + ".1"))
        finally:
            os.close(lock_fd)

    def close(self) -> None:
        """Flush and stop."""
        if self._closed:
            return
        if self._thread_pid == os.getpid():
            self.flush()
        self._closed = True
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


@dataclass(frozen=True)
class FeedEntry:
    """One recorded request, as the console shows it."""

    at: float
    event: dict[str, Any]

    @property
    def request_id(self) -> str:
        return str(self.event.get("requestID", ""))

    @property
    def operation(self) -> str:
        return str(self.event.get("eventName", ""))

    @property
    def principal(self) -> str:
        identity = self.event.get("userIdentity") or {}
        return str(identity.get("arn") or identity.get("type") or "")

    @property
    def key_arn(self) -> str:
        resources = self.event.get("resources") or []
        return str(resources[0].get("ARN", "")) if resources else ""

    @property
    def error_code(self) -> str:
        return str(self.event.get("errorCode") or "")

    @property
    def refused(self) -> bool:
        """Whether the request was turned down (any error code)."""
        return bool(self.error_code)

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "requestId": self.request_id,
            "operation": self.operation,
            "principal": self.principal,
            "key": self.key_arn,
            "error": self.error_code,
            "event": self.event,
        }


#: How much of the end of each half the console reads.
TAIL_BYTES = 2 * 1024 * 1024


def _tail_lines(path: Path, limit: int) -> list[bytes]:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            start = max(0, size - limit)
            handle.seek(start)
            data = handle.read()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first line is cut
    return [line for line in lines if line]


def read_recent(directory: Path, default_region: str, limit: int = 500) -> list[FeedEntry]:
    """The newest ``limit`` recorded requests of every worker, newest first."""
    path = directory / RING_FILE
    raw = _tail_lines(path.with_name(RING_FILE + ".1"), TAIL_BYTES) + _tail_lines(path, TAIL_BYTES)
    entries = list(_parse(raw, default_region))
    entries.sort(key=_at, reverse=True)
    return entries[:limit]


@dataclass(frozen=True)
class _Caller:
    account_id: str
    region: str
    principal_arn: str


#: Event ids are derived from request ids, so a record shows the same id on every read.
_EVENT_NAMESPACE = uuid.UUID("6f1d1f9e-4a53-4c1e-9a0e-6d6f636b6b6d")


def _parse(lines: list[bytes], default_region: str) -> Iterator[FeedEntry]:
    """Rebuild each line's audit event with the audit log's own :func:`build_event`."""
    for line in lines:
        try:
            at, request_id, operation, who, arn, logged, error_code, source_ip, agent = json.loads(
                line
            )
            caller = None if who is None else _Caller(*who)
            event = build_event(
                event_time=float(at),
                request_id=str(request_id),
                operation=str(operation),
                scope=caller,
                params=None,
                result={"KeyId": arn} if arn else None,
                error_code=error_code,
                source_ip=source_ip,
                user_agent=agent,
                default_region=default_region,
            )
        except (ValueError, TypeError):
            continue  # a line cut by a crash mid-write, or not ours
        event["requestParameters"] = logged
        event["eventID"] = str(uuid.uuid5(_EVENT_NAMESPACE, str(request_id)))
        yield FeedEntry(float(at), event)


def _at(entry: FeedEntry) -> float:
    return entry.at
