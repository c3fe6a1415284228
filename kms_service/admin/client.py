"""``mock-kms clock ...``, ``mock-kms reset`` and ``mock-kms faults ...``: the developer
endpoints of a running server, over HTTP. The server is found as every ``mock-kms``
subcommand finds it (:func:`clients.server_endpoint.find_server`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from clients.server_endpoint import DEFAULT_ENDPOINT, find_server
from kms_service.admin.durations import parse_duration
from kms_service.domain.errors import ConfigurationError

PREFIX = "/_mock-kms"
TIMEOUT_SECONDS = 60


def call(
    endpoint: str, method: str, path: str, body: Any = None, *, verify_tls: bool = True
) -> Any:
    """One admin request; returns the decoded JSON answer.

    Raises :class:`ConfigurationError` with one line: server unreachable, dev endpoints off
    (404), or the server's error message.
    """
    url = endpoint.rstrip("/") + PREFIX + path
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) only
    req.add_header("Content-Type", "application/json")
    context = None
    if url.startswith("https:") and not verify_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_SECONDS, context=context) as answer:  # noqa: S310
            return json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise ConfigurationError(
                f"{endpoint} has no developer endpoints: start it with MOCK_KMS_DEV_ENDPOINTS=1"
            ) from None
        detail = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(detail).get("error", detail)
        raise ConfigurationError(f"{endpoint} answered {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConfigurationError(f"cannot reach mock-kms at {endpoint}: {reason}") from None


def _endpoint(args: argparse.Namespace) -> str:
    try:
        return find_server(args.endpoint_url).url
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def _print(answer: Any) -> int:
    print(json.dumps(answer, indent=2))
    return 0


def clock_command(args: argparse.Namespace) -> int:
    endpoint, verify = _endpoint(args), not args.no_verify_ssl
    if args.clock_action == "advance":
        try:
            seconds = parse_duration(args.duration)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        return _print(
            call(endpoint, "POST", "/clock/advance", {"seconds": seconds}, verify_tls=verify)
        )
    if args.clock_action == "reset":
        return _print(call(endpoint, "POST", "/clock/reset", {}, verify_tls=verify))
    return _print(call(endpoint, "GET", "/clock", verify_tls=verify))


def reset_command(args: argparse.Namespace) -> int:
    return _print(call(_endpoint(args), "POST", "/reset", {}, verify_tls=not args.no_verify_ssl))


def faults_command(args: argparse.Namespace) -> int:
    endpoint, verify = _endpoint(args), not args.no_verify_ssl
    if args.faults_action == "set":
        from kms_service.admin.faults import FaultConfigError, load_rules_file, rules_to_json

        try:
            rules = load_rules_file(Path(args.file))
        except FaultConfigError as exc:
            raise ConfigurationError(str(exc)) from None
        body = json.loads(rules_to_json(rules))
        return _print(call(endpoint, "PUT", "/faults", body, verify_tls=verify))
    if args.faults_action == "clear":
        return _print(call(endpoint, "DELETE", "/faults", verify_tls=verify))
    return _print(call(endpoint, "GET", "/faults", verify_tls=verify))


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint-url",
        "--endpoint",
        dest="endpoint_url",
        help="the server (default: MOCK_KMS_ENDPOINT, AWS_ENDPOINT_URL_KMS, AWS_ENDPOINT_URL, "
        f"MOCK_KMS_BIND, else {DEFAULT_ENDPOINT})",
    )
    parser.add_argument(
        "--no-verify-ssl", action="store_true", help="accept a self-signed HTTPS certificate"
    )


def register(subparsers: Any) -> None:
    """Add ``clock``, ``reset`` and ``faults`` to the ``mock-kms`` command line."""
    clock = subparsers.add_parser(
        "clock", help="show or move a running server's clock (needs MOCK_KMS_DEV_ENDPOINTS=1)"
    )
    actions = clock.add_subparsers(dest="clock_action", required=True)
    show = actions.add_parser("show", help="print the clock")
    advance = actions.add_parser(
        "advance", help="move the clock forward, e.g. 400d; due rotations and deletions happen"
    )
    advance.add_argument("duration", help="400d, 12h, 1d12h, 30m, 90s, 2w or seconds")
    # "-5d" would otherwise be taken for an unknown option and the duration reported missing;
    # as a duration it gets parse_duration's clear answer (the clock only moves forward).
    advance._negative_number_matcher = re.compile(r"^-\d")
    undo = actions.add_parser("reset", help="set the moved clock back to real time")
    for parser in (show, advance, undo):
        _connection_options(parser)
    clock.set_defaults(handler=clock_command)

    reset = subparsers.add_parser(
        "reset",
        help="wipe a running server's keys, aliases, clock and faults, then re-apply its seed",
    )
    _connection_options(reset)
    reset.set_defaults(handler=reset_command)

    faults = subparsers.add_parser(
        "faults", help="show, set or clear a running server's fault-injection rules"
    )
    fault_actions = faults.add_subparsers(dest="faults_action", required=True)
    fault_show = fault_actions.add_parser("show", help="print the rules in force")
    fault_set = fault_actions.add_parser("set", help="replace the rules with a YAML/JSON file")
    fault_set.add_argument("file", help="rules file (see README: fault injection)")
    fault_clear = fault_actions.add_parser("clear", help="remove every rule")
    for parser in (fault_show, fault_set, fault_clear):
        _connection_options(parser)
    faults.set_defaults(handler=faults_command)
