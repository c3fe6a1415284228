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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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


def _lua_headers(request: HttpRequest) -> str:
    pairs = ", ".join(
        f"[{lua_string(name)}] = {lua_string(value)}" for name, value in request.headers.items()
    )
    return "{" + pairs + "}"


def lua_script(
    request: HttpRequest | Sequence[HttpRequest], addresses: Sequence[tuple[str, int]] = ()
) -> str:
    """The wrk script that sends ``request`` on every call and reports JSON when done.

    Several requests: each wrk thread sends them in turn (first, second,
    first, ...). ``addresses``: wrk thread ``i`` connects to ``addresses[i % n]`` instead of
    the command line's URL (one thread per host: the load split evenly between hosts).
    """
    requests = [request] if isinstance(request, HttpRequest) else list(request)
    if not requests:
        raise ValueError("no request to send")
    first = requests[0]
    lines = [
        f"PREFIX = {lua_string(RESULT_PREFIX)}",
        f"wrk.method = {lua_string(first.method)}",
        f"wrk.path = {lua_string(first.path)}",
        f"wrk.body = {lua_string(first.body)}",
        "wrk.headers = {}",
    ]
    lines += [
        f"wrk.headers[{lua_string(name)}] = {lua_string(value)}"
        for name, value in first.headers.items()
    ]
    if len(requests) > 1:
        # A request() hook costs wrk a Lua call per request; only pairs need it.
        lines.append("local requests = {}")
        lines.append("local sent = 0")
        lines.append("init = function(args)")
        lines += [
            f"  requests[{index}] = wrk.format({lua_string(r.method)}, {lua_string(r.path)},"
            f" {_lua_headers(r)}, {lua_string(r.body)})"
            for index, r in enumerate(requests, start=1)
        ]
        lines.append("end")
        lines.append("request = function() sent = sent % #requests + 1 return requests[sent] end")
    if addresses:
        hosts = ", ".join(f"{{{lua_string(h)}, {lua_string(str(p))}}}" for h, p in addresses)
        lines.append(f"local hosts = {{{hosts}}}")
        lines.append("local threads = 0")
        lines.append("setup = function(thread)")
        lines.append("  local host = hosts[threads % #hosts + 1]")
        lines.append("  threads = threads + 1")
        lines.append("  thread.addr = wrk.lookup(host[1], host[2])[1]")
        lines.append("end")
    return "\n".join(lines) + "\n" + _DONE_HOOK


def parse_output(stdout: str) -> dict[str, int]:
    """The JSON object the Lua hook printed. Raises ValueError if there is none."""
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            parsed: dict[str, int] = json.loads(line[len(RESULT_PREFIX) :])
            return parsed
    raise ValueError(f"wrk printed no result:\n{stdout}")


def _address(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint)
    return parts.hostname or "127.0.0.1", parts.port or 80


def run_wrk(
    endpoint: str | Sequence[str],
    request: HttpRequest | Sequence[HttpRequest],
    connections: int,
    seconds: float,
    timeout_s: float = 5,
) -> LoadResult:
    """Replay ``request`` (several: in turn) on ``connections`` keep-alive connections for
    ``seconds``.

    One wrk thread per endpoint: one keeps up with every server here, and the second core
    stays with the server; with several endpoints (hosts of one system) each thread drives
    one host with ``connections / hosts`` connections. Raises RuntimeError if wrk fails.
    """
    endpoints = [endpoint] if isinstance(endpoint, str) else list(endpoint)
    addresses = [_address(e) for e in endpoints] if len(endpoints) > 1 else []
    executable = wrk_path()
    if executable is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "request.lua"
        script.write_text(lua_script(request, addresses))
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        completed = subprocess.run(
            [
                executable,
                f"-t{len(endpoints)}",
                f"-c{max(connections, len(endpoints))}",
                f"-d{max(1, round(seconds))}s",
                f"--timeout={timeout_s:g}s",
                "-s",
                str(script),
                endpoints[0],
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
