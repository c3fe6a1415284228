"""``mock-kms s3 put|get``: try client-side S3 encryption without writing code.

    mock-kms s3 put BUCKET KEY FILE --cse-kms alias/demo --endpoint-url http://127.0.0.1:5000 \\
        --kms-endpoint-url http://127.0.0.1:8080
    mock-kms s3 get BUCKET KEY FILE --cse-key master.key --endpoint-url http://127.0.0.1:5000

``FILE`` may be ``-`` for stdin / stdout. The top-level CLI calls :func:`register` to add the
``s3`` command; it sets ``handler=run`` so ``args.handler(args)`` executes it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Mapping
from typing import IO, Any

from clients.kms import KmsClient, KmsClientError, KmsLocalError
from clients.s3_encryption.client import DEFAULT_PART_SIZE, EncryptingS3Client
from clients.s3_encryption.errors import S3EncryptionError
from clients.s3_encryption.formats import FormatVersion, MetadataStorage
from clients.s3_encryption.keyrings import AesGcmKeyring, Keyring, KmsKeyring

PROGRESS_THRESHOLD = 8 * 1024 * 1024
"""Files at least this large get a progress bar (when stderr is a terminal or forced)."""
_MIB = 1024 * 1024


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
    put = commands.add_parser("put", help="encrypt FILE and upload it as BUCKET/KEY")
    get = commands.add_parser("get", help="download BUCKET/KEY and decrypt it into FILE")
    for command in (put, get):
        command.add_argument("bucket", metavar="BUCKET")
        command.add_argument("key", metavar="KEY")
        command.add_argument("file", metavar="FILE", help="local file, or - for stdin/stdout")
        keys = command.add_mutually_exclusive_group(required=True)
        keys.add_argument("--cse-kms", metavar="KEY_ID", help="CSE-KMS with this KMS key")
        keys.add_argument(
            "--cse-key", metavar="FILE", help="CSE-C with the raw 32-byte AES-256 key in FILE"
        )
        command.add_argument(
            "--endpoint-url", help="S3 endpoint (default: AWS or AWS_ENDPOINT_URL)"
        )
        command.add_argument(
            "--kms-endpoint-url",
            help="KMS endpoint (default: MOCK_KMS_ENDPOINT, AWS_ENDPOINT_URL_KMS, or AWS)",
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


def _keyring(args: argparse.Namespace) -> Keyring:
    if args.cse_key is not None:
        with open(args.cse_key, "rb") as key_file:
            key = key_file.read()
        if len(key) != 32:
            raise ValueError(
                f"{args.cse_key} holds {len(key)} bytes; --cse-key needs exactly 32 raw bytes"
            )
        return AesGcmKeyring(key)
    # The project's thin client: endpoint from the flag, else MOCK_KMS_ENDPOINT /
    # AWS_ENDPOINT_URL_KMS / AWS_ENDPOINT_URL; credentials from the usual AWS sources.
    kms = KmsClient(endpoint_url=args.kms_endpoint_url, region_name=_region(args))
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
    context = _parse_context(args.context)
    region = _region(args)
    s3 = boto3.client("s3", endpoint_url=args.endpoint_url, region_name=region)
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
    client = EncryptingS3Client(s3, _keyring(args), **options)
    target = f"s3://{args.bucket}/{args.key}"
    if args.s3_command == "put":
        total = None if args.file == "-" else os.path.getsize(args.file)
        bar = _progress(args, total, f"put {target}")
        callback = bar.update if bar else None
        if args.file == "-":
            client.upload_fileobj(
                sys.stdin.buffer,
                args.bucket,
                args.key,
                Callback=callback,
                EncryptionContext=context,
            )
        else:
            client.upload_file(
                args.file, args.bucket, args.key, Callback=callback, EncryptionContext=context
            )
    else:
        head = s3.head_object(Bucket=args.bucket, Key=args.key)
        total = max(int(head.get("ContentLength", 0)) - 16, 0)
        bar = _progress(args, total, f"get {target}")
        callback = bar.update if bar else None
        if args.file == "-":
            client.download_fileobj(
                args.bucket,
                args.key,
                sys.stdout.buffer,
                Callback=callback,
                EncryptionContext=context,
            )
            sys.stdout.buffer.flush()
        else:
            client.download_file(
                args.bucket, args.key, args.file, Callback=callback, EncryptionContext=context
            )
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
