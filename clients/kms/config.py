"""Where the client's endpoint, region and credentials come from.

Precedence, first match wins (empty environment variables count as unset):

* endpoint: argument > ``MOCK_KMS_ENDPOINT`` > ``AWS_ENDPOINT_URL_KMS`` > ``AWS_ENDPOINT_URL``
  > the real AWS endpoint ``https://kms.<region>.amazonaws.com`` (``.com.cn`` in China);
* region: argument > ``AWS_REGION`` > ``AWS_DEFAULT_REGION`` > ``region`` in the profile of
  the shared config file (``AWS_CONFIG_FILE`` or ``~/.aws/config``);
* credentials: arguments > ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
  (+ ``AWS_SESSION_TOKEN``) > the shared credentials file (``AWS_SHARED_CREDENTIALS_FILE`` or
  ``~/.aws/credentials``), profile from ``AWS_PROFILE`` or ``default``. A profile named in
  code (``profile_name=``) outranks the environment's keys, as in botocore.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from clients.kms.errors import ConfigurationError, NoRegionError
from clients.kms.signing import Credentials

ENDPOINT_VARIABLES = ("MOCK_KMS_ENDPOINT", "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL")
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


def _env(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def resolve_region(explicit: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The region to sign for and to build the default endpoint from.

    Raises :class:`NoRegionError` when neither the argument, the environment nor the shared
    config file names one.
    """
    env = os.environ if environ is None else environ
    if explicit:
        return explicit
    for name in REGION_VARIABLES:
        value = _env(env, name)
        if value:
            return value
    from_file = _config_file_region(env)
    if from_file:
        return from_file
    raise NoRegionError(
        "No AWS region configured: pass region_name=, or set AWS_REGION or AWS_DEFAULT_REGION "
        "(e.g. AWS_REGION=us-east-1)"
    )


def resolve_endpoint(
    explicit: str | None, region: str, environ: Mapping[str, str] | None = None
) -> str:
    """The endpoint URL (scheme, host, optional port and path), without a trailing slash.

    Raises :class:`ConfigurationError` if the chosen URL is not ``http(s)://host[:port][/path]``
    (the error names where the URL came from).
    """
    env = os.environ if environ is None else environ
    source, url = "endpoint_url", explicit
    if not url:
        for name in ENDPOINT_VARIABLES:
            value = _env(env, name)
            if value:
                source, url = name, value
                break
    if not url:
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return f"https://kms.{region}.{suffix}"
    return validate_endpoint(url, source)


def validate_endpoint(url: str, source: str = "endpoint_url") -> str:
    """``url`` without a trailing ``/``; raises :class:`ConfigurationError` if it is unusable."""
    parts = urlsplit(url)
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ConfigurationError(
            f"{source} must be an http:// or https:// URL such as http://127.0.0.1:8080, "
            f"got {url!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"{source} must not have a query or fragment, got {url!r}")
    return url.rstrip("/") if parts.path not in ("", "/") else f"{parts.scheme}://{parts.netloc}"


def resolve_credentials(
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credentials | None:
    """The first complete credential set in precedence order, or ``None`` if there is none.

    Raises :class:`ConfigurationError` when a source is half-configured (an access key without
    its secret, or the reverse), when an explicitly named profile does not exist, or when the
    credentials file cannot be parsed: silently falling through to another identity would sign
    as someone the caller did not mean.
    """
    env = os.environ if environ is None else environ
    if access_key_id or secret_access_key:
        return _pair(access_key_id, secret_access_key, session_token, "the arguments")
    if profile:
        # As in botocore: a profile named in code outranks the environment's keys.
        return _credentials_file(profile, env)
    env_key = _env(env, "AWS_ACCESS_KEY_ID")
    env_secret = _env(env, "AWS_SECRET_ACCESS_KEY")
    if env_key or env_secret:
        token = _env(env, "AWS_SESSION_TOKEN") or _env(env, "AWS_SECURITY_TOKEN")
        return _pair(env_key, env_secret, token, "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
    return _credentials_file(profile, env)


def _pair(
    key: str | None, secret: str | None, token: str | None, source: str
) -> Credentials | None:
    if not key or not secret:
        missing = "secret access key" if key else "access key id"
        raise ConfigurationError(f"Incomplete credentials from {source}: the {missing} is missing")
    return Credentials(key, secret, token or None)


def _profile_name(profile: str | None, env: Mapping[str, str]) -> tuple[str, bool]:
    """The profile to read and whether the caller named it (a named one must exist)."""
    named = profile or _env(env, "AWS_PROFILE") or _env(env, "AWS_DEFAULT_PROFILE")
    return (named, True) if named else ("default", False)


def _read_ini(path: Path, what: str) -> configparser.ConfigParser | None:
    if not path.is_file():
        return None
    # Interpolation off: secrets may contain '%'.
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"Cannot parse the {what} {path}: {exc}") from exc
    return parser


def _credentials_file(profile: str | None, env: Mapping[str, str]) -> Credentials | None:
    path = Path(
        _env(env, "AWS_SHARED_CREDENTIALS_FILE") or Path.home() / ".aws" / "credentials"
    ).expanduser()
    name, named = _profile_name(profile, env)
    parser = _read_ini(path, "shared credentials file")
    if parser is None or not parser.has_section(name):
        if named:
            raise ConfigurationError(f"Profile {name!r} not found in {path}")
        return None
    section = parser[name]
    token = section.get("aws_session_token") or section.get("aws_security_token")
    return _pair(
        section.get("aws_access_key_id"),
        section.get("aws_secret_access_key"),
        token,
        f"profile {name!r} in {path}",
    )


def _config_file_region(env: Mapping[str, str]) -> str | None:
    path = Path(_env(env, "AWS_CONFIG_FILE") or Path.home() / ".aws" / "config").expanduser()
    parser = _read_ini(path, "shared config file")
    if parser is None:
        return None
    name, _ = _profile_name(None, env)
    section = name if name == "default" else f"profile {name}"
    if not parser.has_section(section):
        return None
    return parser[section].get("region") or None
