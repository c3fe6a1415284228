"""The import graph tool (``python -m tools.import_graph``), and the rule it checks: no
package of the project has an import cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tools.import_graph import ROOT, build_graph, cycles, fold

PROJECT_PACKAGES = ["kms_service", "backends", "clients", "s3_service", "local_secrets"]


@pytest.mark.parametrize("package", PROJECT_PACKAGES)
def test_no_import_cycle(package: str) -> None:
    """Every import counts, function-level ones too: a cycle they hide is still a cycle."""
    graph = build_graph(package)
    assert len(graph) > 1
    assert cycles(graph) == []


def test_the_wire_layer_knows_nothing_of_stores_or_backends() -> None:
    """docs/architecture.md's rule: the wire layer reaches keys only through operations."""
    folded = fold(build_graph("kms_service"), 2)
    assert "kms_service.store" not in folded["kms_service.wire"]
    assert "kms_service.wire" not in folded["kms_service.operations"]
    assert folded["kms_service.domain"] == set()


def _package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_function_level_cycle_is_found_and_type_checking_imports_are_not(
    tmp_path: Path,
) -> None:
    _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "def f():\n    from . import c\n",
            "pkg/c.py": "import pkg.a\n",
            "pkg/d.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
            ),
            "pkg/sub/__init__.py": "from .. import d\n",
            "pkg/e.py": "from pkg.a import thing\nfrom pkg import VALUE\n",
        },
    )
    graph = build_graph("pkg", tmp_path)
    assert graph["pkg.b"] == {"pkg.c"}
    assert graph["pkg.d"] == set()
    assert graph["pkg.sub"] == {"pkg.d"}
    assert graph["pkg.e"] == {"pkg.a", "pkg"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_the_command_prints_the_graph_and_exits_0_without_cycles() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tools.import_graph", "--packages"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    lines = result.stdout.splitlines()
    assert any(line.startswith("kms_service.wire -> ") for line in lines)
    assert lines[-1].endswith("cycles")
    module_level = subprocess.run(
        [sys.executable, "-m", "tools.import_graph"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert module_level.returncode == 0, module_level.stdout
    assert module_level.stdout.splitlines()[-1].endswith(" 0 cycles")
