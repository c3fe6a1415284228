"""Process plumbing for the benchmark: free ports, readiness, process trees, RSS and CPU.

Everything here reads ``/proc`` (Linux only, like the rest of the bench). Processes are only
ever stopped through the :class:`subprocess.Popen` object that started them, by PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(probe: Callable[[], bool], timeout: float, interval: float = 0.01) -> float:
    """Call ``probe`` until it returns True; returns the seconds waited.

    Exceptions from ``probe`` count as "not yet". Raises TimeoutError after ``timeout``.
    """
    start = time.monotonic()
    while True:
        with contextlib.suppress(Exception):
            if probe():
                return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"not ready after {timeout:.0f}s")
        time.sleep(interval)


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; it ends at the last ")".
    return text[text.rindex(")") + 2 :].split()


def tree_pids(root: int) -> list[int]:
    """``root`` and all its descendants (gunicorn master and workers, say)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    result, pending = [], [root]
    while pending:
        pid = pending.pop()
        result.append(pid)
        pending.extend(children.get(pid, []))
    return result


def tree_rss_kib(root: int) -> int:
    """Resident memory of the whole tree now, in KiB (sum of each process's RSS)."""
    total = 0
    for pid in tree_pids(root):
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[21]) * _PAGE_KIB  # field 24 (rss, pages), 0-based after comm
    return total


def tree_cpu_seconds(root: int) -> float:
    """User plus system CPU seconds used so far by the live processes of the tree."""
    ticks = 0
    for pid in tree_pids(root):
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / _CLOCK_TICKS


def trees_cpu_seconds(roots: Sequence[int]) -> float:
    """:func:`tree_cpu_seconds` summed over several trees (the hosts of one system)."""
    return sum(tree_cpu_seconds(root) for root in roots)


class RssSampler:
    """Samples the total RSS of one or more process trees in a background thread and keeps
    the peak.

    Sums the RSS of all processes sampled at the same moment, so the peak is a peak of the
    server as a whole (pages shared after fork count once per process, as ``ps`` shows them).
    """

    def __init__(self, root: int | Sequence[int], interval: float = 0.1) -> None:
        self.roots = [root] if isinstance(root, int) else list(root)
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"rss-{self.roots[0]}")

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(tree_rss_kib(root) for root in self.roots)
            self.peak_kib = max(self.peak_kib, total)
            self._stop.wait(self.interval)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> int:
        """Stop sampling; returns the peak in KiB."""
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak_kib


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the process we started (by its PID), SIGKILL it if it does not exit."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
