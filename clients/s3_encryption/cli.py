"""``mock-kms s3 put|get``: try client-side S3 encryption without writing code.

    mock-kms s3 put FILE s3://BUCKET/KEY --cse-kms alias/demo      # as the AWS CLI writes it
    mock-kms s3 get s3://BUCKET/KEY FILE --cse-kms alias/demo
    mock-kms s3 put BUCKET KEY FILE --cse-key master.key --endpoint-url http://127.0.0.1:5000

``FILE`` may be ``-`` for stdin / stdout. The S3 endpoint is found as every ``mock-kms``
subcommand finds the server (:func:`clients.server_endpoint.find_server`); the KMS is the same
endpoint unless ``--kms-endpoint-url`` names another. The top-level CLI calls :func:`register`
to add the ``s3`` command; it sets ``handler=run`` so ``args.handler(args)`` executes it.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from clients.kms import KmsClient, KmsClientError, KmsLocalError
from clients.s3_encryption.client import DEFAULT_PART_SIZE, EncryptingS3Client
from clients.s3_encryption.errors import S3EncryptionError
from clients.s3_encryption.formats import FormatVersion, MetadataStorage
from clients.s3_encryption.keyrings import AesGcmKeyring, Keyring, KmsKeyring
from clients.server_endpoint import find_server

PROGRESS_THRESHOLD = 8 * 1024 * 1024
"""Files at least this large get a progress bar (when stderr is a terminal or forced)."""
_MIB = 1024 * 1024
S3_URL = "s3://"
#: Loggers of the AWS SDK that talk at INFO ("Found credentials in environment variables").
_SDK_LOGGERS = ("boto3", "botocore", "s3transfer", "urllib3")


@dataclass(frozen=True)
class Transfer:
    """What ``put``/``get`` moves: the object and the local file (``-``: stdin/stdout)."""

    bucket: str
    key: str
    file: str


def parse_transfer(command: str, arguments: Sequence[str]) -> Transfer:
    """``BUCKET KEY FILE`` (the original form), or, as the AWS CLI writes it, ``put FILE
    s3://BUCKET/KEY`` and ``get s3://BUCKET/KEY FILE``. A key ending in ``/`` (or none) takes
    the file's name, as ``aws s3 cp`` does. Raises ``ValueError`` saying which forms work."""
    forms = (
        f"use `{command} FILE s3://BUCKET/KEY` or `{command} BUCKET KEY FILE`"
        if command == "put"
        else f"use `{command} s3://BUCKET/KEY FILE` or `{command} BUCKET KEY FILE`"
    )
    if len(arguments) == 3 and not any(a.startswith(S3_URL) for a in arguments):
        bucket, key, file = arguments
        if not bucket or not key:
            raise ValueError(f"BUCKET and KEY must not be empty; {forms}")
        return Transfer(bucket, key, file)
    if len(arguments) != 2:
        raise ValueError(f"expected 2 or 3 arguments, got {len(arguments)}; {forms}")
    url, file = (arguments[1], arguments[0]) if command == "put" else arguments
    if not url.startswith(S3_URL) or file.startswith(S3_URL):
        raise ValueError(f"{forms}")
    bucket, _, key = url[len(S3_URL) :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}; {forms}")
    if not key or key.endswith("/"):
        if file == "-":
            raise ValueError(f"{url!r} names no object key; {forms}")
        key += os.path.basename(file.rstrip("/"))
    return Transfer(bucket, key, file)


class ProgressBar:
    """A plain-text progress bar on a stream, redrawn at most every ``interval`` seconds."""

    def __init__(
        self, total: int | None, label: str, stream: IO[str], *, interval: float = 0.2
    ) -> None:
        self.total = total
        self.label = label
        self.done = 0
        self._stream = stream
        self._interval = interval
        self._started = time.monotonic()
        self._last_draw = 0.0

    def update(self, amount: int) -> None:
        """Count ``amount`` more bytes; redraw if enough time passed."""
        self.done += amount
        now = time.monotonic()
        if now - self._last_draw >= self._interval:
            self._last_draw = now
            self._draw(now)

    def render(self, now: float | None = None) -> str:
        """The current bar as one line of text (no carriage return)."""
        elapsed = max((now or time.monotonic()) - self._started, 1e-6)
        rate = self.done / _MIB / elapsed
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            filled = int(fraction * 30)
            return (
                f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%} "
                f"{self.done / _MIB:.1f}/{self.total / _MIB:.1f} MiB {rate:.1f} MiB/s"
            )
        return f"{self.label} {self.done / _MIB:.1f} MiB {rate:.1f} MiB/s"

    def _draw(self, now: float) -> None:
        self._stream.write("\r" + self.render(now))
        self._stream.flush()

    def finish(self) -> None:
        """Draw the final state and end the line."""
        self._draw(time.monotonic())
        self._stream.write("\n")
        self._stream.flush()


