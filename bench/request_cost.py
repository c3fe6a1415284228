"""CPU per request of mock-kms's own code, in process: no server, no network, no other load.

Builds the real app (``create_app`` with ``mock-kms serve``'s defaults: software backend, open
auth, console on a loopback bind, metrics) in this process, then calls its WSGI callable
with the very requests the bench's load generator replays (boto3-shaped, SigV4-signed),
``--number`` times per operation, and reports the best CPU microseconds per request over
``--repeat`` rounds. The ceiling (:mod:`bench.ceiling`) is measured the same way, so the
difference is mock-kms's fixed per-request path; the gunicorn and socket work that both
share is left out, which makes the ratio here lower than the bench's.

``--profile OPERATION`` prints a cProfile breakdown of that operation instead.

``--instructions`` counts instead of timing: it runs this program again under valgrind's
callgrind, which dumps its counters whenever ``getppid`` is called; the measured requests of
each operation are fenced by two ``os.getppid()`` calls, so each operation gets its own dump
and the instructions per request are deterministic (to a fraction of a percent) whatever
else the machine is doing. Slow (about a minute plus ten seconds per thousand requests).

Compare a build with another (e.g. the one before access control)::

    git worktree add --detach /tmp/pre ffdbfec
    PYTHONPATH=/tmp/pre python bench/request_cost.py --operations GenerateDataKey,Encrypt-32B
    PYTHONPATH=$PWD python bench/request_cost.py --operations GenerateDataKey,Encrypt-32B

This file imports nothing else from ``bench`` except, by path, ``bench/ceiling.py``, so run
as a file it measures whichever ``kms_service`` comes first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import cProfile
import importlib.util
import io
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HERE = Path(__file__).resolve().parent
REGION = "us-east-1"
HOST = "127.0.0.1:4599"
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class Case:
    """One benchmarked operation: its name in the bench, its action, how to build params."""

    name: str
    action: str
    key_spec: str | None = None
    key_usage: str | None = None
    algorithm: str | None = None
    payload: int = 32


CASES = (
    Case("GenerateDataKey", "GenerateDataKey"),
    Case("Encrypt-32B", "Encrypt"),
    Case("Decrypt-32B", "Decrypt"),
    Case("Sign-ECDSA-P256", "Sign", "ECC_NIST_P256", "SIGN_VERIFY", "ECDSA_SHA_256"),
    Case("Verify-ECDSA-P256", "Verify", "ECC_NIST_P256", "SIGN_VERIFY", "ECDSA_SHA_256"),
    Case("GenerateMac-256", "GenerateMac", "HMAC_256", "GENERATE_VERIFY_MAC", "HMAC_SHA_256"),
    Case("DataKeyPair-P256", "GenerateDataKeyPair", algorithm="ECC_NIST_P256"),
    Case("Sign-RSA2048-PSS", "Sign", "RSA_2048", "SIGN_VERIFY", "RSASSA_PSS_SHA_256"),
)


class Caller:
    """Signs requests as boto3 does and calls a WSGI app with them."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.credentials = Credentials("AKIABENCHREQUESTCOST", "bench-secret")

    def environ(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """The WSGI environ of one signed request (its body stream still to be set)."""
        body = json.dumps(params).encode()
        request = AWSRequest(
            method="POST",
            url=f"http://{HOST}/",
            data=body,
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": f"TrentService.{action}",
            },
        )
        SigV4Auth(self.credentials, "kms", REGION).add_auth(request)
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "POST",
            "SCRIPT_NAME": "",
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "RAW_URI": "/",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "4599",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "50000",
            "HTTP_HOST": HOST,
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/x-amz-json-1.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "_body": body,
        }
        for name, value in request.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = str(value)
        return environ

    def send(self, environ: dict[str, Any]) -> tuple[str, bytes]:
        """Call the app once with a copy of ``environ``; returns (status, body)."""
        copy = dict(environ)
        copy["wsgi.input"] = io.BytesIO(environ["_body"])
        status: list[str] = []

        def start_response(line: str, headers: Any, exc_info: Any = None) -> Any:
            status.append(line)
            return None

        chunks = self.app(copy, start_response)
        body = b"".join(chunks)
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
        return status[0], body

    def call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """One request; raises RuntimeError unless it answers 200."""
        status, body = self.send(self.environ(action, params))
        if not status.startswith("200"):
            raise RuntimeError(f"{action}: {status}: {body[:300]!r}")
        answer: dict[str, Any] = json.loads(body) if body else {}
        return answer


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def request_environs(caller: Caller, cases: Iterable[Case], fixed_keys: bool) -> dict[str, Any]:
    """The environ of every case, with the keys it needs created first (unless the app has
    ``fixed_keys``, as the ceiling has)."""
    keys: dict[tuple[str, str], str] = {}
    symmetric = "00000000-0000-4000-8000-000000000000"
    if not fixed_keys:
        symmetric = caller.call("CreateKey", {"Description": "bench"})["KeyMetadata"]["KeyId"]
    environs: dict[str, Any] = {}
    for case in cases:
        message = _b64(os.urandom(case.payload))
        if case.key_spec is not None and case.key_usage is not None:
            kind = (case.key_spec, case.key_usage)
            if kind not in keys:
                keys[kind] = symmetric
                if not fixed_keys:
                    created = caller.call(
                        "CreateKey",
                        {"KeySpec": kind[0], "KeyUsage": kind[1], "Description": "bench"},
                    )
                    keys[kind] = created["KeyMetadata"]["KeyId"]
            key_id = keys[kind]
            if case.action == "GenerateMac":
                params = {"KeyId": key_id, "Message": message, "MacAlgorithm": case.algorithm}
            else:
                params = {"KeyId": key_id, "Message": message, "SigningAlgorithm": case.algorithm}
                if case.action == "Verify":
                    signature = caller.call("Sign", params)["Signature"]
                    params = {**params, "Signature": signature}
        elif case.action == "GenerateDataKeyPair":
            params = {"KeyId": symmetric, "KeyPairSpec": case.algorithm}
        elif case.action == "GenerateDataKey":
            params = {"KeyId": symmetric, "KeySpec": "AES_256"}
        elif case.action == "Encrypt":
            params = {"KeyId": symmetric, "Plaintext": message}
        else:
            blob = caller.call("Encrypt", {"KeyId": symmetric, "Plaintext": message})
            params = {"CiphertextBlob": blob["CiphertextBlob"]}
        environ = caller.environ(case.action, params)
        status, body = caller.send(environ)
        if not status.startswith("200"):
            raise RuntimeError(f"{case.name}: {status}: {body[:300]!r}")
        environs[case.name] = environ
    return environs


