"""Helpers for the operability tests (tests/integration/test_clock_and_reset.py,
test_faults.py, test_metrics_audit.py, test_seed.py, test_deploy.py): the developer endpoints,
/metrics, and the ``mock-kms`` command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

from tests.support.server import RunningServer

DEV = {"MOCK_KMS_DEV_ENDPOINTS": "1"}


def admin(server: RunningServer, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One request to ``/_mock-kms<path>``; returns (status, decoded JSON or raw text)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{server.endpoint}/_mock-kms{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def metrics_text(server: RunningServer) -> str:
    with urllib.request.urlopen(f"{server.endpoint}/metrics", timeout=10) as response:
        assert response.status == 200
        return str(response.read().decode())


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when absent). Labels must match exactly."""
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if found == labels:
            return float(match.group(4))
    return 0.0


def mock_kms(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``mock-kms`` command line (as ``python -m kms_service.serving.cli``)."""
    return subprocess.run(
        [sys.executable, "-m", "kms_service.serving.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
