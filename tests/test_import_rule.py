"""The import rule (DESIGN.md): `bench` reaches plug-ins (baselines, leader, ...) only through registry
strings, never by import, and never names a plug-in's model; plug-ins never import each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench.plugins import PLUGINS
from bench.registry import models
from bench.splits import SCHEMES
from tests.conftest import REPO_ROOT

PLUGIN_PACKAGES = tuple(sorted({target.partition(":")[0].split(".")[0] for target in PLUGINS}))


def modules(package: str) -> list[Path]:
    return sorted((REPO_ROOT / package).rglob("*.py"))


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, top-level package) of every import in the file, module- or function-level."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def test_bench_never_imports_a_plugin():
    assert PLUGIN_PACKAGES == ("baselines", "leader")
    found = [f"{path.relative_to(REPO_ROOT)}:{line} imports {name}" for path in modules("bench")
             for line, name in imported(path) if name in PLUGIN_PACKAGES]
    assert found == []


@pytest.mark.parametrize("package", PLUGIN_PACKAGES)
def test_plugins_never_import_each_other(package):
    others = set(PLUGIN_PACKAGES) - {package}
    found = [f"{path.relative_to(REPO_ROOT)}:{line} imports {name}" for path in modules(package)
             for line, name in imported(path) if name in others]
    assert found == []


def string_constants(path: Path) -> list[tuple[int, str]]:
    """(line, value) of every string constant in the file (docstrings and f-string parts included)."""
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


KNOWN: set[tuple[str, str]] = set()  # (file, name) exceptions: none


def test_bench_never_names_a_plugin_model():
    """No string constant of bench/ is a plug-in model's name (a split scheme that shares a name with
    a model, "random" or "gamenet", is the core's own word), and none mentions a model whose name
    cannot be an ordinary word (one with a hyphen: "leader-student", "plain-llm"), docstrings and
    help texts included."""
    names = set(models())
    assert {"leader-student", "plain-llm", "logreg"} <= names
    exact = names - set(SCHEMES)
    hyphenated = {n for n in names if "-" in n}
    found = []
    for path in modules("bench"):
        where = str(path.relative_to(REPO_ROOT))
        for line, value in string_constants(path):
            mentioned = {n for n in hyphenated if n in value} | ({value} & exact)
            found += [(where, line, n) for n in sorted(mentioned) if (where, n) not in KNOWN]
    assert found == []
