"""The README as a newcomer runs it: every ```sh and ```python example, in order, as written,
against real servers, on a machine with no AWS configuration; and the README's lists of
operations and options, against the code.

Every example block carries an HTML comment saying what it is:

* ``<!-- example: server -->``: the command that starts the server (``make run`` is
  ``mock-kms serve`` in a fresh virtual environment). The test starts that server itself, on
  127.0.0.1:8080 as the README says, with the data directory ``./.mock-kms`` of one working
  directory shared by every example, and stops the previous one first, as a reader would.
* ``<!-- example: run -->``: run as written in that working directory; it must exit 0.
  Shell blocks run in ``bash -euo pipefail``, with the ``export`` lines of earlier shell
  blocks first (a reader runs them in one terminal).
* ``<!-- example: skip: REASON -->``: not run, for the reason given.

Examples run with an empty ``HOME``, ``AWS_CONFIG_FILE`` and ``AWS_SHARED_CREDENTIALS_FILE``
set to ``/dev/null`` and no ``AWS_*`` variable but those the examples set, so any AWS setup
the machine has cannot help them.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kms_service.operations import KNOWN_UNIMPLEMENTED, OPERATIONS
from kms_service.serving.cli import build_parser
from tests.conftest import require_in_ci
from tests.support.server import RunningServer, start_server

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
#: Where the README says the server listens.
README_PORT = 8080
EXAMPLE_TIMEOUT_SECONDS = 180

_BLOCK = re.compile(
    r"^<!-- example: (?P<kind>server|run|skip)(?::\s*(?P<reason>.*?))? -->\n"
    r"```(?P<language>sh|python)\n(?P<code>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)
_ANY_BLOCK = re.compile(r"^```(sh|python)$", re.MULTILINE)


@dataclass(frozen=True)
class Example:
    kind: str
    language: str
    code: str
    reason: str
    line: int

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.kind} {self.language})"


def readme_examples() -> list[Example]:
    text = README.read_text(encoding="utf-8")
    return [
        Example(
            kind=match["kind"],
            language=match["language"],
            code=match["code"],
            reason=(match["reason"] or "").strip(),
            line=text.count("\n", 0, match.start()) + 2,
        )
        for match in _BLOCK.finditer(text)
    ]


def test_every_example_says_whether_it_runs() -> None:
    """A new ```sh or ```python block must be marked, so no example goes untested unnoticed."""
    text = README.read_text(encoding="utf-8")
    examples = readme_examples()
    assert len(examples) == len(_ANY_BLOCK.findall(text)), (
        "every ```sh/```python block in README.md needs <!-- example: run|server|skip: why -->"
    )
    assert all(example.reason for example in examples if example.kind == "skip")
    assert sum(example.kind == "run" for example in examples) >= 5


# --- running the examples -----------------------------------------------------------------


def _port_is_free(port: int) -> bool:
    """Whether nothing listens on ``port``. SO_REUSEADDR lets the bind pass over connections
    in TIME_WAIT but not over a listener; without SO_REUSEPORT, a reuse-port listener counts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _server_command(example: Example) -> tuple[dict[str, str], list[str]]:
    """The environment assignments and ``mock-kms serve`` arguments of a server block."""
    commands = [
        shlex.split(line, comments=True) for line in example.code.splitlines() if line.strip()
    ]
    assert len(commands) == 1, f"{example}: a server block holds one command"
    words = commands[0]
    env: dict[str, str] = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if words == ["make", "run"]:
        return env, []
    assert words[:2] == ["mock-kms", "serve"], f"{example}: not a server command: {words}"
    return env, words[2:]


def _clean_environment(home: Path) -> dict[str, str]:
    """What a shell on a machine without any AWS setup has, plus this checkout on the path."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.defpath}",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        # The README's commands use the installed package; here it is this checkout.
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _run(example: Example, workdir: Path, env: dict[str, str], exports: list[str]) -> str:
    if example.language == "python":
        command = [sys.executable, "-c", example.code]
    else:
        script = "\n".join(["set -euo pipefail", *exports, example.code])
        command = ["bash", "-c", script]
    result = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, (
        f"{example} failed with status {result.returncode}:\n{example.code}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    assert "Traceback" not in result.stderr, f"{example}:\n{result.stderr}"
    return result.stdout


def test_readme_examples_run_as_written(tmp_path: Path) -> None:
    if not _port_is_free(README_PORT):
        require_in_ci(f"127.0.0.1:{README_PORT}, where the README's examples point, is in use")
    workdir = tmp_path / "checkout"
    home = tmp_path / "home"
    workdir.mkdir()
    home.mkdir()
    env = _clean_environment(home)
    exports: list[str] = []
    outputs: list[str] = []
    server: RunningServer | None = None
    ran = 0
    try:
        for example in readme_examples():
            if example.kind == "skip":
                continue
            if example.kind == "server":
                if server is not None:
                    server.stop()
                server_env, arguments = _server_command(example)
                server = start_server(
                    workdir / ".mock-kms",
                    port=README_PORT,
                    env=server_env,
                    extra_args=arguments,
                    log_path=tmp_path / "server.log",
                )
                continue
            assert server is not None, f"{example} runs before any server block"
            outputs.append(_run(example, workdir, env, exports))
            ran += 1
            if example.language == "sh":
                exports += [
                    line for line in example.code.splitlines() if line.startswith("export ")
                ]
    finally:
        if server is not None:
            server.stop()
    assert ran == sum(example.kind == "run" for example in readme_examples())
    joined = "\n".join(outputs)
    assert "alias/app" in joined  # the quick start's alias, listed by the AWS CLI
    assert "b'secret'" in joined  # the boto3 round trip
    assert " 0 cycles" in joined  # the import graph


# --- the README's lists, against the code ---------------------------------------------------


def _listed_operations(marker: str) -> tuple[list[str], str]:
    """The backticked names on the list lines after ``<!-- operations: marker -->``, and the
    paragraph's text."""
    text = README.read_text(encoding="utf-8")
    start = text.index(f"<!-- operations: {marker} -->")
    paragraph = text[start:].split("\n\n", 1)[0]
    names = [
        name
        for line in paragraph.splitlines()
        if line.startswith("`")
        for name in re.findall(r"`([A-Za-z]+)`", line)
    ]
    return names, paragraph


def test_readme_lists_exactly_the_implemented_operations() -> None:
    names, paragraph = _listed_operations("supported")
    assert sorted(names) == sorted(OPERATIONS), "update README 'Supported operations and limits'"
    assert len(names) == len(set(names))
    assert f"({len(OPERATIONS)} operations" in paragraph


def test_readme_lists_exactly_the_unsupported_operations() -> None:
    names, _ = _listed_operations("unsupported")
    assert sorted(names) == sorted(KNOWN_UNIMPLEMENTED), (
        "update README 'Supported operations and limits'"
    )
    assert not set(names) & set(OPERATIONS)


def _serve_options() -> set[str]:
    parser = build_parser()
    subparsers = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    serve = subparsers.choices["serve"]
    return {
        option
        for action in serve._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def test_options_table_lists_every_serve_option() -> None:
    """The Configuration table against ``mock-kms serve``'s own parser, both ways."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    documented = {
        option
        for line in section.splitlines()
        if line.startswith("| `")
        for option in re.findall(r"`(--[a-z0-9-]+)`", line.split("|")[1])
    }
    options = _serve_options()
    assert len(options) > 15
    assert options - documented == set(), "options missing from the README's table"
    assert documented - options == set(), "the README's table lists options serve lacks"
