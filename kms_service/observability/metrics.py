"""Prometheus metrics for ``GET /metrics``: requests by operation and error code, latency
histograms, injected faults, keys by state and backend health.

gunicorn runs several worker processes and a scrape reaches only one of them, so counters and
histograms use prometheus-client's multiprocess mode: each worker writes its values to small
memory-mapped files in a directory that the gunicorn master creates before forking
(:func:`prepare_multiprocess_dir`), and a scrape sums them. Recording is an in-memory write;
no lock is shared between processes and no file is opened per request. Keys by state and
backend health are computed at scrape time, from the database and the backends.

``prometheus_client`` decides between single- and multi-process mode when it is first
imported, from ``PROMETHEUS_MULTIPROC_DIR``; this module therefore imports it lazily, after
the master has set that variable.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kms_service.operations import Services

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: The label value of successful requests in ``mock_kms_requests_total``.
NO_ERROR = "none"
_PREFIX = "mock-kms-metrics-"


def prepare_multiprocess_dir() -> Path:
    """Create a fresh directory for the workers' metric files and point
    ``PROMETHEUS_MULTIPROC_DIR`` at it; removed when this (master) process exits.

    Call in the gunicorn master before it forks and before anything imports
    ``prometheus_client``. A fresh directory per run, because values left by an earlier run
    would be added to this one's.
    """
    master_pid = os.getpid()
    _remove_orphans(Path(tempfile.gettempdir()))
    path = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{master_pid}-"))
    os.environ[MULTIPROC_ENV] = str(path)

    def remove() -> None:
        if os.getpid() == master_pid:  # not in a forked worker that exits
            shutil.rmtree(path, ignore_errors=True)

    atexit.register(remove)
    return path


def _remove_orphans(directory: Path) -> None:
    """Remove the metric directories of masters that are gone (a master killed before its
    exit handler ran leaves its directory behind)."""
    for candidate in directory.glob(f"{_PREFIX}*-*"):
        pid_text = candidate.name[len(_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        shutil.rmtree(candidate, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def mark_worker_dead(pid: int) -> None:
    """gunicorn ``child_exit`` hook body: drop a dead worker's live-gauge files."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


class _StateCollector:
    """Keys by state and backend health, read when scraped."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        keys = GaugeMetricFamily("mock_kms_keys", "KMS keys by key state", labels=["state"])
        for state, count in sorted(self._services.store.count_keys_by_state().items()):
            keys.add_metric([state], count)
        yield keys
        up = GaugeMetricFamily(
            "mock_kms_backend_up", "1 when the key backend is usable", labels=["backend"]
        )
        for name, backend in sorted(self._services.backends.items()):
            up.add_metric([name], 1.0 if backend.health().ok else 0.0)
        yield up


class RequestMetrics:
    """The per-process recorder and the scrape renderer."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # In multiprocess mode the values go to the shared files and a scrape reads them
        # back through MultiProcessCollector; a registry here would count them twice.
        self._local = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "mock_kms_requests",
            "KMS requests by operation and error code (none: success)",
            ["operation", "error_code"],
            registry=self._local,
        )
        self._latency = Histogram(
            "mock_kms_request_duration_seconds",
            "Time to answer a KMS request, by operation",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self._local,
        )
        self._faults = Counter(
            "mock_kms_injected_faults",
            "Faults injected by the fault-injection rules, by operation and fault",
            ["operation", "fault"],
            registry=self._local,
        )
        # The labelled children, by (operation, error code): ``.labels()`` on every request
        # costs more than the recording itself. Both label values come from bounded sets.
        self._children: dict[tuple[str, str | None], tuple[Any, Any]] = {}

    def observe(self, operation: str, error_code: str | None, seconds: float) -> None:
        """Count one answered request and its latency."""
        children = self._children.get((operation, error_code))
        if children is None:
            children = (
                self._requests.labels(operation, error_code or NO_ERROR),
                self._latency.labels(operation),
            )
            self._children[(operation, error_code)] = children
        children[0].inc()
        children[1].observe(seconds)

    def fault(self, operation: str, fault: str) -> None:
        self._faults.labels(operation, fault).inc()

    def render(self, services: Services) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            for metric in (self._requests, self._latency, self._faults):
                registry.register(metric)
        registry.register(_StateCollector(services))
        return generate_latest(registry), CONTENT_TYPE_LATEST
