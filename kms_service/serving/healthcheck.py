"""``mock-kms healthcheck``: exit 0 when the server configured by this environment answers
``GET /healthz`` with status ok, else 1. The Docker image's ``HEALTHCHECK`` runs it, so the
check follows ``MOCK_KMS_BIND`` (port) and ``MOCK_KMS_TLS``/``MOCK_KMS_TLS_CERT`` (scheme)
whatever they are set to."""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import urllib.error
import urllib.request
from typing import Any

from clients.kms.config import validate_endpoint
from clients.server_endpoint import url_from_bind
from kms_service.domain.errors import ConfigurationError
from kms_service.settings import Settings

UNHEALTHY = 1


def healthcheck_url(explicit: str | None, settings: Settings) -> str:
    """``explicit``, else the loopback URL of ``settings``' listen address and scheme.
    Raises :class:`ConfigurationError` for an unusable URL or address."""
    try:
        if explicit:
            return validate_endpoint(explicit, "--endpoint-url")
        return url_from_bind(settings.bind, settings.tls_enabled)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def healthcheck_command(args: argparse.Namespace) -> int:
    """Probe ``/healthz`` once; print one line; 0 when healthy, 1 otherwise."""
    url = healthcheck_url(args.endpoint_url, Settings.from_sources()) + "/healthz"
    context = None
    if url.startswith("https:"):
        # The probe checks liveness of this host's own server, whose certificate may be
        # self-signed (--tls) or issued for another name: it carries no secret.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=args.timeout, context=context) as answer:  # noqa: S310 - http(s) only
            status = json.loads(answer.read()).get("status")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"mock-kms healthcheck: {url}: {reason}", file=sys.stderr)
        return UNHEALTHY
    if status != "ok":
        print(f"mock-kms healthcheck: {url}: status {status!r}", file=sys.stderr)
        return UNHEALTHY
    print(f"{url}: ok")
    return 0


def register(subparsers: Any) -> None:
    """Add ``healthcheck`` to the ``mock-kms`` command line."""
    check = subparsers.add_parser(
        "healthcheck",
        help="exit 0 if the server of this environment (MOCK_KMS_BIND, MOCK_KMS_TLS) is healthy",
    )
    check.add_argument(
        "--endpoint-url", help="probe this URL instead of the one MOCK_KMS_BIND/MOCK_KMS_TLS give"
    )
    check.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    check.set_defaults(handler=healthcheck_command)
