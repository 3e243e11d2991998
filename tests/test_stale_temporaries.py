"""Issue 13 g: temporaries of killed writers are removed by the next writer; incomplete run folders are
listed (and removed) by `bench ls runs --incomplete [--remove]`; readers ignore them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.prep.bundle_store import cached_bundle, store_bundle
from bench.cli import app
from bench.io import atomic_write_text
from bench.tempfiles import HOST, STALE_AFTER, remove_stale

runner = CliRunner()
OLD = time.time() - 2 * STALE_AFTER


def _leave_temporary(parent: Path, name: str, kind: str) -> Path:
    """Start a Python process that creates a temporary for `parent/name` and dies without cleaning up
    (as a killed writer does); returns the temporary, made older than STALE_AFTER."""
    code = ("import os, sys; from pathlib import Path; from bench import tempfiles; "
            f"p = tempfiles.make_temp_{kind}(Path(sys.argv[1]), sys.argv[2]); print(p); os._exit(0)")
    out = subprocess.run([sys.executable, "-c", code, str(parent), name], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    path = Path(out.stdout.strip())
    assert path.exists() and path.parent == parent
    os.utime(path, (OLD, OLD))
    return path


def _live_temporary(parent: Path, name: str) -> Path:
    """A temporary named after a live process (this one's parent), as old as a stale one."""
    path = parent / f".{name}.tmp-{HOST}-{os.getppid()}-livewrtr"
    path.mkdir()
    os.utime(path, (OLD, OLD))
    return path


def test_cache_write_removes_a_killed_writers_folder(small_bundle, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    key = f"{small_bundle.name}-0123456789abcdef"
    dead = _leave_temporary(cache, key, "dir")
    fresh = _leave_temporary(cache, key, "dir")
    os.utime(fresh, None)  # a dead writer, but changed just now: kept for now
    live = _live_temporary(cache, key)
    legacy_old, legacy_new = cache / f".{key}.abcd1234", cache / f".{key}.efgh5678"  # named by older versions
    for path in (legacy_old, legacy_new):
        path.mkdir()
    os.utime(legacy_old, (time.time() - 2 * 86400,) * 2)
    assert cached_bundle("another-key", cache) is None  # a read of the cache clears it too
    assert not dead.exists() and not legacy_old.exists()
    assert fresh.exists() and live.exists() and legacy_new.exists()
    store_bundle(small_bundle, key, cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted([key, fresh.name, live.name, legacy_new.name])
    assert cached_bundle(key, cache).hash == small_bundle.hash


def test_atomic_write_removes_a_killed_writers_file(tmp_path):
    target = tmp_path / "run.json"
    dead = _leave_temporary(tmp_path, "run.json", "file")
    other = _leave_temporary(tmp_path, "predictions.safetensors", "file")
    assert dead.name.startswith(f".run.json.tmp-{HOST}-") and dead.name.endswith(".tmp")
    atomic_write_text(target, "{}\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["run.json", other.name])  # only its own target's
    assert remove_stale(tmp_path) == [other] and sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_temporaries_of_another_host_are_left_alone(tmp_path):
    path = tmp_path / f".run.json.tmp-otherhost-1-abcdefgh.tmp"
    path.write_text("")
    os.utime(path, (OLD, OLD))
    assert remove_stale(tmp_path) == [] and path.exists()


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """Two finished runs, one folder of a run killed after its predictions (old), one being written."""
    root = tmp_path_factory.mktemp("results")
    for model in ("popular", "random"):
        out = runner.invoke(app, ["run", "--model", model, "--dataset", "synthetic-small", "--results-dir", str(root)])
        assert out.exit_code == 0, out.output
    finished = next((root / "synthetic-small" / "popular").iterdir())
    for run_id, when in (("20200101T000000Z-dead00", OLD), ("20990101T000000Z-ac71fe", None)):
        folder = finished.parent / run_id
        shutil.copytree(finished, folder)
        (folder / "run.json").unlink()
        for path in [folder, *folder.rglob("*")]:
            os.utime(path, None if when is None else (when, when))
    # not run folders: committed reference runs (one level deeper) and a folder that is not named as a run
    shutil.copytree(finished, root / "reference" / "synthetic-small" / "popular" / finished.name)
    (finished.parent / "notes").mkdir()
    for path in (root / "reference", finished.parent / "notes"):
        os.utime(path, (OLD, OLD))
    return root


def test_ls_runs_lists_complete_and_incomplete(results):
    out = runner.invoke(app, ["ls", "runs", "--results-dir", str(results)])
    assert out.exit_code == 0, out.output
    lines = [line for line in out.output.splitlines() if "synthetic-small" in line]
    assert len(lines) == 4
    assert sum("complete" in line and "incomplete" not in line for line in lines) == 2
    assert any("20200101T000000Z-dead00" in line and "incomplete: no run.json" in line for line in lines)
    assert any("20990101T000000Z-ac71fe" in line and "may still be running" in line for line in lines)
    out = runner.invoke(app, ["ls", "runs", "--results-dir", str(results), "--incomplete"])
    assert out.exit_code == 0 and out.output.count("synthetic-small") == 2 and "incomplete" in out.output


def test_readers_ignore_incomplete_folders(results):
    from bench.results import read_runs

    assert sorted(r["model"]["name"] for r in read_runs(results)) == ["popular", "random"]
    out = runner.invoke(app, ["compare", "--results-dir", str(results), "--format", "csv"])
    assert out.exit_code == 0, out.output


@pytest.mark.parametrize("args,expected", [
    (["ls", "runs", "--remove"], "--remove deletes incomplete run folders only: add --incomplete"),
    (["ls", "models", "--incomplete"], "--results-dir, --incomplete and --remove apply to `bench ls runs` only"),
    (["ls", "runs", "--results-dir", "/nonexistent/results"],
     "--results-dir /nonexistent/results: no such folder (run `bench run` first)"),
])
def test_ls_runs_bad_options(args, expected):
    out = runner.invoke(app, args)
    assert (out.exit_code, out.output) == (2, f"error: {expected}\n")


def test_ls_runs_remove_deletes_only_old_incomplete_folders(results, tmp_path):
    results = Path(shutil.copytree(results, tmp_path / "results"))  # the module's folders stay for the others
    folder = results / "synthetic-small" / "popular"
    for path in [folder / "20200101T000000Z-dead00", *(folder / "20200101T000000Z-dead00").rglob("*")]:
        os.utime(path, (OLD, OLD))  # copytree kept file times, not the folders'
    out = runner.invoke(app, ["ls", "runs", "--results-dir", str(results), "--incomplete", "--remove"])
    assert out.exit_code == 0, out.output
    assert f"removed {folder / '20200101T000000Z-dead00'}" in out.output
    assert f"kept {folder / '20990101T000000Z-ac71fe'}" in out.output
    assert not (folder / "20200101T000000Z-dead00").exists() and (folder / "20990101T000000Z-ac71fe").exists()
    assert (folder / "notes").is_dir() and (results / "reference" / "synthetic-small" / "popular").is_dir()
    assert len([p for p in folder.iterdir() if (p / "run.json").is_file()]) == 1