def mock_kms_app(data_dir: Path) -> WsgiApp:
    """The real app as a gunicorn worker builds it, with ``mock-kms serve``'s defaults."""
    from kms_service.serving.app import create_app
    from kms_service.serving.operability import prepare
    from kms_service.settings import Settings

    settings = Settings.from_sources({"data_dir": data_dir, "bind": HOST}, environ={})
    prepare(settings)  # what the master does before forking: metrics directory, fault rules
    app: WsgiApp = create_app(settings)
    return app


def ceiling_app() -> WsgiApp:
    """bench/ceiling.py's app, loaded from its file beside this one."""
    spec = importlib.util.spec_from_file_location("bench_ceiling", HERE / "ceiling.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: WsgiApp = module.create_ceiling_app()
    return app


def cpu_per_request(caller: Caller, environ: dict[str, Any], number: int, repeat: int) -> float:
    """Best CPU microseconds per request over ``repeat`` rounds of ``number`` requests."""
    send = caller.send
    for _ in range(min(200, number)):
        send(environ)
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for _ in range(number):
            send(environ)
        best = min(best, (time.process_time() - started) / number)
    return best * 1e6


def profile(caller: Caller, environ: dict[str, Any], number: int, lines: int) -> str:
    """A cProfile report of ``number`` requests, by own time and by cumulative time."""
    for _ in range(200):
        caller.send(environ)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(number):
        caller.send(environ)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)
    return out.getvalue()


def fenced(caller: Caller, environs: dict[str, Any], cases: list[Case], number: int) -> None:
    """Each case's ``number`` requests between two ``os.getppid()`` calls (the dump points
    of :func:`instructions`), after a short warm-up outside the fence."""
    for case in cases:
        environ = environs[case.name]
        for _ in range(50):
            caller.send(environ)
        os.getppid()
        for _ in range(number):
            caller.send(environ)
        os.getppid()


