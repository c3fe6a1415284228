"""Driving ``wrk`` (Debian's package): one identical request replayed over keep-alive
connections, results read back as JSON from a generated Lua ``done`` hook.

wrk is C on epoll and uses a fraction of a core at these rates, so on a 2-core machine it
leaves the server nearly everything; its own CPU time is measured and reported anyway.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: Printed by the Lua hook as one line, prefixed so that wrk's own text can be skipped.
RESULT_PREFIX = "BENCH_RESULT "

_DONE_HOOK = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    PREFIX, summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class HttpRequest:
    """One request exactly as it goes on the wire (``Host`` included when it is signed)."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    generator_cpu_seconds: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def wrk_path() -> str | None:
    """The ``wrk`` executable, or None if it is not installed."""
    return shutil.which("wrk")


def lua_string(text: str | bytes) -> str:
    """A Lua string literal for ``text``: printable ASCII kept, everything else ``\\ddd``."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    out = []
    for byte in data:
        char = chr(byte)
        if 32 <= byte < 127 and char not in '"\\':
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def lua_script(request: HttpRequest) -> str:
    """The wrk script that sends ``request`` on every call and reports JSON when done."""
    lines = [
        f"PREFIX = {lua_string(RESULT_PREFIX)}",
        f"wrk.method = {lua_string(request.method)}",
        f"wrk.path = {lua_string(request.path)}",
        f"wrk.body = {lua_string(request.body)}",
        "wrk.headers = {}",
    ]
    lines += [
        f"wrk.headers[{lua_string(name)}] = {lua_string(value)}"
        for name, value in request.headers.items()
    ]
    return "\n".join(lines) + "\n" + _DONE_HOOK


def parse_output(stdout: str) -> dict[str, int]:
    """The JSON object the Lua hook printed. Raises ValueError if there is none."""
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            parsed: dict[str, int] = json.loads(line[len(RESULT_PREFIX) :])
            return parsed
    raise ValueError(f"wrk printed no result:\n{stdout}")


def run_wrk(
    endpoint: str, request: HttpRequest, connections: int, seconds: float, timeout_s: float = 5
) -> LoadResult:
    """Replay ``request`` on ``connections`` keep-alive connections for ``seconds``.

    One wrk thread: it keeps up with every server here, and the second core stays with the
    server. Raises RuntimeError if wrk fails.
    """
    executable = wrk_path()
    if executable is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "request.lua"
        script.write_text(lua_script(request))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        completed = subprocess.run(
            [
                executable,
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                f"--timeout={timeout_s:g}s",
                "-s",
                str(script),
                endpoint,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    data = parse_output(completed.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return LoadResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=data["errors"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        generator_cpu_seconds=cpu,
    )
