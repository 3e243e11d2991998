"""The drug catalogue: real NDCs from the resources' NDC -> RXCUI map (drug names from ATC when the resources
have them), unmappable, "0" and empty NDCs, each with a dosage form, strength and route."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from bench.prep import drug_knowledge
from bench.errors import UserError
from bench.prep.raw_tables.codes import ZIPF, _zipf_cdf
from bench.prep.raw_tables.rates import NDC_ROW_SHARES

# A few common hospital drugs: names for the unmappable, "0" and empty NDCs, and for mappable NDCs when
# the resources lack RXCUI -> ATC names.
GENERIC_DRUGS = (
    "Sodium Chloride 0.9%  Flush", "Heparin Flush (10 units/ml)", "Potassium Chloride", "Magnesium Sulfate",
    "Dextrose 50%", "Insulin", "Iso-Osmotic Dextrose", "D5W", "NS", "Lactated Ringers", "Sodium Chloride 0.9%",
    "Acetaminophen", "Docusate Sodium", "Senna", "Bisacodyl", "Ondansetron", "Famotidine", "Pantoprazole",
    "Metoprolol Tartrate", "Furosemide", "Heparin", "Enoxaparin Sodium", "Aspirin", "Atorvastatin", "Simvastatin",
    "Lisinopril", "Amlodipine", "Vancomycin", "Piperacillin-Tazobactam", "CeftriaXONE", "Morphine Sulfate",
    "HYDROmorphone (Dilaudid)", "OxycoDONE (Immediate Release)", "Lorazepam", "Haloperidol",
    "Albuterol 0.083% Neb Soln", "Ipratropium Bromide Neb", "Polyethylene Glycol", "Calcium Gluconate",
    "Sodium Bicarbonate", "Warfarin", "Levothyroxine Sodium", "PredniSONE", "Gabapentin", "Tamsulosin",
    "Sertraline", "QUEtiapine Fumarate", "Nicotine Patch", "Multivitamins", "Thiamine", "FoLIC Acid",
    "Glucagon", "Glargine", "Propofol", "Fentanyl Citrate", "Norepinephrine", "Phenylephrine", "Midazolam",
    "Zolpidem Tartrate", "Lidocaine 5% Patch", "Bag", "Influenza Vaccine",
)

# (prod_strength template, form_rx, dose_unit_rx, form_unit_disp, route, drug_type, weight)
DOSAGE_FORMS = (
    ("{s}mg Tablet", "TABLET", "mg", "TAB", "PO", "MAIN", 30),
    ("{s} mg Tab", "TABLET", "mg", "TAB", "PO/NG", "MAIN", 8),
    ("{s}mg Capsule", "CAPSULE", "mg", "CAP", "PO", "MAIN", 8),
    ("{s}mg Vial", None, "mg", "VIAL", "IV", "MAIN", 12),
    ("{s}mg/{v}mL Syringe", None, "mg", "SYR", "IV", "MAIN", 6),
    ("{s} Units / mL- 1mL Vial", None, "UNIT", "mL", "SC", "MAIN", 5),
    ("{s}mg/5mL Oral Solution", "SOLUTION", "mg", "mL", "PO/NG", "MAIN", 5),
    ("{s}mg UD Cup", None, "mg", "UDCUP", "PO", "MAIN", 3),
    ("{v}mL Bag", None, "mL", "BAG", "IV", "BASE", 10),
    ("{s}mEq Premix Bag", None, "mEq", "BAG", "IV DRIP", "ADDITIVE", 3),
    ("{s}mg/{v}mL Neb", "NEB", "mg", "NEB", "IH", "MAIN", 4),
    ("{s}mg Suppository", "SUPP", "mg", "SUPP", "PR", "MAIN", 2),
    ("{s}mg Patch", "PATCH", "mg", "PTCH", "TP", "MAIN", 2),
    ("{s}mg/mL Ampule", None, "mg", "AMP", "IM", "MAIN", 2),
)
STRENGTHS = (0.5, 1, 2, 2.5, 5, 10, 12.5, 20, 25, 40, 50, 81, 100, 125, 200, 250, 325, 400, 500, 650, 1000)
VOLUMES = (1, 2, 5, 10, 50, 100, 250, 500, 1000)


def ndc_map_path(option: Path | None) -> Path:
    """The NDC -> RXCUI map in the resources folder (`--resources DIR`, else $MEDREC_RESOURCES): only that file
    is needed."""
    folder = drug_knowledge.locate_resources(option)
    path = folder / drug_knowledge.NDC2RXCUI
    if not path.is_file():
        raise UserError(f"--resources {folder}: no {drug_knowledge.NDC2RXCUI} there")
    return path


@lru_cache(maxsize=4)
def _read_ndc_map(path: str, mtime: float) -> dict[str, str]:
    return drug_knowledge.read_ndc2rxcui(Path(path))


def _atc_drug_names(folder: Path, rxcuis: Sequence[str]) -> list[str | None]:
    """A plausible drug name per RXCUI: an ATC substance of its ATC4 class (or the class name) when the
    resources hold the RXCUI -> ATC4 map and the ATC names; None where unknown."""
    zip_path, names_path = folder / drug_knowledge.NDC2ATC4_ZIP, folder / drug_knowledge.ATC_NAMES
    if not (zip_path.is_file() and names_path.is_file()):
        return [None] * len(rxcuis)
    try:  # RXCUI -> ATC4, first row per RXCUI (as bench.prep.drug_knowledge.read_rxcui2atc4, with polars: 20x faster)
        with zipfile.ZipFile(zip_path) as archive:
            raw = archive.read(drug_knowledge.NDC2ATC4_MEMBER)
        frame = (pl.read_csv(raw, columns=["RXCUI", "ATC5"], infer_schema=False)
                 .select(pl.col("RXCUI").str.strip_chars(), pl.col("ATC5").str.strip_chars())
                 .filter((pl.col("RXCUI").str.len_chars() > 0) & (pl.col("ATC5").str.len_chars() >= 4))
                 .unique("RXCUI", keep="first", maintain_order=True))
        rx2atc4 = dict(zip(frame["RXCUI"].to_list(), frame["ATC5"].to_list(), strict=True))
        atc_names = drug_knowledge.read_atc_names(names_path)
    except (UserError, KeyError, OSError, zipfile.BadZipFile, pl.exceptions.PolarsError):
        return [None] * len(rxcuis)
    substances: dict[str, list[str]] = {}
    for code in sorted(atc_names):
        if len(code) == 7:
            substances.setdefault(code[:5], []).append(atc_names[code])
    out: list[str | None] = []
    for rxcui in rxcuis:
        atc4 = rx2atc4.get(rxcui)
        options = substances.get(atc4 or "", [])
        if options:
            name = options[int(rxcui) % len(options) if rxcui.isdigit() else 0]
        else:
            name = atc_names.get(atc4 or "")
        out.append(name[:1].upper() + name[1:] if name else None)
    return out


def _ndc_strings(rng: np.random.Generator, n: int, exclude: set[str]) -> list[str]:
    """`n` distinct random 11-digit NDCs (labeler 5 + product 4 + package 2), most starting with 0."""
    out: list[str] = []
    seen = set(exclude)
    while len(out) < n:
        m = 2 * (n - len(out)) + 16
        labeler = np.where(rng.random(m) < 0.6, rng.integers(0, 1000, m), rng.integers(10_000, 100_000, m))
        product, package = rng.integers(0, 10_000, m), rng.integers(1, 100, m)
        for lab, prod, pack in zip(labeler.tolist(), product.tolist(), package.tolist(), strict=True):
            ndc = f"{lab:05d}{prod:04d}{pack:02d}"
            if ndc not in seen and len(out) < n:
                seen.add(ndc)
                out.append(ndc)
    return out


@dataclass(frozen=True)
class _Catalogue:
    """Drug entries (one row each) and, per NDC class, the entry indices in popularity order."""

    entries: pl.DataFrame
    classes: tuple[np.ndarray, ...]  # mappable, unmappable, "0", empty
    class_cdfs: tuple[np.ndarray, ...]
    class_shares: np.ndarray


def _fmt_number(x: float) -> str:
    return f"{x:g}"


def _catalogue(ndc_map: dict[str, str], folder: Path, rng: np.random.Generator) -> _Catalogue:
    """The drug catalogue: every mappable NDC of the map, plus unmappable, "0" and empty-NDC entries."""
    mappable = sorted(k for k in ndc_map if len(k) == 11 and k.isdigit())  # the map also holds a stray 'idx'
    n_unmappable, n_zero, n_empty = max(600, len(mappable) // 2), 150, 100
    unmappable = _ndc_strings(rng, n_unmappable, set(mappable))
    ndcs: list[str | None] = [*mappable, *unmappable, *(["0"] * n_zero), *([None] * n_empty)]
    atc_names = _atc_drug_names(folder, [ndc_map[n] for n in mappable])
    n = len(ndcs)
    generic = rng.integers(0, len(GENERIC_DRUGS), n).tolist()
    names = [atc_names[i] if i < len(mappable) and atc_names[i] else GENERIC_DRUGS[generic[i]] for i in range(n)]
    form_w = np.array([f[-1] for f in DOSAGE_FORMS], dtype=np.float64)
    bag_w = np.array([w * (6 if f[5] != "MAIN" or "Syringe" in f[0] else 1) for f, w in zip(DOSAGE_FORMS, form_w,
                                                                                             strict=True)])
    forms = np.where(np.arange(n) < len(mappable) + n_unmappable,
                     rng.choice(len(DOSAGE_FORMS), n, p=form_w / form_w.sum()),
                     rng.choice(len(DOSAGE_FORMS), n, p=bag_w / bag_w.sum())).tolist()
    strengths = rng.choice(STRENGTHS, n).tolist()
    volumes = rng.choice(VOLUMES, n).tolist()
    multiples = rng.choice([1, 1, 1, 2, 0.5], n).tolist()
    per_day = rng.choice([1.0, 2.0, 3.0, 4.0, 6.0, 0.0], n, p=[0.35, 0.25, 0.15, 0.1, 0.05, 0.1]).tolist()
    gsn = rng.integers(1, 80_000, n).tolist()
    gsn_null = (rng.random(n) < 0.08).tolist()
    poe_generic = (rng.random(n) < 0.9).tolist()
    rows: dict[str, list] = {k: [] for k in ("drug", "drug_name_generic", "formulary_drug_cd", "gsn", "prod_strength",
                                             "form_rx", "dose_val_rx", "dose_unit_rx", "form_val_disp",
                                             "form_unit_disp", "doses_per_24_hrs", "route", "drug_type")}
    for i in range(n):
        template, form_rx, dose_unit, form_unit, route, drug_type, _ = DOSAGE_FORMS[forms[i]]
        s, v, mult = strengths[i], volumes[i], multiples[i]
        name = names[i]
        letters = "".join(ch for ch in name.upper() if ch.isalpha())[:4] or "DRUG"
        rows["drug"].append(name)
        rows["drug_name_generic"].append(name if poe_generic[i] else None)
        rows["formulary_drug_cd"].append(f"{letters}{_fmt_number(s)}{'I' if route.startswith('IV') else ''}")
        rows["gsn"].append(None if gsn_null[i] else f"{gsn[i]:06d}")
        rows["prod_strength"].append(template.format(s=_fmt_number(s), v=v))
        rows["form_rx"].append(form_rx)
        dose = v if dose_unit == "mL" else s * mult
        rows["dose_val_rx"].append(_fmt_number(dose))
        rows["dose_unit_rx"].append(dose_unit)
        rows["form_val_disp"].append(_fmt_number(1 if dose_unit == "mL" else mult))
        rows["form_unit_disp"].append(form_unit)
        rows["doses_per_24_hrs"].append(per_day[i] or None)
        rows["route"].append(route)
        rows["drug_type"].append(drug_type)
    entries = pl.DataFrame({"ndc": pl.Series(ndcs, dtype=pl.String), **rows},
                           schema_overrides={"doses_per_24_hrs": pl.Float64})
    bounds = np.cumsum([0, len(mappable), n_unmappable, n_zero, n_empty])
    classes = [rng.permutation(np.arange(bounds[i], bounds[i + 1])) for i in range(4)]
    # the common drugs are the ones with an ATC class: mappable NDCs whose RXCUI reaches an ATC4 rank first,
    # so ~3/4 of the rows with an NDC map through to ATC3, as in the MIMIC-III demo
    with_atc = np.array([atc_names[i] is not None for i in classes[0]], dtype=bool)
    classes[0] = np.concatenate([classes[0][with_atc], classes[0][~with_atc]])
    cdfs = tuple(_zipf_cdf(len(c), *ZIPF["rx"]) for c in classes)
    return _Catalogue(entries, tuple(classes), cdfs, np.asarray(NDC_ROW_SHARES, dtype=np.float64))
