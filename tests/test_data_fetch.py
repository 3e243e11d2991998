"""`bench data fetch|where` and the data home, against a local HTTP server (127.0.0.1, never the network):
a small fake dataset card for the mechanics, the real MIMIC-III demo files (served from the shared data
folder) for the end-to-end path, and the test-data guard of tests/conftest.py."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.prep.mimic import FORMATS
from bench.registry import DatasetCard, dataset_card, dataset_cards
from tests.conftest import CHECKSUMS, REPO_ROOT, one_line_error, requires_data

runner = CliRunner()
FILES = {"TABLE_A.csv": b"a,b\n1,2\n", "hosp/table_b.csv.gz": b"\x1f\x8b not really gzip, any bytes do" * 50,
         "LICENSE.txt": b"ODbL\n"}
PAGE = "https://example.org/content/tiny-demo/1.0/"


class Server:
    """A local HTTP server over `root`; `requests` lists the paths asked; paths in `short` are cut off."""

    def __init__(self, root: Path) -> None:
        self.root, self.requests, self.short = root, [], set()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path.lstrip("/"))
                if self.path.lstrip("/") in server.short:  # announce 1,000 bytes, send 10, hang up
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"0123456789")
                    return
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path) -> Iterator[Server]:
    root = tmp_path / "served"
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    served = Server(root)
    yield served
    served.close()


def closed_port_url() -> str:
    """A local URL nothing listens on: connecting fails at once, as offline does."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty data home ($MEDREC_DATA) and cache; no resources variable."""
    monkeypatch.setenv("MEDREC_DATA", str(tmp_path / "home"))
    monkeypatch.setenv("MEDREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("MEDREC_RESOURCES", raising=False)
    return tmp_path / "home"


@pytest.fixture
def tiny(monkeypatch, server) -> DatasetCard:
    """A fetchable card `tiny-demo` whose pins are the served files' digests."""
    card = DatasetCard(name="tiny-demo", loader="bench.prep.mimic:load_mimic", summary="a fake demo",
                       path=Path("datasets/tiny-demo.toml"),
                       fetch={"base_url": server.url, "page": PAGE, "sha256": {n: sha(d) for n, d in FILES.items()}})
    cards = {**dataset_cards(), card.name: card}
    monkeypatch.setattr("bench.prep.data_fetch.dataset_cards", lambda: cards)
    return card


def fetch(*args: str):
    return runner.invoke(app, ["data", "fetch", *args])


# --- the pins ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mimic3-demo", "mimic4-demo"])
def test_pins_are_physionets_sha256sums_for_every_table_the_loader_reads(name):
    listed = {}
    for line in (requires_data("checksums") / CHECKSUMS[name]).read_text().splitlines():
        if line.strip():
            digest, path = line.split(maxsplit=1)
            listed[path.strip()] = digest
    pins = dataset_card(name).fetch["sha256"]
    assert pins and all(listed[path] == digest for path, digest in pins.items())
    spec = FORMATS[dataset_card(name).format]
    tables = {spec.admissions, spec.diagnoses, spec.procedures, spec.prescriptions, spec.d_diagnoses, spec.d_procedures}
    pinned_tables = {Path(path).name.split(".")[0] for path in pins if path != "LICENSE.txt"}
    assert pinned_tables == tables  # exactly the tables the loader reads
    assert all(Path(path).parent == Path(spec.subdir or ".") for path in pins if path != "LICENSE.txt")
    assert dataset_card(name).fetch["base_url"].startswith("https://physionet.org/files/")


@pytest.mark.parametrize("fetch_table,expected", [
    ({"base_url": "https://x/", "sha256": {"../outside.csv": "0" * 64}}, "'../outside.csv': expected a relative path"),
    ({"base_url": "https://x/", "sha256": {"/etc/passwd": "0" * 64}}, "'/etc/passwd': expected a relative path"),
    ({"base_url": "https://x/", "sha256": {"A.csv": "abc"}}, "'A.csv': expected a relative path = a 64-hex sha256"),
    ({"base_url": "https://x/", "sha256": {"A.csv": "z" * 64}}, "'A.csv': expected a relative path = a 64-hex sha256"),
    ({"sha256": {"A.csv": "0" * 64}}, "[fetch] needs base_url"),
])
def test_a_malformed_fetch_table_is_one_line_naming_the_card(fetch_table, expected, monkeypatch, home):
    card = DatasetCard(name="bad-demo", loader="bench.prep.mimic:load_mimic", summary="", path=Path("datasets/bad.toml"),
                       fetch=fetch_table)
    monkeypatch.setattr("bench.prep.data_fetch.dataset_cards", lambda: {card.name: card})
    one_line_error(fetch("bad-demo"), "datasets/bad.toml", expected)


# --- fetch mechanics ----------------------------------------------------------------------------------------

def test_fetch_downloads_every_pinned_file_then_skips_them(home, tiny, server):
    out = fetch("tiny-demo")
    assert out.exit_code == 0, out.output
    folder = home / "tiny-demo"  # the default: <data home>/NAME
    for name, data in FILES.items():
        assert (folder / name).read_bytes() == data
    assert sorted(server.requests) == sorted(FILES)
    assert not list(folder.rglob(".*.tmp"))
    assert out.stdout.count("downloaded") == len(FILES)

    server.requests.clear()
    again = fetch("tiny-demo")
    assert again.exit_code == 0 and server.requests == [] and again.stdout.count("skipped") == len(FILES)
    forced = fetch("tiny-demo", "--force")
    assert forced.exit_code == 0 and sorted(server.requests) == sorted(FILES)


def test_a_corrupted_file_is_downloaded_again(home, tiny, server):
    assert fetch("tiny-demo").exit_code == 0
    damaged = home / "tiny-demo" / "hosp" / "table_b.csv.gz"
    damaged.write_bytes(damaged.read_bytes()[:-5])
    server.requests.clear()
    out = fetch("tiny-demo")
    assert out.exit_code == 0, out.output
    assert server.requests == ["hosp/table_b.csv.gz"] and "replaced" in out.stdout
    assert damaged.read_bytes() == FILES["hosp/table_b.csv.gz"]


def test_checksum_mismatch_is_one_line_and_leaves_no_file(home, tiny, server):
    (server.root / "hosp" / "table_b.csv.gz").write_bytes(b"something else")
    folder = home / "tiny-demo"
    line = one_line_error(fetch("tiny-demo"), f"{server.url}hosp/table_b.csv.gz", "table_b.csv.gz",
                          f"expected {sha(FILES['hosp/table_b.csv.gz'])}", f"got {sha(b'something else')}",
                          "nothing written")
    assert "sha256 mismatch" in line
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == ["TABLE_A.csv"]


def test_a_mismatch_keeps_the_file_that_was_there(home, tiny, server):
    old = home / "tiny-demo" / "TABLE_A.csv"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"an older copy")
    (server.root / "TABLE_A.csv").write_bytes(b"wrong bytes")
    one_line_error(fetch("tiny-demo"), "sha256 mismatch", "TABLE_A.csv")
    assert old.read_bytes() == b"an older copy" and [p.name for p in old.parent.iterdir()] == ["TABLE_A.csv"]


