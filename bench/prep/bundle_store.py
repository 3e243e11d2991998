"""The prepared-bundle cache: Parquet (visits) + JSON (vocabularies, titles, DDI pairs and nodes, SMILES, meta).

A bundle lives in `<cache>/<key>/`, where the key hashes the dataset name, every preprocessing
parameter and the sha256 of every input file, so a changed parameter or input never reuses a stale
bundle. Folders are written under a temporary name and renamed into place (atomic); temporaries that a
killed process left are removed by the next read or write of the cache (see bench.tempfiles).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import polars as pl

from bench.data import DatasetBundle, Visit, Vocab, group_visits
from bench.tempfiles import make_temp_dir, remove_stale

ENV_VAR = "MEDREC_CACHE"
STORE_VERSION = 1
VISITS_FILE = "visits.parquet"
BUNDLE_FILE = "bundle.json"


def cache_root(cache_dir: Path | None = None) -> Path:
    """`cache_dir`, else $MEDREC_CACHE, else ~/.cache/medrec-bench."""
    if cache_dir is not None:
        return cache_dir
    return Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "medrec-bench")


def cache_key(name: str, params: dict[str, Any], inputs: list[Path], digests: dict[Path, str]) -> str:
    """`<name>-<16 hex>` over the name, parameters and the inputs' names and checksums (`digests`: the
    sha256 of every input, by path)."""
    payload = {"store": STORE_VERSION, "name": name, "params": params,
               "inputs": [[p.name, digests[p]] for p in inputs]}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    return f"{name}-{digest[:16]}"


# `.<key>.<random>`: a temporary folder of a version that did not name its writer
_LEGACY_TEMP = re.compile(r"\..+-[0-9a-f]{16}\.[a-z0-9_]{8}")
LEGACY_STALE_AFTER = 24 * 3600.0


def clear_stale(root: Path) -> list[Path]:
    """Remove the temporary folders that killed writers left in the cache (see bench.tempfiles), and
    unnamed ones of older versions once they are a day old; returns what was removed."""
    removed = remove_stale(root)
    try:
        legacy = [p for p in root.iterdir() if _LEGACY_TEMP.fullmatch(p.name) and p.is_dir()
                  and time.time() - p.stat().st_mtime > LEGACY_STALE_AFTER]
    except OSError:
        return removed
    for path in legacy:
        shutil.rmtree(path, ignore_errors=True)
    return removed + legacy


def store_bundle(bundle: DatasetBundle, key: str, cache_dir: Path | None = None) -> Path:
    """Write `bundle` under `key` (a temporary folder renamed into place)."""
    root = cache_root(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    clear_stale(root)
    target = root / key
    tmp = make_temp_dir(root, key)
    try:
        rows = [(p.id, v.admission_id, list(v.diagnoses), list(v.procedures), list(v.drugs), sorted(v.tags),
                 *(v.profile.get(f, "") for f in bundle.profile_fields))
                for p in bundle.patients for v in p.visits]
        schema = {"patient_id": pl.Int64, "admission_id": pl.Int64, "diagnoses": pl.List(pl.String),
                  "procedures": pl.List(pl.String), "drugs": pl.List(pl.String), "tags": pl.List(pl.String),
                  **{f"profile_{f}": pl.String for f in bundle.profile_fields}}
        pl.DataFrame(rows, schema=schema, orient="row").write_parquet(tmp / VISITS_FILE)
        rest = {"name": bundle.name, "hash": bundle.hash, "profile_fields": list(bundle.profile_fields),
                "vocabs": {k: list(v.tokens) for k, v in bundle.vocabs.items()},
                "titles": bundle.titles, "ddi_pairs": [list(p) for p in bundle.ddi_pairs],
                "smiles": {k: list(v) for k, v in bundle.smiles.items()}, "meta": bundle.meta,
                "ddi_nodes": None if bundle.ddi_nodes is None else sorted(bundle.ddi_nodes)}
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
    clear_stale(folder.parent)
    try:
        rest = json.loads((folder / BUNDLE_FILE).read_text(encoding="utf-8"))
        frame = pl.read_parquet(folder / VISITS_FILE)
        fields = rest["profile_fields"]
        patients = group_visits((row[0], Visit(row[1], tuple(row[2]), tuple(row[3]), tuple(row[4]),
                                               dict(zip(fields, row[6:])), frozenset(row[5])))
                                for row in frame.iter_rows())
        bundle = DatasetBundle(
            name=rest["name"], patients=tuple(patients), vocabs={k: Vocab(v) for k, v in rest["vocabs"].items()},
            titles=rest["titles"], ddi_pairs=tuple(tuple(p) for p in rest["ddi_pairs"]),
            smiles={k: tuple(v) for k, v in rest["smiles"].items()}, profile_fields=tuple(fields), meta=rest["meta"],
            ddi_nodes=None if rest["ddi_nodes"] is None else frozenset(rest["ddi_nodes"]))
        return bundle if bundle.hash == rest["hash"] else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, pl.exceptions.PolarsError):
        return None  # unreadable or of another shape: prepared again (and the entry replaced)
