"""``mock-kms s3`` argument parsing and the plain-text progress bar (no network)."""

from __future__ import annotations

import argparse
import io

import pytest

from clients.s3_encryption.cli import ProgressBar, _parse_context, register, run


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mock-kms")
    register(top.add_subparsers(dest="command", required=True))
    return top


def test_put_arguments_and_handler() -> None:
    args = parser().parse_args(
        ["s3", "put", "b", "k", "f.bin", "--cse-kms", "alias/x", "--context", "a=b=c"]
    )
    assert (args.s3_command, args.bucket, args.key, args.file) == ("put", "b", "k", "f.bin")
    assert args.cse_kms == "alias/x" and args.cse_key is None
    assert args.format == "v3" and args.part_size == 8 and not args.instruction_file
    assert args.handler is run
    assert _parse_context(args.context) == {"a": "b=c"}


def test_exactly_one_key_source_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["s3", "get", "b", "k", "f"])
    with pytest.raises(SystemExit):
        parser().parse_args(["s3", "get", "b", "k", "f", "--cse-kms", "k", "--cse-key", "f"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_bad_context_entries_are_refused() -> None:
    with pytest.raises(ValueError, match="KEY=VALUE"):
        _parse_context(["novalue"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        _parse_context(["=value"])


def test_progress_bar_renders_fraction_and_sizes() -> None:
    stream = io.StringIO()
    bar = ProgressBar(100 * 1024 * 1024, "put s3://b/k", stream, interval=0)
    bar.update(25 * 1024 * 1024)
    line = bar.render()
    assert line.startswith("put s3://b/k [#######.......................]")
    assert " 25.0% 25.0/100.0 MiB" in line
    bar.update(75 * 1024 * 1024)
    bar.finish()
    output = stream.getvalue()
    assert output.count("\r") >= 2 and output.endswith("\n")
    assert "100.0% 100.0/100.0 MiB" in output


def test_progress_bar_without_a_known_total() -> None:
    bar = ProgressBar(None, "put s3://b/k", io.StringIO())
    bar.update(3 * 1024 * 1024)
    assert bar.render().startswith("put s3://b/k 3.0 MiB ")