def test_a_folder_that_cannot_be_written_is_one_line(home, tiny, server, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "demo"  # its parent is a file: mkdir fails with an OSError
    one_line_error(fetch("tiny-demo", "--to", str(target)), f"{target / 'TABLE_A.csv'}: cannot write (",
                   "nothing written")


def test_offline_is_one_line_naming_the_url_and_the_manual_way(home, tiny, monkeypatch):
    base = closed_port_url()
    monkeypatch.setitem(tiny.fetch, "base_url", base)
    one_line_error(fetch("tiny-demo"), f"cannot download {base}TABLE_A.csv", f"Download the files from {PAGE}",
                   "`bench data fetch tiny-demo --to DIR`")
    assert not (home / "tiny-demo" / "TABLE_A.csv").exists()


def test_http_error_and_a_cut_off_download(home, tiny, server):
    (server.root / "LICENSE.txt").unlink()
    one_line_error(fetch("tiny-demo"), f"cannot download {server.url}LICENSE.txt (HTTP 404")
    server.short.add("hosp/table_b.csv.gz")
    one_line_error(fetch("tiny-demo", "--force"), f"cannot download {server.url}hosp/table_b.csv.gz (interrupted")
    assert not list((home / "tiny-demo").rglob("*.tmp"))
    # the copy fetched by the first call (before the 404) is left as it was
    assert (home / "tiny-demo" / "hosp" / "table_b.csv.gz").read_bytes() == FILES["hosp/table_b.csv.gz"]


def test_manual_files_are_checked_without_the_network(tmp_path, home, tiny, monkeypatch):
    manual = tmp_path / "by-hand"
    for name, data in FILES.items():
        (manual / name).parent.mkdir(parents=True, exist_ok=True)
        (manual / name).write_bytes(data)
    monkeypatch.setitem(tiny.fetch, "base_url", closed_port_url())
    out = fetch("tiny-demo", "--to", str(manual))
    assert out.exit_code == 0, out.output
    assert out.stdout.count("skipped") == len(FILES) and f"--data-dir {manual}" in out.stdout


def test_default_folder_without_medrec_data_is_under_the_cache(tmp_path, tiny, monkeypatch):
    monkeypatch.delenv("MEDREC_DATA", raising=False)
    monkeypatch.setenv("MEDREC_CACHE", str(tmp_path / "cache"))
    assert fetch("tiny-demo").exit_code == 0
    assert (tmp_path / "cache" / "data" / "tiny-demo" / "TABLE_A.csv").read_bytes() == FILES["TABLE_A.csv"]


@pytest.mark.parametrize("name,why", [("mimic9", "no such dataset"),
                                      ("mimic3", "not open access (credentialed access: https://physionet.org/"),
                                      ("synthetic", "it is built in")])
def test_unknown_or_credentialed_dataset_lists_the_fetchable_ones(name, why, home):
    one_line_error(fetch(name), f"cannot fetch {name!r}: {why}", "`bench data fetch` downloads mimic3-demo, mimic4-demo")


def test_to_a_file_is_refused(tmp_path, home, tiny):
    (tmp_path / "a-file").write_text("x")
    one_line_error(fetch("tiny-demo", "--to", str(tmp_path / "a-file")), "--to", "not a folder")


def test_where_shows_the_data_home_and_what_is_in_it(home, tiny):
    assert fetch("tiny-demo").exit_code == 0
    (home / "tiny-demo" / "TABLE_A.csv").write_bytes(b"changed")
    (home / "tiny-demo" / "LICENSE.txt").unlink()
    out = runner.invoke(app, ["data", "where"])
    assert out.exit_code == 0, out.output
    assert f"data home: {home} ($MEDREC_DATA)" in out.stdout
    text = " ".join(out.stdout.split())
    assert "missing LICENSE.txt; differs TABLE_A.csv" in text and "not fetched" in text
    assert "not there" in text  # <data home>/medkb


# --- the data home as the default --data-dir ------------------------------------------------------------

@pytest.mark.parametrize("name,page", [("mimic3-demo", "physionet.org/content/mimiciii-demo/1.4"),
                                       ("mimic4-demo", "physionet.org/content/mimic-iv-demo/2.2")])
def test_missing_demo_data_names_the_fetch_command(name, page, home):
    line = one_line_error(runner.invoke(app, ["prepare", "--dataset", name]),
                          f"nothing in {home / name}", f"`bench data fetch {name}`", "--data-dir", page)
    assert "$MEDREC_DATA" in line
    (home / name).mkdir(parents=True)
    (home / name / "LICENSE.txt").write_text("ODbL")
    one_line_error(runner.invoke(app, ["prepare", "--dataset", name]), f"{home / name} lacks", "ADMISSIONS.csv"
                   if name == "mimic3-demo" else "hosp/admissions.csv.gz", f"`bench data fetch {name}`")


def test_credentialed_mimic_still_needs_data_dir(home):
    line = one_line_error(runner.invoke(app, ["prepare", "--dataset", "mimic4"]), "needs --data-dir",
                          "physionet.org/content/mimiciv")
    assert "bench data fetch" not in line


@pytest.mark.needs_data("mimic3-demo", "medkb")
def test_real_demo_fetched_then_bench_run_without_paths(mimic3_demo, medkb_dir, tmp_path, home, monkeypatch):
    """The real files through the real transport from a local server, then `bench run` with no path at all."""
    demo = Server(mimic3_demo)
    try:
        monkeypatch.setitem(dataset_card("mimic3-demo").fetch, "base_url", demo.url)
        out = fetch("mimic3-demo")
    finally:
        demo.close()
    assert out.exit_code == 0, out.output
    assert sorted(demo.requests) == sorted(dataset_card("mimic3-demo").fetch["sha256"])
    (home / "medkb").symlink_to(medkb_dir, target_is_directory=True)  # the default resources folder
    run = runner.invoke(app, ["run", "--model", "popular", "--dataset", "mimic3-demo",
                              "--results-dir", str(tmp_path / "results")])
    assert run.exit_code == 0, run.output
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "mimic3-demo" / "popular").glob("*/run.json")]
    assert [r["dataset"]["data_dir"] for r in records] == [str(home / "mimic3-demo")]  # the default, recorded
    metas = [json.loads(p.read_text())["meta"] for p in (tmp_path / "cache").glob("mimic3-demo-*/bundle.json")]
    assert [(m["data_dir"], m["resources"]) for m in metas] == [(str(home / "mimic3-demo"), str(home / "medkb"))]


