"""Preparation speed and memory at a fraction of full MIMIC-IV size (opt-in: `pytest --benchmark-only`).

Raw tables come from `bench.prep.raw_tables` (real schemas, gzip), generated on the fly when missing and kept
in $MEDREC_BENCH_DATA (unset: <tmp>/medrec-bench-data, e.g. /tmp/medrec-bench-data) between runs,
since writing scale 1.0 takes minutes; a folder counts as complete once its `synth-raw.json` is
written. The drug-knowledge files are located as in tests/conftest.py (shared folder, $MEDREC_DATA, $MEDREC_RESOURCES, fetch folder). Each
preparation runs in a fresh process with an empty cache, which reports its own peak RSS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import data_path, requires_data

DATA = Path(os.environ.get("MEDREC_BENCH_DATA") or Path(tempfile.gettempdir()) / "medrec-bench-data")
MEDKB = data_path("medkb")
DONE = "synth-raw.json"  # written after every table: an interrupted generation is redone
# Peak RSS from VmHWM, this process's own high-water mark: ru_maxrss keeps the parent's across fork and
# exec on Linux (so it would report the pytest process's size whenever that is larger).
PROBE = """
import json, resource, sys, time
from pathlib import Path
from bench.loading import load_bundle

def peak_rss_mb():
    try:
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024 / (1024 if sys.platform == "darwin" else 1)

start = time.perf_counter()
bundle = load_bundle("mimic4", data_dir=Path(sys.argv[1]), resources=Path(sys.argv[2]), cache_dir=Path(sys.argv[3]))
print(json.dumps({"seconds": time.perf_counter() - start, "peak_rss_mb": peak_rss_mb(),
                  "patients": len(bundle.patients), "visits": sum(len(p.visits) for p in bundle.patients),
                  "counts": bundle.meta["counts"]}))
"""


def raw_tables(scale: float) -> tuple[Path, dict]:
    """The raw MIMIC-IV-shaped tables at `scale`, written by bench.prep.raw_tables unless already complete."""
    folder = DATA / f"mimic4-{scale}"
    if not (folder / DONE).is_file():
        requires_data("medkb")  # skips (fails under MEDREC_REQUIRE_DATA=1) where no folder has it
        from bench.prep.raw_tables import generate

        made = generate("mimic4", scale, folder, resources=MEDKB)
        (folder / DONE).write_text(json.dumps({"format": made.format, "scale": made.scale, "seed": made.seed,
                                               "seconds": made.seconds, "rows": {t.name: t.rows for t in made.tables},
                                               "bytes": sum(t.bytes for t in made.tables)}, indent=2) + "\n")
    return folder, json.loads((folder / DONE).read_text())


@pytest.mark.parametrize("scale", [0.01, 0.1, 1.0])
def test_prepare_mimic4_at_scale(benchmark, scale, tmp_path, speed_note):
    folder, made = raw_tables(scale)

    def prepare() -> dict:
        cache = tmp_path / f"cache-{len(os.listdir(tmp_path))}"
        done = subprocess.run([sys.executable, "-c", PROBE, str(folder), str(MEDKB), str(cache)],
                              capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    result = benchmark.pedantic(prepare, rounds=1, iterations=1)
    benchmark.extra_info.update({"scale": scale, **{k: v for k, v in result.items() if k != "counts"},
                                 "prescription_rows": result["counts"]["prescription_rows"],
                                 "raw_gzip_mb": made["bytes"] / 1e6, "raw_folder": str(folder)})
    speed_note(f"prepare mimic4 at scale {scale}: {result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB, "
               f"{result['counts']['prescription_rows']:,} prescription rows -> {result['patients']:,} patients")
    assert result["patients"] > 0
