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

from kms_service.errors import ConfigurationError
from kms_service.settings import Settings

EXIT_CONFIGURATION = 2


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
    serve.set_defaults(handler=serve_command)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the parsed options over the environment. Raises ConfigurationError."""
    options = {
        name: getattr(args, name, None)
        for name in (
            "bind", "data_dir", "backend", "workers", "threads", "region", "account_id",
            "auth", "credentials_file", "log_level", "pkcs11_pin_file",
        )
    }  # fmt: skip
    return Settings.from_sources(options).validate()


def preflight(settings: Settings) -> None:
    """Everything that can be checked before forking: the data directory, the root key, the
    database, the credentials file. Raises :class:`ConfigurationError`."""
    from backends.software import RootKeyError, load_root_key
    from kms_service.app import build_authenticator
    from kms_service.store import MetadataStore, StoreError

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create --data-dir {settings.data_dir}: {exc}") from None
    try:
        load_root_key(settings.data_dir, settings.root_key, create=True)
    except RootKeyError as exc:
        raise ConfigurationError(str(exc)) from None
    store = MetadataStore(settings.data_dir)
    try:
        store.initialise()
    except StoreError as exc:
        raise ConfigurationError(str(exc)) from None
    finally:
        store.close()
    build_authenticator(settings)


def serve_command(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    preflight(settings)
    from kms_service.server import run_gunicorn

    return run_gunicorn(settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mock-kms", description="A local AWS KMS that speaks the real wire protocol."
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _serve_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mock-kms`` console script; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigurationError as exc:
        print(f"mock-kms: error: {exc}", file=sys.stderr)
        return EXIT_CONFIGURATION


if __name__ == "__main__":
    sys.exit(main())