# --- the test-data guard (tests/conftest.py, .ci/run) -----------------------------------------------------

GUARDED = "tests/test_data_fetch.py::test_real_demo_fetched_then_bench_run_without_paths"


def run_guarded(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess:
    """Run one data test in a fresh pytest where no folder has the data."""
    env = {k: v for k, v in os.environ.items() if k not in ("MEDREC_DATA", "MEDREC_RESOURCES", "MEDREC_REQUIRE_DATA")}
    env.update(MEDREC_SHARED_DATA=str(tmp_path / "empty-shared"), MEDREC_CACHE=str(tmp_path / "empty-cache"),
               PYTHONPATH=str(REPO_ROOT), **extra)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", GUARDED],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_missing_data_skips_naming_the_fetch_command_and_fails_when_required(tmp_path):
    skipped = run_guarded(tmp_path)
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "1 skipped" in skipped.stdout and "needs the MIMIC-III demo: run `bench data fetch mimic3-demo`" in skipped.stdout
    required = run_guarded(tmp_path, MEDREC_REQUIRE_DATA="1")
    assert required.returncode == 1, required.stdout + required.stderr
    assert "1 error" in required.stdout and "MEDREC_REQUIRE_DATA=1" in required.stdout
    assert "bench data fetch mimic3-demo" in required.stdout


@pytest.mark.parametrize("shared", [True, False])
def test_ci_requires_the_data_tests_where_the_shared_folder_exists(tmp_path, shared):
    """.ci/run in a copy laid out like CI (repo/ beside shared/data), with a `make` that reports the variable."""
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    (repo / ".ci" / "run").write_text((REPO_ROOT / ".ci" / "run").read_text())
    if shared:
        (tmp_path / "shared" / "data").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "make").write_text('#!/bin/sh\necho "make $* MEDREC_REQUIRE_DATA=${MEDREC_REQUIRE_DATA:-unset}"\n')
    (bin_dir / "make").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("MEDREC_SHARED_DATA", "MEDREC_REQUIRE_DATA")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(["bash", str(repo / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"make test MEDREC_REQUIRE_DATA={'1' if shared else 'unset'}"