def instructions(argv: list[str], cases: list[Case], number: int) -> dict[str, float]:
    """Instructions per request of each case, counted by callgrind in a child process that
    runs :func:`fenced`. Raises RuntimeError if valgrind is missing or the child fails."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("--instructions needs valgrind (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="request-cost-cg-") as directory:
        out = Path(directory) / "cg.out"
        command = [
            valgrind,
            "--tool=callgrind",
            "--dump-before=getppid",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),
            *argv,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"callgrind run failed:\n{done.stderr[-3000:]}")
        totals = []
        for part in range(1, 2 * len(cases) + 1):
            text = Path(f"{out}.{part}").read_text()
            match = re.search(r"^totals: (\d+)", text, re.MULTILINE)
            if match is None:
                raise RuntimeError(f"no totals in callgrind dump {part}")
            totals.append(int(match.group(1)))
    # Dump 2k-1 holds what came before case k's fence; dump 2k its fenced requests.
    return {case.name: totals[2 * i + 1] / number for i, case in enumerate(cases)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--operations",
        default=",".join(case.name for case in CASES),
        help="comma-separated bench operation names (default: all)",
    )
    parser.add_argument("--number", type=int, default=2000, help="requests per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best is reported")
    parser.add_argument("--no-ceiling", action="store_true", help="measure mock-kms only")
    parser.add_argument("--profile", metavar="OPERATION", help="print a cProfile breakdown")
    parser.add_argument("--profile-lines", type=int, default=40)
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per request under callgrind (mock-kms only) instead",
    )
    parser.add_argument("--fenced", choices=("mock-kms", "ceiling"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    wanted = set(args.operations.split(","))
    cases = [case for case in CASES if case.name in wanted or case.name == args.profile]
    unknown = (wanted | ({args.profile} if args.profile else set())) - {c.name for c in CASES}
    if unknown:
        parser.error(f"unknown operations: {', '.join(sorted(unknown))}")
    if args.instructions:
        child = ["--operations", args.operations, "--number", str(args.number), "--fenced"]
        ours = instructions([*child, "mock-kms"], cases, args.number)
        theirs = {} if args.no_ceiling else instructions([*child, "ceiling"], cases, args.number)
        print(f"{'k instructions/req':20s} {'mock-kms':>10s} {'ceiling':>10s} {'extra':>10s}")
        for name, count in ours.items():
            line = f"{name:20s} {count / 1000:10.1f}"
            if name in theirs:
                line += f" {theirs[name] / 1000:10.1f} {(count - theirs[name]) / 1000:10.1f}"
            print(line)
        return 0
    # Removed at exit after the console feed has flushed into it (atexit runs handlers
    # last-registered first, and the feed registers its own when the app is built).
    directory = tempfile.mkdtemp(prefix="request-cost-")
    atexit.register(shutil.rmtree, directory, True)
    if args.fenced == "ceiling":
        caller = Caller(ceiling_app())
        fenced(caller, request_environs(caller, cases, fixed_keys=True), cases, args.number)
        return 0
    caller = Caller(mock_kms_app(Path(directory)))
    environs = request_environs(caller, cases, fixed_keys=False)
    if args.fenced:
        fenced(caller, environs, cases, args.number)
        return 0
    if args.profile:
        print(profile(caller, environs[args.profile], args.number, args.profile_lines))
        return 0
    ceiling: tuple[Caller, dict[str, Any]] | None = None
    if not args.no_ceiling:
        ceiling_caller = Caller(ceiling_app())
        ceiling = (ceiling_caller, request_environs(ceiling_caller, cases, fixed_keys=True))
    print(f"{'operation':20s} {'mock-kms us':>12s} {'ceiling us':>11s} {'extra us':>9s}")
    for case in cases:
        mine = cpu_per_request(caller, environs[case.name], args.number, args.repeat)
        if ceiling is None:
            print(f"{case.name:20s} {mine:12.1f}")
            continue
        base = cpu_per_request(ceiling[0], ceiling[1][case.name], args.number, args.repeat)
        print(f"{case.name:20s} {mine:12.1f} {base:11.1f} {mine - base:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
