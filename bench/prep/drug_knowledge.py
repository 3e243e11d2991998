"""Drug-knowledge resources (NDC -> RXCUI -> ATC4 maps, ATC names, DDI pairs, SMILES), read from one
folder (its files: docs/datasets.md#drug-knowledge-resources). They never live in this repository:
`--resources DIR`, else the environment variable MEDREC_RESOURCES, else `<data home>/medkb`
(bench.prep.data_fetch.data_home) names the folder.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UserError

ENV_VAR = "MEDREC_RESOURCES"
NDC2RXCUI = "ndc2rxnorm_mapping.txt"
NDC2ATC4_ZIP = "ndc2atc_level4.zip"
NDC2ATC4_MEMBER = "ndc2atc_level4.csv"
ATC_NAMES = "atc_coding.csv.gz"
DDI_PAIRS = "ddi_pairs_atc3.csv"
SMILES = "atc3_smiles.json"
DRUG_ATC = "drug-atc.csv"
CHECKSUMS = "SHA256SUMS.txt"
REQUIRED = (NDC2RXCUI, NDC2ATC4_ZIP, ATC_NAMES, DDI_PAIRS, SMILES)


def default_resources() -> Path:
    """Where resources are read from when no folder is named: $MEDREC_RESOURCES, else `<data home>/medkb`
    (`bench resources fetch` downloads there by default)."""
    from bench.prep.data_fetch import MEDKB, data_home  # deferred: data_fetch reads the dataset cards

    env = os.environ.get(ENV_VAR)
    return Path(env) if env else data_home() / MEDKB


def locate_resources(option: Path | None) -> Path:
    """The folder named by `--resources`/DIR, else $MEDREC_RESOURCES, else `<data home>/medkb` when it
    exists; a clear error when none is a folder."""
    if option is None:
        option = default_resources()
        if not os.environ.get(ENV_VAR) and not option.is_dir():
            raise UserError(f"drug-knowledge resources needed: name the folder (--resources DIR) or set {ENV_VAR}, "
                            f"or fill {option} (a folder laid out like medkb: `bench resources fetch` downloads "
                            "what has a public source and says how to add the rest)")
    if not option.is_dir():
        what = "is a file, not a folder" if option.exists() else "no such folder"
        raise UserError(f"--resources {option}: {what} (expected a folder laid out like medkb)")
    return option


def resources_dir(option: Path | None) -> Path:
    """`locate_resources`, also checking that every required file is there."""
    option = locate_resources(option)
    missing = [name for name in REQUIRED if not (option / name).is_file()]
    if missing:
        raise UserError(f"--resources {option}: missing {', '.join(missing)} "
                        "(`bench resources verify` checks a folder)")
    return option


def read_ndc2rxcui(path: Path) -> dict[str, str]:
    """NDC11 -> RXCUI from GAMENet's dict-literal file, parsed with ast.literal_eval (never eval)."""
    try:
        mapping = ast.literal_eval(path.read_text(encoding="utf-8"))
    except (ValueError, SyntaxError, UnicodeDecodeError, RecursionError, MemoryError) as exc:
        raise UserError(f"{path}: expected a Python dict literal of NDC -> RXCUI strings ({exc.__class__.__name__})") from None
    if not isinstance(mapping, dict):
        raise UserError(f"{path}: expected a dict literal of NDC -> RXCUI strings")
    return {str(k): str(v) for k, v in mapping.items() if str(v)}


