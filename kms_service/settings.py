"""Service configuration: command-line options over ``MOCK_KMS_*`` variables (then local-kms's
``KMS_ACCOUNT_ID``, ``KMS_REGION``, ``KMS_SEED_PATH``, ``KMS_DATA_PATH``) over defaults.

Nothing here runs at import time; :func:`Settings.from_sources` is called by the CLI and by
tests, and :meth:`Settings.validate` turns every bad value into one actionable line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from database import is_database_url
from kms_service.domain.errors import ConfigurationError

BACKENDS = ("software", "pkcs11")
AUTH_MODES = ("open", "sigv4")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")
_ENDPOINT = re.compile(r"^https?://(\[[0-9A-Fa-f:.]+\]|[^/\s:\[\]]+)(:\d{1,5})?/?$")
_TRUE = ("1", "true", "yes", "on")
#: local-kms's variables, read when the ``MOCK_KMS_*`` one is unset, so that a setup moving
#: from local-kms keeps working.
LOCAL_KMS_FALLBACKS: dict[str, tuple[str, ...]] = {
    "MOCK_KMS_ACCOUNT_ID": ("KMS_ACCOUNT_ID",),
    "MOCK_KMS_REGION": ("KMS_REGION",),
    "MOCK_KMS_SEED": ("KMS_SEED_PATH",),
    "MOCK_KMS_DATA_DIR": ("KMS_DATA_PATH",),
}
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to start. Defaults are the embedded ``make run`` setup."""

    bind: str = "127.0.0.1:8080"
    data_dir: Path = Path(".mock-kms")
    backend: str = "software"
    workers: int = 2
    threads: int = 4
    region: str = "us-east-1"
    account_id: str = "111122223333"
    auth: str = "open"
    credentials_file: Path | None = None
    root_key: str | None = field(default=None, repr=False)
    max_body_bytes: int = 1024 * 1024
    on_demand_rotation_limit: int = 25
    log_level: str = "info"
    #: Seconds added to the wall clock (tests of rotation and deletion); 0 in normal use.
    clock_offset_seconds: float = 0.0
    pkcs11_module: str | None = None
    pkcs11_token_label: str | None = None
    pkcs11_pin: str | None = field(default=None, repr=False)
    pkcs11_pin_file: Path | None = None
    #: Custom key stores (docs/custom-key-stores.md): which PKCS#11 token each
    #: CloudHsmClusterId names, as JSON or the path of a JSON file.
    pkcs11_clusters: str | None = None
    #: The S3 endpoint beside the KMS (``--no-s3`` turns it off).
    no_s3: bool = False
    #: The KMS the S3 side calls; None means this server itself.
    s3_kms_endpoint: str | None = None
    #: Serve HTTPS with a self-signed certificate generated into the data directory.
    tls: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: Accept SSE-C over plain HTTP (AWS refuses it; only for local use).
    allow_sse_c_over_http: bool = False
    #: The /_mock-kms/ admin endpoints (clock, reset, faults); off means 404.
    dev_endpoints: bool = False
    #: Seed file reconciled at every start (kms_service.seeding).
    seed: Path | None = None
    #: JSON-lines audit log: a file path, or "-" for standard output; None: no audit log.
    audit_log: str | None = None
    #: Fault-injection rules loaded at start (needs dev_endpoints).
    faults_file: Path | None = None
    #: PostgreSQL for every piece of state (several hosts, one KMS; docs/several-hosts.md);
    #: None: SQLite files in the data directory. Never printed: it may hold a password.
    database_url: str | None = field(default=None, repr=False)
    #: The S3 object data (and the SSE-S3 master key); None: ``<data-dir>/s3``. With a
    #: database URL, every host must mount the same directory here.
    s3_dir: Path | None = None
    # --- web console (kms_service.console, docs/console.md) ---------------------------------
    #: ``auto`` (on when bound to a loopback address), ``on`` or ``off``.
    console: str = "auto"
    #: The console's sign-in token when it needs one; None: a fresh one printed at start.
    console_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_sources(
        cls, options: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Build settings from explicit ``options`` (None means unset), else the environment.

        Raises :class:`ConfigurationError` for values that cannot be parsed.
        """
        env = os.environ if environ is None else environ
        given = {k: v for k, v in (options or {}).items() if v is not None}

        def pick(name: str, env_name: str) -> Any:
            if name in given:
                return given[name]
            for variable in (env_name, *LOCAL_KMS_FALLBACKS.get(env_name, ())):
                if env.get(variable):
                    return env[variable]
            return None

        raw: dict[str, Any] = {
            "bind": pick("bind", "MOCK_KMS_BIND"),
            "data_dir": pick("data_dir", "MOCK_KMS_DATA_DIR"),
            "backend": pick("backend", "MOCK_KMS_BACKEND"),
            "workers": pick("workers", "MOCK_KMS_WORKERS"),
            "threads": pick("threads", "MOCK_KMS_THREADS"),
            "region": pick("region", "MOCK_KMS_REGION"),
            "account_id": pick("account_id", "MOCK_KMS_ACCOUNT_ID"),
            "auth": pick("auth", "MOCK_KMS_AUTH"),
            "credentials_file": pick("credentials_file", "MOCK_KMS_CREDENTIALS_FILE"),
            "root_key": pick("root_key", "MOCK_KMS_ROOT_KEY"),
            "log_level": pick("log_level", "MOCK_KMS_LOG_LEVEL"),
            "clock_offset_seconds": pick("clock_offset_seconds", "MOCK_KMS_CLOCK_OFFSET_SECONDS"),
            "on_demand_rotation_limit": pick(
                "on_demand_rotation_limit", "MOCK_KMS_ON_DEMAND_ROTATION_LIMIT"
            ),
            "pkcs11_module": pick("pkcs11_module", "PKCS11_MODULE"),
            "pkcs11_token_label": pick("pkcs11_token_label", "PKCS11_TOKEN_LABEL"),
            "pkcs11_pin": pick("pkcs11_pin", "PKCS11_PIN"),
            "pkcs11_pin_file": pick("pkcs11_pin_file", "PKCS11_PIN_FILE"),
            "pkcs11_clusters": pick("pkcs11_clusters", "MOCK_KMS_PKCS11_CLUSTERS"),
            "no_s3": pick("no_s3", "MOCK_KMS_NO_S3"),
            "s3_kms_endpoint": pick("s3_kms_endpoint", "MOCK_KMS_S3_KMS_ENDPOINT"),
            "tls": pick("tls", "MOCK_KMS_TLS"),
            "tls_cert": pick("tls_cert", "MOCK_KMS_TLS_CERT"),
            "tls_key": pick("tls_key", "MOCK_KMS_TLS_KEY"),
            "allow_sse_c_over_http": pick(
                "allow_sse_c_over_http", "MOCK_KMS_ALLOW_SSE_C_OVER_HTTP"
            ),
            "dev_endpoints": pick("dev_endpoints", "MOCK_KMS_DEV_ENDPOINTS"),
            "seed": pick("seed", "MOCK_KMS_SEED"),
            "audit_log": pick("audit_log", "MOCK_KMS_AUDIT_LOG"),
            "faults_file": pick("faults_file", "MOCK_KMS_FAULTS_FILE"),
            "database_url": pick("database_url", "MOCK_KMS_DATABASE_URL"),
            "s3_dir": pick("s3_dir", "MOCK_KMS_S3_DIR"),
        }
        # Web console (kms_service.console): kept apart from the table above.
        raw["console"] = pick("console", "MOCK_KMS_CONSOLE")
        raw["console_token"] = pick("console_token", "MOCK_KMS_CONSOLE_TOKEN")
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if value is None:
                continue
            if name in ("workers", "threads", "on_demand_rotation_limit"):
                values[name] = _integer(name, value)
            elif name == "clock_offset_seconds":
                values[name] = _number(name, value)
            elif name in (
                "data_dir", "credentials_file", "pkcs11_pin_file", "tls_cert", "tls_key",
                "seed", "faults_file", "s3_dir",
            ):  # fmt: skip
                values[name] = Path(value)
            elif name in ("no_s3", "tls", "allow_sse_c_over_http", "dev_endpoints"):
                values[name] = _boolean(name, value)
            else:
                values[name] = str(value)
        return cls(**values)

    @property
    def shared_database(self) -> bool:
        """Whether the state lives in PostgreSQL (shared by several hosts)."""
        return self.database_url is not None

    @property
    def s3_enabled(self) -> bool:
        return not self.no_s3

    @property
    def tls_enabled(self) -> bool:
        """HTTPS: ``--tls`` (generated certificate) or an operator's ``--tls-cert``."""
        return self.tls or self.tls_cert is not None

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    def validate(self) -> Settings:
        """Check every value; raise :class:`ConfigurationError` naming the first bad one."""
        host, _, port = self.bind.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ConfigurationError(
                f"--bind/MOCK_KMS_BIND must be HOST:PORT (e.g. 127.0.0.1:8080), got {self.bind!r}"
            )
        if self.backend not in BACKENDS:
            raise ConfigurationError(
                f"--backend/MOCK_KMS_BACKEND must be one of {', '.join(BACKENDS)}, "
                f"got {self.backend!r}"
            )
        if self.backend == "pkcs11" and not (self.pkcs11_module and self.pkcs11_token_label):
            # Checked here, not only in the workers: a worker that fails to boot makes
            # gunicorn exit with pages of tracebacks instead of one line.
            raise ConfigurationError(
                "--backend pkcs11 needs PKCS11_MODULE and PKCS11_TOKEN_LABEL "
                "(or run `mock-kms softhsm-init --data-dir DIR` and `make run-hsm`)"
            )
        if self.database_url is not None and not is_database_url(self.database_url):
            raise ConfigurationError(
                "--database-url/MOCK_KMS_DATABASE_URL must be a PostgreSQL URL "
                "(postgresql://USER:PASSWORD@HOST:5432/DATABASE)"
            )
        if not 1 <= self.workers <= 64:
            raise ConfigurationError(f"--workers must be between 1 and 64, got {self.workers}")
        if not 1 <= self.threads <= 256:
            raise ConfigurationError(f"--threads must be between 1 and 256, got {self.threads}")
        if not _REGION.match(self.region):
            raise ConfigurationError(
                f"--region/MOCK_KMS_REGION (or KMS_REGION) must look like us-east-1, "
                f"got {self.region!r}"
            )
        if not _ACCOUNT.match(self.account_id):
            raise ConfigurationError(
                "--account-id/MOCK_KMS_ACCOUNT_ID (or KMS_ACCOUNT_ID) must be 12 digits, "
                f"got {self.account_id!r}"
            )
        if self.auth not in AUTH_MODES:
            raise ConfigurationError(
                f"MOCK_KMS_AUTH must be one of {', '.join(AUTH_MODES)}, got {self.auth!r}"
            )
        if self.auth == "sigv4":
            if self.credentials_file is None:
                raise ConfigurationError(
                    "MOCK_KMS_AUTH=sigv4 needs a credentials file: "
                    "set --credentials-file or MOCK_KMS_CREDENTIALS_FILE"
                )
            if not self.credentials_file.is_file():
                raise ConfigurationError(f"credentials file {self.credentials_file} does not exist")
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise ConfigurationError(f"--data-dir {self.data_dir} exists and is not a directory")
        if not 1 <= self.on_demand_rotation_limit <= 1000:
            raise ConfigurationError(
                "MOCK_KMS_ON_DEMAND_ROTATION_LIMIT must be between 1 and 1000, "
                f"got {self.on_demand_rotation_limit}"
            )
        self._validate_tls_and_s3()
        self._validate_console()
        return self

    def _validate_console(self) -> None:
        """``console`` is normalised by :func:`console_mode`; reject anything else."""
        console_mode(self.console)
        if self.console_token is not None and len(self.console_token) < 16:
            raise ConfigurationError("MOCK_KMS_CONSOLE_TOKEN must be at least 16 characters long")

    def _validate_tls_and_s3(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigurationError("--tls-cert and --tls-key must be given together")
        for option, path in (("--tls-cert", self.tls_cert), ("--tls-key", self.tls_key)):
            if path is not None and not path.is_file():
                raise ConfigurationError(f"{option} {path} does not exist or is not a file")
        if self.s3_kms_endpoint is not None and not _ENDPOINT.match(self.s3_kms_endpoint):
            raise ConfigurationError(
                "--s3-kms-endpoint/MOCK_KMS_S3_KMS_ENDPOINT must be http(s)://HOST[:PORT], "
                f"got {self.s3_kms_endpoint!r}"
            )


def console_mode(value: str) -> str:
    """``auto``, ``on`` or ``off`` for a ``--console``/``MOCK_KMS_CONSOLE`` value (the
    boolean words count as on and off). Raises :class:`ConfigurationError`."""
    text = str(value).strip().lower()
    if text == "auto":
        return text
    if text in _TRUE:
        return "on"
    if text in _FALSE:
        return "off"
    raise ConfigurationError(f"--console/MOCK_KMS_CONSOLE must be auto, on or off, got {value!r}")


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ConfigurationError(
        f"{name} must be one of 1/true/yes/on or 0/false/no/off, got {value!r}"
    )


def _number(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a number, got {value!r}") from None


def _integer(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a whole number, got {value!r}") from None
