"""Plug-ins by registry string (bench.plugins): the built-in ones, one from $MEDREC_PLUGINS with its own
model, verb and comparison table (tests/toy_plugin.py), and one-line errors for a broken one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.analysis.reference import default_reference_dir, reference_runs
from bench.errors import UserError
from bench.plugins import ENV_VAR, Plugin, load_plugin, plugins
from bench.registry import model_class, models
from tests.conftest import REPO_ROOT

TOY = "tests.toy_plugin:PLUGIN"


def bench(*args: str, plugins_env: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, ENV_VAR: plugins_env,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))}
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, env=env,
                          cwd=REPO_ROOT)


def test_builtin_plugins_own_every_model(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    owners = {p.name: {m.name for m in p.models} for p in plugins()}
    assert owners["baselines"] >= {"random", "popular", "logreg", "gamenet", "safedrug", "molerec"}
    assert owners["leader"] == {"plain-llm", "leader-teacher", "leader-student", "leader-student-nokd"}
    assert {v.name for p in plugins() for v in p.verbs} == {"prompts", "teacher-probe"}


def test_a_plugin_from_the_environment_adds_a_model(monkeypatch):
    monkeypatch.setenv(ENV_VAR, f" {TOY} ,")
    assert "toy-popular" in models()
    assert model_class("toy-popular").name == "toy-popular"
    assert isinstance(load_plugin(TOY), Plugin)


@pytest.mark.parametrize("target,message", [
    ("no_such_module:PLUGIN", "cannot import no_such_module"),
    ("tests.toy_plugin:NOPE", "tests.toy_plugin.NOPE is nothing, not a bench.plugins.Plugin"),
    ("tests.toy_plugin", "expected 'module:attribute'"),
])
def test_a_broken_plugin_is_a_user_error_naming_it(monkeypatch, target, message):
    monkeypatch.setenv(ENV_VAR, target)
    with pytest.raises(UserError, match="plug-in") as info:
        plugins()
    assert target in str(info.value) and message in str(info.value) and ENV_VAR in str(info.value)


def test_a_model_name_registered_twice_is_refused(monkeypatch):
    monkeypatch.setenv(ENV_VAR, f"{TOY},tests.toy_plugin_twice:PLUGIN")
    with pytest.raises(UserError, match="model 'toy-popular' is already registered by plug-in toy"):
        plugins()


def test_cli_lists_runs_the_plugins_verb_and_shows_its_table(tmp_path):
    listed = bench("ls", "models", plugins_env=TOY)
    assert listed.returncode == 0 and "toy-popular" in listed.stdout, listed.stderr
    hello = bench("toy-hello", "--name", "medrec", plugins_env=TOY)
    assert hello.returncode == 0 and "hello medrec from the toy plug-in" in hello.stdout, hello.stderr
    compared = bench("compare", "--reference", "--results-dir", str(tmp_path), "--format", "md", plugins_env=TOY)
    rows = len(reference_runs(default_reference_dir()))  # one per reference model and dataset
    assert compared.returncode == 0 and f"toy table (md): {rows} runs" in compared.stdout, compared.stderr
    assert "toy table" not in bench("compare", "--reference", "--results-dir", str(tmp_path)).stdout


def test_cli_reports_a_broken_plugin_in_one_line():
    out = bench("ls", "models", plugins_env="no_such_module:PLUGIN")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "error: plug-in 'no_such_module:PLUGIN' (from $MEDREC_PLUGINS): cannot import no_such_module: "
        "No module named 'no_such_module'"]


def test_model_entries_name_the_teacher_their_class_declares(monkeypatch):
    """ModelEntry.teacher (read without importing the model) agrees with the class's TeacherSpec."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    for name, entry in models().items():
        spec = model_class(name).teacher
        assert entry.teacher == (spec.model if spec else ""), name


def test_a_plugin_listed_twice_in_the_environment_loads_once(monkeypatch):
    monkeypatch.setenv(ENV_VAR, f"{TOY}, {TOY} ,")
    assert [p.name for p in plugins()].count("toy") == 1


@pytest.mark.parametrize("module,expected", [
    ("PLUGIN = Plugin(name='ghost', models=(ModelEntry('ghost', 'no_such_module_x:Ghost', 'broken'),))",
     "model 'ghost' (no_such_module_x:Ghost): cannot import (ModuleNotFoundError"),
    ("PLUGIN = Plugin(name='bad', tables=(Table('t', 'tests.toy_plugin:no_such_table'),))",
     "plug-in bad: table 't' (tests.toy_plugin:no_such_table): cannot import (AttributeError"),
    ("raise RuntimeError('boom')", "cannot import broken_plugin_x: RuntimeError: boom"),
])
def test_a_broken_entry_or_plugin_module_is_one_line(tmp_path, module, expected):
    (tmp_path / "broken_plugin_x.py").write_text(
        "from bench.plugins import ModelEntry, Plugin, Table\n" + module + "\n")
    env = {**os.environ, ENV_VAR: "broken_plugin_x:PLUGIN",
           "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    args = (["run", "--model", "ghost", "--dataset", "synthetic-small", "--results-dir", str(tmp_path / "r")]
            if "ghost" in module else ["compare", "--reference", "--results-dir", str(tmp_path / "r")])
    out = subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, env=env,
                         cwd=REPO_ROOT)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert expected in line, line
