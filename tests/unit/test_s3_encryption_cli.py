"""``mock-kms s3`` argument parsing and the plain-text progress bar (no network)."""

from __future__ import annotations

import argparse
import io
import re

import pytest

from clients.s3_encryption.cli import (
    ProgressBar,
    Transfer,
    _parse_context,
    parse_transfer,
    register,
    run,
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mock-kms")
    register(top.add_subparsers(dest="command", required=True))
    return top


def test_put_arguments_and_handler() -> None:
    args = parser().parse_args(
        ["s3", "put", "b", "k", "f.bin", "--cse-kms", "alias/x", "--context", "a=b=c"]
    )
    assert (args.s3_command, args.arguments) == ("put", ["b", "k", "f.bin"])
    assert parse_transfer("put", args.arguments) == Transfer("b", "k", "f.bin")
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


@pytest.mark.parametrize(
    ("command", "arguments", "expected"),
    [
        ("put", ["f.bin", "s3://b/k"], Transfer("b", "k", "f.bin")),
        ("put", ["d/f.bin", "s3://b/some/prefix/"], Transfer("b", "some/prefix/f.bin", "d/f.bin")),
        ("put", ["dir/f.bin", "s3://b"], Transfer("b", "f.bin", "dir/f.bin")),
        ("put", ["-", "s3://b/k/v"], Transfer("b", "k/v", "-")),
        ("get", ["s3://b/a/b.txt", "out"], Transfer("b", "a/b.txt", "out")),
        ("get", ["b", "k", "out"], Transfer("b", "k", "out")),
    ],
)
def test_aws_cli_style_s3_urls(command: str, arguments: list[str], expected: Transfer) -> None:
    assert parse_transfer(command, arguments) == expected


@pytest.mark.parametrize(
    ("command", "arguments", "says"),
    [
        ("put", ["s3://b/k", "f.bin"], "put FILE s3://BUCKET/KEY"),  # the wrong way round
        ("get", ["out", "s3://b/k"], "get s3://BUCKET/KEY FILE"),
        ("put", ["f.bin"], "expected 2 or 3 arguments, got 1"),
        ("put", ["a", "b", "c", "d"], "expected 2 or 3 arguments, got 4"),
        ("put", ["f", "s3:///k"], "no bucket"),
        ("put", ["-", "s3://b/"], "names no object key"),
        ("get", ["s3://b/k", "s3://c/k"], "get s3://BUCKET/KEY FILE"),
        ("put", ["", "k", "f"], "must not be empty"),
    ],
)
def test_unusable_addresses_say_which_forms_work(
    command: str, arguments: list[str], says: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_transfer(command, arguments)
