"""``mock-kms`` command line: ``serve`` runs the service under gunicorn.

Configuration problems are found before gunicorn starts and reported as one line on stderr
with exit status 2. The master process never opens the PKCS#11 library or keeps a database
connection: workers load the app after fork.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from kms_service.domain.errors import ConfigurationError
from kms_service.serving.gunicorn_options import EXIT_CONFIGURATION
from kms_service.serving.preflight import preflight
from kms_service.settings import Settings


def _serve_parser(subparsers: Any) -> None:
    serve = subparsers.add_parser("serve", help="run the KMS service under gunicorn")
    serve.add_argument("--bind", help="HOST:PORT to listen on (MOCK_KMS_BIND, 127.0.0.1:8080)")
    serve.add_argument("--data-dir", help="state directory (MOCK_KMS_DATA_DIR, ./.mock-kms)")
    serve.add_argument("--backend", help="software or pkcs11 (MOCK_KMS_BACKEND, software)")
    serve.add_argument("--workers", help="gunicorn worker processes (MOCK_KMS_WORKERS, 2)")
    serve.add_argument("--threads", help="threads per worker (MOCK_KMS_THREADS, 4)")
    serve.add_argument("--region", help="default region (MOCK_KMS_REGION, us-east-1)")
    serve.add_argument("--account-id", help="default account (MOCK_KMS_ACCOUNT_ID)")
    serve.add_argument("--auth", help="open or sigv4 (MOCK_KMS_AUTH, open)")
    serve.add_argument(
        "--credentials-file", help="INI credentials for --auth sigv4 (MOCK_KMS_CREDENTIALS_FILE)"
    )
    serve.add_argument("--log-level", help="debug, info, warning, error (MOCK_KMS_LOG_LEVEL)")
    serve.add_argument("--pkcs11-pin-file", help="file holding the PKCS#11 user PIN")
    serve.add_argument(
        "--no-s3",
        action="store_true",
        default=None,
        help="serve only the KMS, not the S3 endpoint beside it (MOCK_KMS_NO_S3)",
    )
    serve.add_argument(
        "--s3-kms-endpoint",
        help="KMS the S3 side calls, http(s)://HOST[:PORT] (MOCK_KMS_S3_KMS_ENDPOINT; "
        "default: this server)",
    )
    serve.add_argument(
        "--tls",
        action="store_true",
        default=None,
        help="serve HTTPS with a self-signed certificate in DATA_DIR/tls (MOCK_KMS_TLS)",
    )
    serve.add_argument("--tls-cert", help="PEM certificate to serve HTTPS with (MOCK_KMS_TLS_CERT)")
    serve.add_argument("--tls-key", help="PEM private key for --tls-cert (MOCK_KMS_TLS_KEY)")
    serve.add_argument(
        "--allow-sse-c-over-http",
        action="store_true",
        default=None,
        help="accept SSE-C keys over plain HTTP, which AWS refuses; local use only "
        "(MOCK_KMS_ALLOW_SSE_C_OVER_HTTP)",
    )
    serve.add_argument("--seed", help="seed file reconciled at every start (MOCK_KMS_SEED)")
    serve.add_argument(
        "--dev-endpoints",
        action="store_true",
        default=None,
        help="serve /_mock-kms/ (clock, reset, faults) (MOCK_KMS_DEV_ENDPOINTS)",
    )
    serve.add_argument(
        "--audit-log", help="JSON-lines audit log file, or - for stdout (MOCK_KMS_AUDIT_LOG)"
    )
    serve.add_argument(
        "--faults-file", help="fault-injection rules, YAML/JSON (MOCK_KMS_FAULTS_FILE)"
    )
    # Several hosts on one PostgreSQL (docs/several-hosts.md).
    serve.add_argument(
        "--database-url",
        help="keep all state in PostgreSQL, postgresql://USER:PASSWORD@HOST:5432/DB "
        "(MOCK_KMS_DATABASE_URL; default: SQLite in the data directory)",
    )
    serve.add_argument(
        "--s3-dir",
        help="S3 object data, shared by every host of one database "
        "(MOCK_KMS_S3_DIR, default DATA_DIR/s3)",
    )
    # Web console (kms_service.console, docs/console.md).
    serve.add_argument(
        "--console",
        help="web console at /console/: auto (on for a loopback bind), on or off "
        "(MOCK_KMS_CONSOLE, auto)",
    )
    serve.set_defaults(handler=serve_command)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the parsed options over the environment. Raises ConfigurationError."""
    options = {
        name: getattr(args, name, None)
        for name in (
            "bind", "data_dir", "backend", "workers", "threads", "region", "account_id",
            "auth", "credentials_file", "log_level", "pkcs11_pin_file",
            "no_s3", "s3_kms_endpoint", "tls", "tls_cert", "tls_key", "allow_sse_c_over_http",
            "seed", "dev_endpoints", "audit_log", "faults_file", "database_url", "s3_dir",
        )
    }  # fmt: skip
    options["console"] = getattr(args, "console", None)  # web console (kms_service.console)
    return Settings.from_sources(options).validate()


def serve_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    preflight(settings)  # before anything forks
    from kms_service.serving.server import run_gunicorn

    return run_gunicorn(settings)


def softhsm_init_command(args: argparse.Namespace) -> int:
    """Create (or keep) a SoftHSM token in the data directory; print the environment to
    serve on it as shell ``export`` lines, for ``eval``."""
    import shlex

    from backends.softhsm import SoftHsmError, init_softhsm_token

    data_dir = Settings.from_sources({"data_dir": args.data_dir}).data_dir
    try:
        token = init_softhsm_token(data_dir, args.label)
    except SoftHsmError as exc:
        raise ConfigurationError(str(exc)) from None
    for name, value in {**token.env(), "MOCK_KMS_DATA_DIR": str(data_dir)}.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _softhsm_init_parser(subparsers: Any) -> None:
    init = subparsers.add_parser(
        "softhsm-init",
        help="create a SoftHSM token in the data directory and print its environment",
    )
    init.add_argument("--data-dir", help="state directory (MOCK_KMS_DATA_DIR, ./.mock-kms)")
    init.add_argument("--label", default="mock-kms", help="token label (default mock-kms)")
    init.set_defaults(handler=softhsm_init_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mock-kms", description="A local AWS KMS that speaks the real wire protocol."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _serve_parser(subparsers)
    _softhsm_init_parser(subparsers)
    from clients.s3_encryption import cli as s3_cli

    s3_cli.register(subparsers)
    from kms_service.admin import client as admin_cli
    from kms_service.seeding import export
    from kms_service.serving import healthcheck

    admin_cli.register(subparsers)
    export.register(subparsers)
    healthcheck.register(subparsers)
    from kms_service.store_migration import command as migrate_store

    migrate_store.register(subparsers)  # copy a SQLite deployment into PostgreSQL
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mock-kms`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # The server logs what it does; a command that talks to one prints only its answer (and
    # the SDK's INFO lines, such as "Found credentials", are not warnings).
    logging.basicConfig(
        level=logging.INFO if args.command == "serve" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigurationError as exc:
        print(f"mock-kms: error: {exc}", file=sys.stderr)
        return EXIT_CONFIGURATION


if __name__ == "__main__":
    sys.exit(main())
