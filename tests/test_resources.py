"""`bench resources verify|fetch|build-ddi`: the shared medkb folder, broken copies of it, a fake network
transport serving the shared files, and build-ddi on a small hand-checked TWOSIDES fixture. No network."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.cli import resources as resources_cli
from bench.prep.downloads import urllib_transport
from bench.errors import UserError
from bench.io import file_sha256
from bench.prep.ddi_nodes import NODES_FILE
from bench.prep.drug_knowledge import read_ddi_pairs
from bench.prep.drug_knowledge_files import RESOURCES, Keep, kept_side_effects
from tests.conftest import data_path, one_line_error, requires_data

MEDKB = data_path("medkb")
FIXTURES = Path(__file__).parent / "fixtures" / "resources"
TWOSIDES = FIXTURES / "twosides_small.csv"
DRUG_ATC = FIXTURES / "drug_atc_small.csv"
NDC_URL = ("https://raw.githubusercontent.com/sjy1203/GAMENet/da695b4fc9390882f3a681c82115e81291ae6380/"
           "data/ndc2rxnorm_mapping.txt")
runner = CliRunner()
needs_medkb = pytest.mark.needs_data("medkb")


@pytest.fixture
def medkb_copy(tmp_path: Path) -> Path:
    """A writable copy of the shared medkb folder (in tmp, never in the repository)."""
    folder = tmp_path / "medkb"
    shutil.copytree(MEDKB, folder)
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


# --- verify ---------------------------------------------------------------------------------------------

@pytest.mark.needs_data("medkb", files=("SHA256SUMS.txt",))
def test_pinned_checksums_match_the_shared_sha256sums():
    sums = requires_data("medkb", ("SHA256SUMS.txt",)) / "SHA256SUMS.txt"  # the folder that has the file
    listed = dict(reversed(line.split()) for line in sums.read_text().splitlines() if line)
    assert {r.name: r.sha256 for r in RESOURCES} == listed


@needs_medkb
def test_verify_shared_medkb_all_ok():
    out = runner.invoke(app, ["resources", "verify", str(MEDKB)])
    assert out.exit_code == 0, out.output
    assert out.output.count(" ok ") == len(RESOURCES)
    for detail in ("4,184 NDCs", "467 pairs", "131 ATC3 with SMILES", "746 CIDs", "269 ATC3"):
        assert detail in out.output


@needs_medkb
def test_verify_reads_the_environment_variable(monkeypatch):
    monkeypatch.setenv("MEDREC_RESOURCES", str(MEDKB))
    assert runner.invoke(app, ["resources", "verify"]).exit_code == 0


def test_verify_without_folder_or_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MEDREC_RESOURCES", raising=False)
    monkeypatch.setenv("MEDREC_DATA", str(tmp_path))  # no <data home>/medkb either
    one_line_error(runner.invoke(app, ["resources", "verify"]), "or set MEDREC_RESOURCES")
    one_line_error(runner.invoke(app, ["resources", "verify", "/nonexistent/medkb"]), "no such folder")


@needs_medkb
def test_verify_wrong_ddi_header_is_bad_format(medkb_copy):
    (medkb_copy / "ddi_pairs_atc3.csv").write_text("drug_a,drug_b\nN02B,M01A\n")
    out = runner.invoke(app, ["resources", "verify", str(medkb_copy)])
    one_line_error(out, "ddi_pairs_atc3.csv bad format", "atc3_a,atc3_b")
    assert "ndc2rxnorm_mapping.txt" not in out.stderr


@needs_medkb
@pytest.mark.parametrize("name,content,expected", [
    ("ndc2rxnorm_mapping.txt", "['not', 'a dict']", "dict literal"),
    ("ndc2rxnorm_mapping.txt", "__import__('os').system('true')", "dict literal"),
    ("ndc2atc_level4.zip", "not a zip", "zip"),
    ("atc_coding.csv.gz", "atc_code,atc_name\nN02B,analgesics\n", "gzip"),
    ("ddi_pairs_atc3.csv", "atc3_a,atc3_b\nparacetamol,aspirin\n", "ATC3"),
    ("atc3_smiles.json", "{not json", "JSON"),
    ("atc3_smiles.json", '{"N02B": "CC(=O)Nc1ccc(O)cc1"}', "lists of SMILES"),
    ("drug-atc.csv", "CID000000001,N02BE01\nparacetamol,N02BE01\n", "line 2"),
])
def test_verify_bad_formats_are_fatal(medkb_copy, name, content, expected):
    (medkb_copy / name).write_text(content)
    one_line_error(runner.invoke(app, ["resources", "verify", str(medkb_copy)]), f"{name} bad format", expected)


@needs_medkb
def test_verify_missing_required_file(medkb_copy):
    (medkb_copy / "atc3_smiles.json").unlink()
    one_line_error(runner.invoke(app, ["resources", "verify", str(medkb_copy)]), "atc3_smiles.json missing")


@needs_medkb
def test_verify_missing_optional_drug_atc_passes(medkb_copy):
    (medkb_copy / "drug-atc.csv").unlink()
    out = runner.invoke(app, ["resources", "verify", str(medkb_copy)])
    assert out.exit_code == 0 and "missing (optional)" in out.output


@needs_medkb
def test_verify_checksum_differs_fails(medkb_copy):
    """Issue 13 c: a checksum mismatch is exit code 2 (the table still shows the details)."""
    path = medkb_copy / "ndc2rxnorm_mapping.txt"
    path.write_text(path.read_text().replace("{", "{'00000000001': u'1', ", 1))
    out = runner.invoke(app, ["resources", "verify", str(medkb_copy)])
    assert out.stderr == (f"error: resources in {medkb_copy}: ndc2rxnorm_mapping.txt differs from the pinned "
                          "version; `bench run` refuses it unless --allow-modified-resources\n")
    one_line_error(out)
    assert "checksum differs" in out.stdout and "4,185 NDCs" in out.stdout
    assert "differs from the pinned version" in out.stdout


# --- fetch ----------------------------------------------------------------------------------------------

class FakeTransport:
    """Serves the shared medkb files by URL basename (or `override` bytes) and records what was asked."""

    def __init__(self, override: dict[str, bytes] | None = None):
        self.urls: list[str] = []
        self.override = override or {}

    def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        name = url.rsplit("/", 1)[-1]
        return self.override.get(name) or (MEDKB / name).read_bytes()


@pytest.fixture
def fake(monkeypatch) -> FakeTransport:
    transport = FakeTransport()
    monkeypatch.setattr(resources_cli, "transport", transport)
    return transport


@needs_medkb
def test_fetch_downloads_pinned_urls_then_skips(tmp_path, fake):
    folder = tmp_path / "kb"
    out = runner.invoke(app, ["resources", "fetch", "--to", str(folder)])
    assert out.exit_code == 0, out.output
    assert NDC_URL in fake.urls
    assert sorted(fake.urls) == sorted(r.source.url for r in RESOURCES if r.source)
    assert all(u.startswith("https://raw.githubusercontent.com/") for u in fake.urls)
    assert "https://raw.githubusercontent.com/ipolharvard/ethos-paper/f14ccc4253248b9f4bfdaa620da97afa0086abd3/" \
           "ethos/data/atc_coding.csv.gz" in fake.urls
    for resource in RESOURCES:
        if resource.source:
            assert file_sha256(folder / resource.name) == resource.sha256
    assert "build-ddi" in out.output and "never load" in out.output  # the two files without a raw source
    assert sorted(p.name for p in folder.iterdir()) == sorted(r.name for r in RESOURCES if r.source)

    fake.urls.clear()
    again = runner.invoke(app, ["resources", "fetch", "--to", str(folder)])
    assert again.exit_code == 0 and fake.urls == [] and "skipped" in again.output
    forced = runner.invoke(app, ["resources", "fetch", "--to", str(folder), "--force"])
    assert forced.exit_code == 0 and len(fake.urls) == 4


@needs_medkb
def test_fetch_checksum_mismatch_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(resources_cli, "transport", FakeTransport({"ndc2rxnorm_mapping.txt": b"{'1': u'2'}"}))
    out = runner.invoke(app, ["resources", "fetch", "--to", str(tmp_path)])
    expected = next(r.sha256 for r in RESOURCES if r.name == "ndc2rxnorm_mapping.txt")
    one_line_error(out, NDC_URL, f"expected {expected}", "got ")
    assert list(tmp_path.iterdir()) == []  # no file, no temp file


@needs_medkb
def test_fetch_keeps_a_differing_file_unless_forced(tmp_path, fake):
    (tmp_path / "drug-atc.csv").write_text("CID000000001,N02BE01\n")
    out = runner.invoke(app, ["resources", "fetch", "--to", str(tmp_path)])
    assert out.exit_code == 0 and "kept" in out.output
    assert not any(u.endswith("drug-atc.csv") for u in fake.urls)
    assert runner.invoke(app, ["resources", "fetch", "--to", str(tmp_path), "--force"]).exit_code == 0
    assert file_sha256(tmp_path / "drug-atc.csv") == file_sha256(MEDKB / "drug-atc.csv")


@needs_medkb
def test_fetch_and_verify_default_to_the_data_home(tmp_path, fake, monkeypatch):
    """No --to, no DIR, no $MEDREC_RESOURCES: <data home>/medkb, the folder `bench run` reads by default."""
    monkeypatch.delenv("MEDREC_RESOURCES", raising=False)
    monkeypatch.setenv("MEDREC_DATA", str(tmp_path / "home"))
    out = runner.invoke(app, ["resources", "fetch"])
    assert out.exit_code == 0, out.output
    folder = tmp_path / "home" / "medkb"
    assert sorted(p.name for p in folder.iterdir()) == sorted(r.name for r in RESOURCES if r.source)
    for name in ("ddi_pairs_atc3.csv", "atc3_smiles.json"):  # no raw public source: copied by hand
        shutil.copy(MEDKB / name, folder / name)
    verified = runner.invoke(app, ["resources", "verify"])
    assert verified.exit_code == 0 and f"resourcesin{folder}" in "".join(verified.stdout.split()), verified.output


@needs_medkb
def test_fetch_defaults_to_medrec_resources_when_set(tmp_path, fake, monkeypatch):
    monkeypatch.setenv("MEDREC_RESOURCES", str(tmp_path / "kb"))
    monkeypatch.setenv("MEDREC_DATA", str(tmp_path / "home"))
    assert runner.invoke(app, ["resources", "fetch"]).exit_code == 0
    assert (tmp_path / "kb" / "drug-atc.csv").is_file() and not (tmp_path / "home").exists()


def test_missing_resources_name_the_data_home_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDREC_RESOURCES", raising=False)
    monkeypatch.setenv("MEDREC_DATA", str(tmp_path / "home"))
    one_line_error(runner.invoke(app, ["resources", "verify"]), "--resources DIR", "MEDREC_RESOURCES",
                   f"or fill {tmp_path / 'home' / 'medkb'}", "`bench resources fetch`")


def test_default_transport_failure_is_one_line(tmp_path):
    with pytest.raises(UserError, match="download failed") as info:
        urllib_transport((tmp_path / "absent.txt").as_uri(), timeout=1)
    assert "\n" not in str(info.value)


# --- build-ddi ------------------------------------------------------------------------------------------

RAREST_2 = [("A02B", "C07A"), ("A02B", "C10A"), ("M01A", "N02B")]
MOST_FREQUENT_2 = [("A02B", "M01A"), ("A02B", "N02B"), ("B01A", "C07A"), ("B01A", "C10A"), ("B01A", "N02B"),
                   ("C07A", "M01A"), ("C07A", "N02B"), ("C10A", "M01A"), ("C10A", "N02B")]
ALL_TYPES = sorted(set(RAREST_2) | set(MOST_FREQUENT_2) | {("A02B", "B01A"), ("B01A", "M01A")})


@pytest.mark.parametrize("options,expected", [
    (["--keep", "rarest", "--top", "2"], RAREST_2),
    (["--keep", "most-frequent", "--top", "2"], MOST_FREQUENT_2),
    (["--top", "3"], sorted(RAREST_2 + [("B01A", "M01A")])),
    ([], ALL_TYPES),  # --top 40 keeps all 6 types of the fixture
])
def test_build_ddi_on_fixture(tmp_path, options, expected):
    out_file = tmp_path / "ddi.csv"
    out = runner.invoke(app, ["resources", "build-ddi", "--twosides", str(TWOSIDES), "--drug-atc", str(DRUG_ATC),
                              "--out", str(out_file), *options])
    assert out.exit_code == 0, out.output
    assert out_file.read_text() == "atc3_a,atc3_b\n" + "".join(f"{a},{b}\n" for a, b in expected)
    assert list(read_ddi_pairs(out_file)) == expected
    assert f"-> {len(expected)} ATC3 pairs" in out.output


def test_build_ddi_writes_the_graphs_classes_beside_the_pairs(tmp_path):
    out = runner.invoke(app, ["resources", "build-ddi", "--twosides", str(TWOSIDES), "--drug-atc", str(DRUG_ATC),
                              "--out", str(tmp_path / "ddi.csv"), "--top", "2"])
    assert out.exit_code == 0, out.output
    # every compound of the table with an ATC code: CID 1 A02B, 2 N02B, 3 C10A and C07A, 4 B01A and N02B,
    # 5 M01A (CID 9 has none); B01A has no pair among the 2 rarest types but is a class of the graph
    assert (tmp_path / NODES_FILE).read_text() == "atc3\nA02B\nB01A\nC07A\nC10A\nM01A\nN02B\n"
    # the message may be wrapped at any space (the temporary path's length varies): compare without whitespace
    assert "".join(f"6 ATC3 classes in {tmp_path / NODES_FILE}".split()) in "".join(out.output.split())


def test_build_ddi_default_out_is_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["resources", "build-ddi", "--twosides", str(TWOSIDES), "--drug-atc", str(DRUG_ATC)]
    assert runner.invoke(app, args).exit_code == 0
    assert list(read_ddi_pairs(tmp_path / "ddi_pairs_atc3.csv")) == ALL_TYPES


def test_build_ddi_missing_column(tmp_path):
    broken = tmp_path / "drug-DDI.csv"
    broken.write_text("STITCH 1,STITCH 2,Side Effect Name\nCID000000001,CID000000002,effect one\n")
    out = runner.invoke(app, ["resources", "build-ddi", "--twosides", str(broken), "--drug-atc", str(DRUG_ATC),
                              "--out", str(tmp_path / "out.csv")])
    one_line_error(out, str(broken), "missing column 'Polypharmacy Side Effect'")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("twosides,drug_atc,expected", [
    ("STITCH 1,STITCH 2,Polypharmacy Side Effect,Side Effect Name\nCID000000001,CID000000002\n", None,
     "line 2: expected 4 fields"),
    (None, "CID000000001,N02BE01\nCID000000002\n", "line 2: expected a STITCH id then ATC codes"),
    ("", None, "missing column 'STITCH 1'"),
])
def test_build_ddi_malformed_input(tmp_path, twosides, drug_atc, expected):
    paths = {}
    for key, text, default in (("twosides", twosides, TWOSIDES), ("drug_atc", drug_atc, DRUG_ATC)):
        paths[key] = default if text is None else tmp_path / f"{key}.csv"
        if text is not None:
            paths[key].write_text(text)
    out = runner.invoke(app, ["resources", "build-ddi", "--twosides", str(paths["twosides"]),
                              "--drug-atc", str(paths["drug_atc"]), "--out", str(tmp_path / "out.csv")])
    one_line_error(out, expected)


def test_build_ddi_missing_input_file(tmp_path):
    out = runner.invoke(app, ["resources", "build-ddi", "--twosides", str(tmp_path / "nope.csv"),
                              "--drug-atc", str(DRUG_ATC)])
    one_line_error(out, "--twosides", "no such file")


def test_kept_side_effects_breaks_ties_by_id():
    counts = {"C3": 1, "C1": 1, "C2": 5, "C4": 5, "C5": 3}
    assert kept_side_effects(counts, Keep.RAREST, 3) == ["C1", "C3", "C5"]
    assert kept_side_effects(counts, Keep.MOST_FREQUENT, 3) == ["C2", "C4", "C5"]


# --- issue 13 c: `bench run` / `prepare` check the folder before using it ----------------------------------

def _cut_ddi(folder: Path, keep_lines: int) -> None:
    path = folder / "ddi_pairs_atc3.csv"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:keep_lines]))


@pytest.mark.needs_data("mimic3-demo", "medkb")
@pytest.mark.parametrize("keep_lines,expected", [
    (183, f"ddi_pairs_atc3.csv differs from the pinned version; restore the pinned file or pass "
          "--allow-modified-resources to use it anyway"),
    (1, "ddi_pairs_atc3.csv bad format"),  # header only: no pairs at all
])
def test_run_refuses_a_modified_resources_folder(keep_lines, expected, medkb_copy, tmp_path):
    _cut_ddi(medkb_copy, keep_lines)
    demo = data_path("mimic3-demo")
    for command in (["run", "--model", "popular", "--results-dir", str(tmp_path / "results")], ["prepare"]):
        out = runner.invoke(app, [*command, "--dataset", "mimic3-demo", "--data-dir", str(demo),
                                  "--resources", str(medkb_copy)], env={"MEDREC_CACHE": str(tmp_path / "cache")})
        one_line_error(out, f"resources in {medkb_copy}: {expected}")
    assert not (tmp_path / "results").exists() and not (tmp_path / "cache").exists()


@pytest.mark.needs_data("mimic3-demo", "medkb")
def test_run_with_allow_modified_resources_records_it(medkb_copy, tmp_path):
    import json

    _cut_ddi(medkb_copy, 183)
    common = ["--dataset", "mimic3-demo", "--data-dir", str(data_path("mimic3-demo")),
              "--results-dir", str(tmp_path / "results")]
    env = {"MEDREC_CACHE": str(tmp_path / "cache")}
    out = runner.invoke(app, ["run", "--model", "popular", *common, "--resources", str(medkb_copy),
                              "--allow-modified-resources"], env=env)
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["run", "--model", "popular", *common, "--resources", str(MEDKB)], env=env)
    assert out.exit_code == 0, out.output
    records = sorted((json.loads(p.read_text()) for p in (tmp_path / "results").glob("*/*/*/run.json")),
                     key=lambda r: r["created_at"])
    checks = [r["resources"] for r in records]
    assert [{k: c[k] for k in ("folder", "modified", "allowed")} for c in checks] == [
        {"folder": str(medkb_copy.resolve()), "modified": ["ddi_pairs_atc3.csv"], "allowed": True},
        {"folder": str(MEDKB.resolve()), "modified": [], "allowed": False}]
    # every file's digest, so the run can be repeated with the same (modified) files
    assert checks[0]["sha256"]["ddi_pairs_atc3.csv"] == file_sha256(medkb_copy / "ddi_pairs_atc3.csv")
    assert checks[1]["sha256"] == {p.name: file_sha256(p) for p in MEDKB.iterdir() if p.is_file()}
    assert records[0]["dataset"]["hash"] != records[1]["dataset"]["hash"]  # 182 pairs instead of the pinned ones


def test_synthetic_runs_need_no_resources(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDREC_RESOURCES", raising=False)
    out = runner.invoke(app, ["run", "--model", "popular", "--dataset", "synthetic-small",
                              "--results-dir", str(tmp_path / "results")])
    assert out.exit_code == 0, out.output
    import json

    assert json.loads(next((tmp_path / "results").glob("*/*/*/run.json")).read_text())["resources"] is None
