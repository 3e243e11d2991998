"""The prepared-bundle cache: Parquet (visits) + JSON (vocabularies, titles, DDI, SMILES, meta).

A bundle lives in `<cache>/<key>/`, where the key hashes the dataset name, every preprocessing
parameter and the sha256 of every input file, so a changed parameter or input never reuses a stale
bundle. Folders are written under a temporary name and renamed into place (atomic).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from bench.io import file_sha256
from bench.data import DatasetBundle, Visit, Vocab, group_visits

ENV_VAR = "MEDREC_CACHE"
STORE_VERSION = 1
VISITS_FILE = "visits.parquet"
BUNDLE_FILE = "bundle.json"


def cache_root(cache_dir: Path | None = None) -> Path:
    """`cache_dir`, else $MEDREC_CACHE, else ~/.cache/medrec-bench."""
    if cache_dir is not None:
        return cache_dir
    return Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "medrec-bench")


def cache_key(name: str, params: dict[str, Any], inputs: list[Path], digests: dict[Path, str] | None = None) -> str:
    """`<name>-<16 hex>` over the name, parameters and the inputs' names and checksums (`digests`:
    checksums already computed, by path)."""
    digests = digests or {}
    payload = {"store": STORE_VERSION, "name": name, "params": params,
               "inputs": [[p.name, digests.get(p) or file_sha256(p)] for p in inputs]}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"{name}-{digest[:16]}"


def store_bundle(bundle: DatasetBundle, key: str, cache_dir: Path | None = None) -> Path:
    root = cache_root(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    target = root / key
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        rows = [(p.id, v.admission_id, list(v.diagnoses), list(v.procedures), list(v.drugs),
                 *(v.profile.get(f, "") for f in bundle.profile_fields))
                for p in bundle.patients for v in p.visits]
        schema = {"patient_id": pl.Int64, "admission_id": pl.Int64, "diagnoses": pl.List(pl.String),
                  "procedures": pl.List(pl.String), "drugs": pl.List(pl.String),
                  **{f"profile_{f}": pl.String for f in bundle.profile_fields}}
        pl.DataFrame(rows, schema=schema, orient="row").write_parquet(tmp / VISITS_FILE)
        rest = {"name": bundle.name, "hash": bundle.hash, "profile_fields": list(bundle.profile_fields),
                "vocabs": {k: list(v.tokens) for k, v in bundle.vocabs.items()},
                "titles": bundle.titles, "ddi_pairs": [list(p) for p in bundle.ddi_pairs],
                "smiles": {k: list(v) for k, v in bundle.smiles.items()}, "meta": bundle.meta}
        (tmp / BUNDLE_FILE).write_text(json.dumps(rest), encoding="utf-8")
        if target.exists() and cached_bundle(key, cache_dir) is not None:
            shutil.rmtree(tmp)  # another process prepared the same key meanwhile: identical content
        else:
            if target.is_dir():  # a broken entry (half-written, corrupted): replace it
                shutil.rmtree(target, ignore_errors=True)
            elif target.exists():
                target.unlink()
            try:
                os.replace(tmp, target)
            except OSError:  # another process put a (good) entry there meanwhile
                if cached_bundle(key, cache_dir) is None:
                    raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def cached_bundle(key: str, cache_dir: Path | None = None) -> DatasetBundle | None:
    """The stored bundle for `key`, or None when there is none (or it is unreadable)."""
    folder = cache_root(cache_dir) / key
    try:
        rest = json.loads((folder / BUNDLE_FILE).read_text(encoding="utf-8"))
        frame = pl.read_parquet(folder / VISITS_FILE)
        fields = rest["profile_fields"]
        patients = group_visits((row[0], Visit(row[1], tuple(row[2]), tuple(row[3]), tuple(row[4]),
                                               dict(zip(fields, row[5:])))) for row in frame.iter_rows())
        bundle = DatasetBundle(
            name=rest["name"], patients=tuple(patients), vocabs={k: Vocab(v) for k, v in rest["vocabs"].items()},
            titles=rest["titles"], ddi_pairs=tuple(tuple(p) for p in rest["ddi_pairs"]),
            smiles={k: tuple(v) for k, v in rest["smiles"].items()}, profile_fields=tuple(fields), meta=rest["meta"])
        return bundle if bundle.hash == rest["hash"] else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, pl.exceptions.PolarsError):
        return None  # unreadable or of another shape: prepared again (and the entry replaced)
