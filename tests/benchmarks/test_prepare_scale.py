"""Preparation speed and memory at a fraction of full MIMIC-IV size (opt-in: `pytest --benchmark-only`).

Raw tables come from `bench synth-raw` (real schemas, gzip) and are kept in $MEDREC_BENCH_DATA
(default /tmp/medrec-bench-data) between runs, since writing scale 1.0 takes minutes. Each
preparation runs in a fresh process with an empty cache, which reports its own peak RSS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA

DATA = Path(os.environ.get("MEDREC_BENCH_DATA", "/tmp/medrec-bench-data"))
PROBE = """
import json, resource, sys, time
from pathlib import Path
from bench.loading import load_bundle
start = time.perf_counter()
bundle = load_bundle("mimic4", data_dir=Path(sys.argv[1]), resources=Path(sys.argv[2]), cache_dir=Path(sys.argv[3]))
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "patients": len(bundle.patients), "visits": sum(len(p.visits) for p in bundle.patients),
                  "counts": bundle.meta["counts"]}))
"""


def raw_tables(scale: float) -> Path:
    folder = DATA / f"mimic4-{scale}"
    if not (folder / "hosp" / "prescriptions.csv.gz").is_file():
        subprocess.run([sys.executable, "-m", "bench", "synth-raw", "--format", "mimic4", "--scale", str(scale),
                        "--out", str(folder), "--resources", str(SHARED_DATA / "medkb")], check=True)
    return folder


@pytest.mark.parametrize("scale", [0.01, 0.1, 1.0])
def test_prepare_mimic4_at_scale(benchmark, scale, tmp_path):
    folder = raw_tables(scale)

    def prepare() -> dict:
        cache = tmp_path / f"cache-{len(os.listdir(tmp_path))}"
        done = subprocess.run([sys.executable, "-c", PROBE, str(folder), str(SHARED_DATA / "medkb"), str(cache)],
                              capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    result = benchmark.pedantic(prepare, rounds=1, iterations=1)
    benchmark.extra_info.update({"scale": scale, **{k: v for k, v in result.items() if k != "counts"},
                                 "prescription_rows": result["counts"]["prescription_rows"]})
    print(f"\nscale {scale}: {result['seconds']:.1f} s, peak RSS {result['peak_rss_mb']:.0f} MB, "
          f"{result['counts']['prescription_rows']:,} prescription rows -> {result['patients']:,} patients")
    assert result["patients"] > 0