def register(subparsers: Any) -> None:
    """Add the ``s3`` command (with ``put`` and ``get``) to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "s3",
        help="client-side encrypted S3 upload/download (CSE-KMS, CSE-C)",
        description="Encrypt before upload / decrypt after download, in the AWS S3 "
        "Encryption Client format (V3 by default).",
    )
    # The top-level CLI dispatches on ``args.handler`` (kms_service.serving.cli convention).
    parser.set_defaults(handler=run)
    commands = parser.add_subparsers(dest="s3_command", metavar="{put,get}", required=True)
    put = commands.add_parser(
        "put",
        help="encrypt FILE and upload it: FILE s3://BUCKET/KEY, or BUCKET KEY FILE",
        usage="mock-kms s3 put (FILE s3://BUCKET/KEY | BUCKET KEY FILE) (--cse-kms KEY_ID | "
        "--cse-key FILE) [options]",
    )
    get = commands.add_parser(
        "get",
        help="download and decrypt into FILE: s3://BUCKET/KEY FILE, or BUCKET KEY FILE",
        usage="mock-kms s3 get (s3://BUCKET/KEY FILE | BUCKET KEY FILE) (--cse-kms KEY_ID | "
        "--cse-key FILE) [options]",
    )
    for command in (put, get):
        command.add_argument(
            "arguments",
            nargs="+",
            metavar="ARGUMENT",
            help="the object (s3://BUCKET/KEY, or BUCKET KEY) and the local file (- for "
            "stdin/stdout)",
        )
        keys = command.add_mutually_exclusive_group(required=True)
        keys.add_argument("--cse-kms", metavar="KEY_ID", help="CSE-KMS with this KMS key")
        keys.add_argument(
            "--cse-key", metavar="FILE", help="CSE-C with the raw 32-byte AES-256 key in FILE"
        )
        command.add_argument(
            "--endpoint-url",
            help="S3 endpoint (default: MOCK_KMS_ENDPOINT, AWS_ENDPOINT_URL_KMS, "
            "AWS_ENDPOINT_URL, MOCK_KMS_BIND, else http://127.0.0.1:8080)",
        )
        command.add_argument(
            "--kms-endpoint-url", help="KMS endpoint for --cse-kms (default: the S3 endpoint)"
        )
        command.add_argument("--region", help="AWS region (default: AWS_REGION or us-east-1)")
        command.add_argument(
            "--context",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="encryption context entry (CSE-KMS only); repeat for more",
        )
        command.add_argument(
            "--progress",
            choices=("auto", "always", "never"),
            default="auto",
            help="progress bar on stderr: auto = large files on a terminal",
        )
    put.add_argument("--format", choices=("v3", "v2"), default="v3", help="envelope format")
    put.add_argument(
        "--instruction-file",
        action="store_true",
        help="store the envelope in KEY.instruction instead of object metadata",
    )
    put.add_argument(
        "--part-size",
        type=int,
        default=DEFAULT_PART_SIZE // _MIB,
        metavar="MIB",
        help="multipart part size in MiB (default %(default)s)",
    )
    get.add_argument(
        "--allow-legacy", action="store_true", help="also read legacy V1 / CBC objects"
    )


def _parse_context(entries: list[str]) -> dict[str, str]:
    context: dict[str, str] = {}
    for entry in entries:
        key, separator, value = entry.partition("=")
        if not separator or not key:
            raise ValueError(f"--context needs KEY=VALUE, got {entry!r}")
        context[key] = value
    return context


def _boto3() -> Any:
    try:
        return importlib.import_module("boto3")
    except ImportError:
        raise SystemExit("mock-kms s3 needs boto3: pip install boto3") from None


def _region(args: argparse.Namespace) -> str:
    return str(
        args.region
        or os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1"
    )


def _keyring(args: argparse.Namespace, endpoint: str) -> Keyring:
    if args.cse_key is not None:
        with open(args.cse_key, "rb") as key_file:
            key = key_file.read()
        if len(key) != 32:
            raise ValueError(
                f"{args.cse_key} holds {len(key)} bytes; --cse-key needs exactly 32 raw bytes"
            )
        return AesGcmKeyring(key)
    # The project's thin client, on the server's endpoint unless told otherwise; credentials
    # from the usual AWS sources.
    kms = KmsClient(endpoint_url=args.kms_endpoint_url or endpoint, region_name=_region(args))
    return KmsKeyring(kms, args.cse_kms)


def _progress(args: argparse.Namespace, total: int | None, label: str) -> ProgressBar | None:
    if args.progress == "never":
        return None
    if args.progress == "auto" and (
        not sys.stderr.isatty() or total is None or total < PROGRESS_THRESHOLD
    ):
        return None
    return ProgressBar(total, label, sys.stderr)


def _client_errors() -> tuple[type[BaseException], ...]:
    try:
        module = importlib.import_module("botocore.exceptions")
    except ImportError:
        return ()
    return (module.BotoCoreError, module.ClientError)


def run(args: argparse.Namespace) -> int:
    """Execute ``mock-kms s3 put|get``; returns the process exit status (0 on success).

    Errors (encryption, S3/KMS, local files, arguments) are printed on stderr as one line and
    give status 1.
    """
    boto3 = _boto3()
    for name in _SDK_LOGGERS:  # their INFO lines are noise on a command's stderr
        logging.getLogger(name).setLevel(logging.WARNING)
    handled: tuple[type[BaseException], ...] = (
        S3EncryptionError,
        OSError,
        ValueError,
        KmsClientError,
        KmsLocalError,
        *_client_errors(),
    )
    try:
        return _run(args, boto3)
    except handled as exc:
        print(f"\nmock-kms s3 {args.s3_command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, boto3: Any) -> int:
    transfer = parse_transfer(args.s3_command, args.arguments)
    context = _parse_context(args.context)
    region = _region(args)
    endpoint = find_server(args.endpoint_url).url
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region)
    options: Mapping[str, Any] = {}
    if args.s3_command == "put":
        options = {
            "format_version": FormatVersion.V2 if args.format == "v2" else FormatVersion.V3,
            "metadata_storage": MetadataStorage.INSTRUCTION_FILE
            if args.instruction_file
            else MetadataStorage.OBJECT_METADATA,
            "part_size": args.part_size * _MIB,
        }
    else:
        options = {"allow_legacy_formats": args.allow_legacy}
    client = EncryptingS3Client(s3, _keyring(args, endpoint), **options)
    bucket, key, file = transfer.bucket, transfer.key, transfer.file
    if args.s3_command == "get" and file != "-" and os.path.isdir(file):
        file = os.path.join(file, os.path.basename(key))  # as `aws s3 cp` does
    target = f"s3://{bucket}/{key}"
    if args.s3_command == "put":
        total = None if file == "-" else os.path.getsize(file)
        bar = _progress(args, total, f"put {target}")
        callback = bar.update if bar else None
        if file == "-":
            client.upload_fileobj(
                sys.stdin.buffer,
                bucket,
                key,
                Callback=callback,
                EncryptionContext=context,
            )
        else:
            client.upload_file(file, bucket, key, Callback=callback, EncryptionContext=context)
    else:
        head = s3.head_object(Bucket=bucket, Key=key)
        total = max(int(head.get("ContentLength", 0)) - 16, 0)
        bar = _progress(args, total, f"get {target}")
        callback = bar.update if bar else None
        if file == "-":
            client.download_fileobj(
                bucket,
                key,
                sys.stdout.buffer,
                Callback=callback,
                EncryptionContext=context,
            )
            sys.stdout.buffer.flush()
        else:
            client.download_file(bucket, key, file, Callback=callback, EncryptionContext=context)
    if bar is not None:
        bar.finish()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m clients.s3_encryption.cli s3 put ...``)."""
    parser = argparse.ArgumentParser(prog="mock-kms")
    register(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
