"""Where a running mock-kms server is: one answer for every ``mock-kms`` subcommand that talks
to one (``clock``, ``faults``, ``reset``, ``s3``, ...).

First match wins (empty variables count as unset):

1. the ``--endpoint-url`` option;
2. ``MOCK_KMS_ENDPOINT``;
3. ``AWS_ENDPOINT_URL_KMS``, then ``AWS_ENDPOINT_URL`` (what the AWS CLI and SDKs read);
4. ``MOCK_KMS_BIND``, the address a server started from the same environment listens on
   (``https`` when ``MOCK_KMS_TLS`` or ``MOCK_KMS_TLS_CERT`` is set; a wildcard address such
   as ``0.0.0.0`` is reached on loopback);
5. ``http://127.0.0.1:8080``, the default of ``mock-kms serve``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from clients.kms.config import validate_endpoint
from clients.kms.errors import ConfigurationError

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
ENDPOINT_VARIABLES = ("MOCK_KMS_ENDPOINT", "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL")
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - mapped away
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class ServerEndpoint:
    """The server's URL (no trailing slash) and where it came from, for error messages."""

    url: str
    source: str


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def find_server(
    explicit: str | None = None, environ: Mapping[str, str] | None = None
) -> ServerEndpoint:
    """The running server to talk to (see the module docstring for the order).

    Raises :class:`~clients.kms.errors.ConfigurationError` (a ``ValueError``) naming the
    option or variable whose value is not an ``http(s)://HOST[:PORT]`` URL or a ``HOST:PORT``.
    """
    env = os.environ if environ is None else environ
    if explicit:
        return ServerEndpoint(validate_endpoint(explicit, "--endpoint-url"), "--endpoint-url")
    for name in ENDPOINT_VARIABLES:
        value = _env(env, name)
        if value:
            return ServerEndpoint(validate_endpoint(value, name), name)
    bind = _env(env, "MOCK_KMS_BIND")
    if bind:
        tls = (_env(env, "MOCK_KMS_TLS") or "").lower() in _TRUE
        return ServerEndpoint(
            url_from_bind(bind, tls or bool(_env(env, "MOCK_KMS_TLS_CERT"))), "MOCK_KMS_BIND"
        )
    return ServerEndpoint(DEFAULT_ENDPOINT, "default")


def url_from_bind(bind: str, tls: bool) -> str:
    """The URL that reaches a server listening on ``bind`` (``HOST:PORT``) from this machine:
    a wildcard address (``0.0.0.0``, ``::``) is reached on loopback. Raises
    :class:`~clients.kms.errors.ConfigurationError` if ``bind`` is not ``HOST:PORT``."""
    host, separator, port = bind.rpartition(":")
    if not separator or not port.isdigit():
        raise ConfigurationError(f"MOCK_KMS_BIND must be HOST:PORT, got {bind!r}")
    host = host.strip("[]")
    host = _WILDCARDS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return validate_endpoint(f"{'https' if tls else 'http'}://{host}:{port}", "MOCK_KMS_BIND")
