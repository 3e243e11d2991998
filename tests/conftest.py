"""Shared fixtures, and where the tests find real data.

Data (the MIMIC-III demo, the drug-knowledge folder `medkb`) is looked up in this order: the shared
folder `../shared/data/<name>` (CI; $MEDREC_SHARED_DATA moves that root), `$MEDREC_DATA/<name>` (and
`$MEDREC_RESOURCES` for medkb), then `bench data fetch`'s folder `<data home>/<name>`. A folder counts
only when the files the tests read are there with their pinned sha256. A test marked
`@pytest.mark.needs_data("mimic3-demo", ...)` (or calling `requires_data`) SKIPS where none has it, with
a one-line reason naming the command that fetches it; under MEDREC_REQUIRE_DATA=1 (set by .ci/run when
../shared/data exists) it FAILS instead, so CI never silently stops running the data tests.

Benchmarks (tests/benchmarks) run only under `pytest --benchmark-only`; saved runs (--benchmark-autosave /
--benchmark-save) go to benchmarks/ at the repository root.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_ENV = "MEDREC_SHARED_DATA"
REQUIRE_ENV = "MEDREC_REQUIRE_DATA"
BENCHMARK_STORAGE = REPO_ROOT / "benchmarks"
_PLUGIN_DEFAULT_STORAGE = "file://./.benchmarks"

_WHAT = {"mimic3-demo": "the MIMIC-III demo", "mimic4-demo": "the MIMIC-IV demo",
         "medkb": "the drug-knowledge folder medkb", "checksums": "PhysioNet's published SHA256SUMS of the demos"}
_HOW = {"medkb": "run `bench resources fetch`, then add ddi_pairs_atc3.csv and atc3_smiles.json as it says",
        "checksums": "only the shared data folder has them (../shared/data/checksums)"}
CHECKSUMS = {"mimic3-demo": "mimic-iii-demo-1.4.SHA256SUMS.txt", "mimic4-demo": "mimic-iv-demo-2.2.SHA256SUMS.txt"}


def shared_root() -> Path:
    """The CI data folder: $MEDREC_SHARED_DATA, else ../shared/data beside the repository."""
    return Path(os.environ.get(SHARED_ENV) or REPO_ROOT.parent / "shared" / "data")


def _pins(name: str) -> dict[str, str | None]:
    """The files the tests read in data folder `name`, with their pinned sha256."""
    if name == "medkb":
        from bench.prep.drug_knowledge_files import RESOURCES

        return {r.name: r.sha256 for r in RESOURCES}
    if name == "checksums":
        return dict.fromkeys(CHECKSUMS.values())
    from bench.prep.data_fetch import fetchable_manifest

    return {f.path: f.sha256 for f in fetchable_manifest(name).files}


def candidates(name: str) -> list[Path]:
    """Where data folder `name` is looked for, in order (without repeats)."""
    from bench.prep.data_fetch import data_home

    found = [shared_root() / name]
    if os.environ.get("MEDREC_DATA"):
        found.append(Path(os.environ["MEDREC_DATA"]) / name)
    if name == "medkb" and os.environ.get("MEDREC_RESOURCES"):
        found.append(Path(os.environ["MEDREC_RESOURCES"]))
    found.append(data_home() / name)
    return list(dict.fromkeys(found))


@cache
def _usable(folder: Path, files: tuple[tuple[str, str | None], ...]) -> bool:
    from bench.prep.downloads import is_valid

    return all(is_valid(folder / path, digest) if digest else (folder / path).is_file() for path, digest in files)


def find_data(name: str, files: tuple[str, ...] = ()) -> Path | None:
    """The first candidate folder holding the pinned files of `name` (and any extra `files`), or None."""
    pins = _pins(name)
    wanted = tuple(sorted({**pins, **{f: pins.get(f) for f in files}}.items()))
    return next((folder for folder in candidates(name) if _usable(folder, wanted)), None)


def data_path(name: str, files: tuple[str, ...] = ()) -> Path:
    """The folder of `name` for module-level constants: the one found, else the shared one (missing). Never
    fails, so it is safe at collection; tests using it carry `needs_data` and skip before they run."""
    return find_data(name, files) or shared_root() / name


def missing_reason(name: str, files: tuple[str, ...] = ()) -> str:
    """The one-line skip reason: what is missing, the command that fetches it, where it was looked for."""
    how = _HOW.get(name, f"run `bench data fetch {name}`")
    if files:  # beyond what the fetch brings: the full download has them
        how += f" and add {', '.join(files)} beside them (the shared data folder and the full download have them)"
    return f"needs {_WHAT.get(name, name)}: {how} (looked in {', '.join(map(str, candidates(name)))})"


def requires_data(name: str, files: tuple[str, ...] = ()) -> Path:
    """The folder of `name`; skips the test where none has it (fails under MEDREC_REQUIRE_DATA=1)."""
    found = find_data(name, files)
    if found is not None:
        return found
    reason = missing_reason(name, files)
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}; {REQUIRE_ENV}=1: data tests must run here, not skip", pytrace=False)
    pytest.skip(reason)


def one_line_error(out, *fragments: str) -> str:
    """A CliRunner result that is a user error: exit code 2, a single `error:` line on stderr holding every
    fragment, no traceback. Returns that line."""
    assert out.exit_code == 2, out.output
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    assert "Traceback" not in out.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_data(*names, files=()): the test reads these data folders "
                            "(mimic3-demo, medkb); skipped where none is found (failed under MEDREC_REQUIRE_DATA=1)")
    if not hasattr(config.option, "benchmark_only"):  # pytest-benchmark not installed
        return
    if not config.option.benchmark_only:
        config.option.benchmark_skip = True
    # runs before the plugin builds its session (its pytest_configure is trylast); an explicit
    # --benchmark-storage wins
    if config.option.benchmark_storage == _PLUGIN_DEFAULT_STORAGE:
        config.option.benchmark_storage = f"file://{BENCHMARK_STORAGE}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """`needs_data` marks: skip (or fail) before any fixture reads the data."""
    for mark in item.iter_markers("needs_data"):
        for name in mark.args:
            requires_data(name, tuple(mark.kwargs.get("files", ())))


@pytest.fixture(scope="session")
def mimic3_demo() -> Path:
    """The MIMIC-III demo folder (skips where none is found)."""
    return requires_data("mimic3-demo")


@pytest.fixture(scope="session")
def medkb_dir() -> Path:
    """The drug-knowledge folder (skips where none is found)."""
    return requires_data("medkb")


@pytest.fixture(scope="session")
def small_bundle():
    """The `synthetic-small` dataset, built once per test session."""
    from bench.loading import load_bundle

    return load_bundle("synthetic-small")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Every model in the tests is tiny: extra torch threads only add spin time, and on a 2-core
    machine busy with anything else they make each step 5-10x slower (measured)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