def read_rxcui2atc4(path: Path) -> dict[str, str]:
    """RXCUI -> ATC level-4 code (the file's `ATC5` column holds 5-character ATC4 codes); the FIRST
    row per RXCUI wins, as in the GAMENet/SafeDrug preprocessing."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(NDC2ATC4_MEMBER) as raw:
            reader = csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8"))
            missing = {"RXCUI", "ATC5"} - set(reader.fieldnames or ())
            if missing:
                raise UserError(f"{path}:{NDC2ATC4_MEMBER}: missing column(s) {', '.join(sorted(missing))}")
            mapping: dict[str, str] = {}
            for row in reader:
                rxcui, atc4 = row["RXCUI"].strip(), row["ATC5"].strip()
                if rxcui and len(atc4) >= 4 and rxcui not in mapping:
                    mapping[rxcui] = atc4
    except (zipfile.BadZipFile, KeyError) as exc:
        raise UserError(f"{path}: expected a zip holding {NDC2ATC4_MEMBER} ({exc})") from None
    return mapping


def read_atc_names(path: Path) -> dict[str, str]:
    """ATC code (any level) -> name, from `atc_code,atc_name` (gzip CSV)."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if not {"atc_code", "atc_name"} <= set(reader.fieldnames or ()):
                raise UserError(f"{path}: expected columns atc_code,atc_name")
            return {row["atc_code"].strip(): row["atc_name"].strip() for row in reader}
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable gzip CSV ({exc})") from None


def read_ddi_pairs(path: Path) -> tuple[tuple[str, str], ...]:
    """Unordered ATC3 pairs from `atc3_a,atc3_b`, deduplicated and sorted."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if not {"atc3_a", "atc3_b"} <= set(reader.fieldnames or ()):
                raise UserError(f"{path}: expected columns atc3_a,atc3_b")
            pairs = {tuple(sorted(((row["atc3_a"] or "").strip(), (row["atc3_b"] or "").strip()))) for row in reader}
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc})") from None
    return tuple(sorted(p for p in pairs if p[0] != p[1] and p[0] and p[1]))


def read_smiles(path: Path) -> dict[str, tuple[str, ...]]:
    """ATC3 -> SMILES strings, from a JSON object of lists. Keys that are not ATC3 codes (MoleRec's
    file carries `decoder_point` and `seperator` placeholders) and empty lists are dropped."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise UserError(f"{path}: expected a JSON object mapping ATC3 codes to lists of SMILES")
    return {str(k): tuple(str(s) for s in v) for k, v in raw.items() if is_atc3(str(k)) and v}


def is_atc3(code: str) -> bool:
    """`N02B`: a letter, two digits, a letter."""
    return len(code) == 4 and code[0].isalpha() and code[1:3].isdigit() and code[3].isalpha()


@dataclass(frozen=True)
class MedKB:
    """The loaded drug knowledge. ndc2rxcui: NDC11 -> RXCUI; rxcui2atc4: RXCUI -> ATC4;
    atc_names: ATC code -> name; ddi_pairs: ATC3 pairs; smiles: ATC3 -> SMILES; ddi_nodes: the ATC3 classes
    the DDI graph knows, with or without a pair, and ddi_nodes_source: how they were found (bench.prep.ddi_nodes)."""

    folder: Path
    ndc2rxcui: dict[str, str]
    rxcui2atc4: dict[str, str]
    atc_names: dict[str, str]
    ddi_pairs: tuple[tuple[str, str], ...]
    smiles: dict[str, tuple[str, ...]]
    ddi_nodes: frozenset[str] = frozenset()
    ddi_nodes_source: str = "edges"

    def ndc_to_atc3(self) -> dict[str, str]:
        """NDC11 -> ATC3 (first 4 characters of the RXCUI's ATC4), for the NDCs that map."""
        out = {}
        for ndc, rxcui in self.ndc2rxcui.items():
            atc4 = self.rxcui2atc4.get(rxcui)
            if atc4:
                out[ndc] = atc4[:4]
        return out


def load_medkb(folder: Path) -> MedKB:
    from bench.io import file_sha256
    from bench.prep.ddi_nodes import graph_nodes   # deferred: it imports this module

    pairs = read_ddi_pairs(folder / DDI_PAIRS)
    nodes, source = graph_nodes(folder, pairs, file_sha256(folder / DDI_PAIRS))
    return MedKB(folder=folder, ndc2rxcui=read_ndc2rxcui(folder / NDC2RXCUI),
                 rxcui2atc4=read_rxcui2atc4(folder / NDC2ATC4_ZIP), atc_names=read_atc_names(folder / ATC_NAMES),
                 ddi_pairs=pairs, smiles=read_smiles(folder / SMILES), ddi_nodes=nodes, ddi_nodes_source=source)
