"""Drug-knowledge resource files: pinned checksums and sources, `verify` (presence, checksum, format),
`fetch` (download from pinned repository commits through an injectable transport) and `build_ddi`
(rebuild the ATC3 DDI pairs from raw TWOSIDES). The readers themselves live in `bench.prep.drug_knowledge`.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from bench.prep import drug_knowledge
from bench.errors import UserError
from bench.prep.downloads import DownloadError, Transport, download_verified, one_line
from bench.io import atomic_write_text, file_sha256

ATC3 = re.compile(r"[A-Z]\d\d[A-Z]")
ATC_CODE = re.compile(r"[A-Z]\d\d[A-Z](?:[A-Z](?:\d\d)?)?")  # ATC level 3, 4 or 5
CID = re.compile(r"CID\d+")
GAMENET = ("sjy1203/GAMENet", "da695b4fc9390882f3a681c82115e81291ae6380")
CARMEN = ("bit1029public/Carmen", "52965cf618a83cd6e4c6463071e7e2f0db4f9757")
ETHOS = ("ipolharvard/ethos-paper", "f14ccc4253248b9f4bfdaa620da97afa0086abd3")
OK, DIFFERS, MISSING, BAD = "ok", "checksum differs", "missing", "bad format"


@dataclass(frozen=True)
class Source:
    """A file in a public GitHub repository at a pinned commit."""

    repo: str
    commit: str
    path: str

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"


@dataclass(frozen=True)
class Resource:
    """One known file: pinned sha256, whether `resources_dir` needs it, where to download it (None: no
    raw public source, `manual` says what to do) and `check`, which parses it and returns a detail."""

    name: str
    sha256: str
    required: bool
    check: Callable[[Path], str]
    source: Source | None = None
    manual: str = ""


def read_drug_atc(path: Path) -> dict[str, frozenset[str]]:
    """STITCH CID -> ATC codes from GAMENet's drug-atc.csv (no header; rows `CID000002173,N02BE01,...`)."""
    mapping: dict[str, set[str]] = {}
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for line_no, row in enumerate(csv.reader(handle), start=1):
                fields = [field.strip() for field in row if field.strip()]
                if not fields:
                    continue
                if not CID.fullmatch(fields[0]) or len(fields) < 2 or not all(ATC_CODE.fullmatch(c) for c in fields[1:]):
                    raise UserError(f"{path}, line {line_no}: expected a STITCH id then ATC codes "
                                    f"(e.g. CID000002173,N02BE01), got {','.join(row)[:60]!r}")
                mapping.setdefault(fields[0], set()).update(fields[1:])
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: not a readable CSV ({exc})") from None
    if not mapping:
        raise UserError(f"{path}: no rows (expected CID...,ATC5,... lines)")
    return {cid: frozenset(codes) for cid, codes in mapping.items()}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def _check_ndc2rxcui(path: Path) -> str:
    mapping = drug_knowledge.read_ndc2rxcui(path)
    _require(bool(mapping), f"{path}: no NDC -> RXCUI entries")
    return f"{len(mapping):,} NDCs"


def _check_rxcui2atc4(path: Path) -> str:
    mapping = drug_knowledge.read_rxcui2atc4(path)
    _require(bool(mapping), f"{path}: no RXCUI -> ATC4 rows")
    return f"{len(mapping):,} RXCUIs with an ATC4"


def _check_atc_names(path: Path) -> str:
    names = drug_knowledge.read_atc_names(path)
    level3 = sum(1 for code in names if ATC3.fullmatch(code))
    _require(level3 > 0, f"{path}: no ATC level-3 codes (such as N02B) in column atc_code")
    return f"{len(names):,} ATC codes, {level3} ATC3"


def _check_ddi_pairs(path: Path) -> str:
    pairs = drug_knowledge.read_ddi_pairs(path)
    _require(bool(pairs), f"{path}: no pairs under the atc3_a,atc3_b header")
    bad = next((code for pair in pairs for code in pair if not ATC3.fullmatch(code)), None)
    _require(bad is None, f"{path}: expected ATC3 codes such as N02B in atc3_a,atc3_b, got {bad!r}")
    return f"{len(pairs):,} pairs"


def _check_smiles(path: Path) -> str:
    smiles = drug_knowledge.read_smiles(path)
    coded = {code: found for code, found in smiles.items() if ATC3.fullmatch(code) and found}
    _require(bool(coded), f"{path}: no ATC3 code (such as N02B) with a list of SMILES")
    other = len(smiles) - len(coded)
    extra = f"; {other} other key(s)" if other else ""
    return f"{len(coded)} ATC3 with SMILES ({sum(map(len, coded.values())):,} SMILES{extra})"


def _check_drug_atc(path: Path) -> str:
    mapping = read_drug_atc(path)
    return f"{len(mapping):,} CIDs, {sum(map(len, mapping.values())):,} ATC codes"


_DDI_MANUAL = ("no raw public source: rebuild it from raw TWOSIDES (drug-DDI.csv, SNAP Decagon) with "
               "`bench resources build-ddi --twosides drug-DDI.csv --drug-atc {dir}/drug-atc.csv "
               "--out {dir}/ddi_pairs_atc3.csv`, or copy a trusted medkb folder's file (the pinned one is "
               "derived from GAMENet's data/ddi_A_final.pkl)")
_SMILES_MANUAL = ("no raw public source: it is a JSON rendering of MoleRec's data/idx2SMILES.pkl "
                  "(yangnianzu0515/MoleRec @ dd5afaf), a dill pickle that runs code when loaded: never load "
                  "it; copy atc3_smiles.json from a trusted medkb folder")

RESOURCES: tuple[Resource, ...] = (
    Resource(drug_knowledge.NDC2RXCUI, "31b78823f61d23e8f563eeff353fc2d589cfff6808a831178a3736bbac225278", True,
             _check_ndc2rxcui, Source(*GAMENET, "data/ndc2rxnorm_mapping.txt")),
    Resource(drug_knowledge.NDC2ATC4_ZIP, "f6c59ad19afc7da4b0afeb3ab8272892e07c0da871408e04599b27c396e6577a", True,
             _check_rxcui2atc4, Source(*CARMEN, "data/ndc2atc_level4.zip")),
    Resource(drug_knowledge.ATC_NAMES, "736f70eb271bd2b5989c903b7c736fb4c55d798e75fc86b70ebe500dee816fc1", True,
             _check_atc_names, Source(*ETHOS, "ethos/data/atc_coding.csv.gz")),
    Resource(drug_knowledge.DDI_PAIRS, "0783a9054534cdba786e2bfef63393e18b16236840fccb5fd8076086b90a616c", True,
             _check_ddi_pairs, manual=_DDI_MANUAL),
    Resource(drug_knowledge.SMILES, "2405c27ca462f541809d61dbc066f72b0c590bfc924a74114386ffa451ceb537", True,
             _check_smiles, manual=_SMILES_MANUAL),
    Resource(drug_knowledge.DRUG_ATC, "b4d770a02d293f0726cc7dcbcd49e4a8a6b706d00f4a1d37498386eda76b7d9e", False,
             _check_drug_atc, Source(*GAMENET, "data/drug-atc.csv")),
)


@dataclass(frozen=True)
class Finding:
    """The verdict on one file: status is ok, checksum differs, missing or bad format."""

    name: str
    status: str
    detail: str
    required: bool

    @property
    def fatal(self) -> bool:
        return self.status == BAD or (self.status == MISSING and self.required)


def verify_file(folder: Path, resource: Resource) -> Finding:
    """Presence, then format (parsed with the bench.prep.drug_knowledge readers), then checksum against the
    pinned version."""
    path = folder / resource.name
    if not path.is_file():
        why = "required" if resource.required else "optional: only `bench resources build-ddi` uses it"
        return Finding(resource.name, MISSING, why, resource.required)
    try:
        detail = resource.check(path)
    except (UserError, OSError, EOFError, ValueError, RecursionError, csv.Error) as exc:
        message = one_line(exc)
        return Finding(resource.name, BAD, message if str(path) in message else f"{path}: {message}", resource.required)
    got = file_sha256(path)
    if got != resource.sha256:
        return Finding(resource.name, DIFFERS, f"{detail}; differs from the pinned version (sha256 {got[:12]}...)",
                       resource.required)
    return Finding(resource.name, OK, detail, resource.required)


def verify_folder(folder: Path) -> list[Finding]:
    """One finding per known resource file in `folder`."""
    return [verify_file(folder, resource) for resource in RESOURCES]


def failure_summary(folder: Path, findings: list[Finding]) -> str | None:
    """One line naming every fatal finding, or None when the folder is usable."""
    fatal = [f"{f.name} {f.status}" + (f" ({f.detail})" if f.status == BAD else "") for f in findings if f.fatal]
    return f"resources in {folder}: " + "; ".join(fatal) if fatal else None


def differs_summary(folder: Path, findings: list[Finding]) -> str | None:
    """One line naming every file whose checksum differs from the pinned version, or None."""
    names = [f.name for f in findings if f.status == DIFFERS]
    if not names:
        return None
    return f"resources in {folder}: {', '.join(names)} differ{'s' if len(names) == 1 else ''} from the pinned version"


ALLOW_MODIFIED = "--allow-modified-resources"
def _finding_for_use(folder: Path, resource: Resource, sha256: str | None) -> Finding:
    """verify_file, without parsing a file whose sha256 is the pinned one (a pinned file parses)."""
    if sha256 is None and (folder / resource.name).is_file():
        sha256 = file_sha256(folder / resource.name)
    if sha256 == resource.sha256:
        return Finding(resource.name, OK, "pinned", resource.required)
    return verify_file(folder, resource)


def check_for_use(folder: Path, allow_modified: bool = False,
                  sha256: Mapping[str, str] | None = None) -> dict[str, object]:
    """Verify the files preparation reads before they are used: a fatal finding is a UserError, and so
    is a checksum that differs from the pinned version unless `allow_modified`. `sha256`: the folder's
    digests by file name, when the caller has them. Returns what run.json records: {"folder"
    (resolved), "modified": [file names], "allowed": allow_modified, "sha256": every file's digest}."""
    digests = dict(sha256) if sha256 is not None else {
        path.name: file_sha256(path) for path in sorted(folder.iterdir()) if path.is_file()}
    findings = [_finding_for_use(folder, r, digests.get(r.name)) for r in RESOURCES if r.required]
    problem = failure_summary(folder, findings)
    if problem:
        raise UserError(problem)
    modified = [f.name for f in findings if f.status == DIFFERS]
    if modified and not allow_modified:
        raise UserError(f"{differs_summary(folder, findings)}; restore the pinned "
                        f"file{'s' if len(modified) > 1 else ''} or pass {ALLOW_MODIFIED} to use "
                        f"{'them' if len(modified) > 1 else 'it'} anyway")
    return {"folder": str(folder.resolve()), "modified": modified, "allowed": allow_modified, "sha256": digests}


@dataclass(frozen=True)
class FetchResult:
    name: str
    action: str  # downloaded | skipped | kept | present | manual
    detail: str


def fetch_file(folder: Path, resource: Resource, transport: Transport, force: bool) -> FetchResult:
    """Download one file from its pinned source into `folder`, checking sha256 before it replaces anything."""
    target = folder / resource.name
    if resource.source is None:
        if target.is_file():
            return FetchResult(resource.name, "present", "no raw public source; `bench resources verify` checks it")
        return FetchResult(resource.name, "manual", resource.manual.format(dir=folder))
    if target.is_file() and not force:
        if file_sha256(target) == resource.sha256:
            return FetchResult(resource.name, "skipped", "already present with the pinned checksum")
        return FetchResult(resource.name, "kept", "present but differs from the pinned version; --force replaces it")
    url = resource.source.url
    try:
        size = download_verified(url, target, resource.sha256, transport)
    except DownloadError as exc:
        raise UserError(f"{exc}; check the network, or download the file by hand") from None
    return FetchResult(resource.name, "downloaded",
                       f"{size:,} bytes from {resource.source.repo} @ {resource.source.commit[:7]}")


def fetch_all(folder: Path, transport: Transport, force: bool = False) -> list[FetchResult]:
    """fetch_file for every known resource, in order; stops at the first failure."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--to {folder}: not a folder")
    return [fetch_file(folder, resource, transport, force) for resource in RESOURCES]


class Keep(str, Enum):
    """Which side-effect types build_ddi keeps, by their TWOSIDES row counts."""

    RAREST = "rarest"
    MOST_FREQUENT = "most-frequent"


TWOSIDES_HEADER = ("STITCH 1", "STITCH 2", "Polypharmacy Side Effect", "Side Effect Name")
_USED = TWOSIDES_HEADER[:3]


def _twosides_rows(path: Path) -> Iterator[tuple[str, str, str]]:
    """Stream (STITCH 1, STITCH 2, side-effect id) from a TWOSIDES drug-DDI.csv."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            missing = [name for name in _USED if name not in header]
            if missing:
                raise UserError(f"{path}: missing column {missing[0]!r} (expected columns {','.join(TWOSIDES_HEADER)})")
            where = [header.index(name) for name in _USED]
            for row in reader:
                if not row:
                    continue
                if len(row) <= max(where):
                    raise UserError(f"{path}, line {reader.line_num}: expected {len(header)} fields, got {len(row)}")
                yield row[where[0]].strip(), row[where[1]].strip(), row[where[2]].strip()
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: not a readable CSV ({one_line(exc)})") from None


def kept_side_effects(counts: Mapping[str, int], keep: Keep, top: int) -> list[str]:
    """The `top` rarest or most frequent side-effect ids; ties broken by id (ascending), deterministically."""
    sign = 1 if keep is Keep.RAREST else -1
    return sorted(counts, key=lambda effect: (sign * counts[effect], effect))[:top]


@dataclass(frozen=True)
class DdiBuild:
    """pairs: the unordered ATC3 pairs; nodes: the ATC3 classes of every compound in the TWOSIDES table
    (any side-effect type), the classes the graph knows with or without a pair (bench.prep.ddi_nodes)."""

    pairs: tuple[tuple[str, str], ...]
    side_effect_types: int
    kept_types: tuple[str, ...]
    rows_kept: int
    nodes: frozenset[str] = frozenset()


def build_ddi(twosides: Path, drug_atc: Path, keep: Keep = Keep.RAREST, top: int = 40) -> DdiBuild:
    """Rebuild the unordered ATC3 DDI pairs from raw TWOSIDES and drug-atc.csv.

    Side-effect types (`Polypharmacy Side Effect`) are ranked by their number of TWOSIDES rows;
    `keep=rarest, top=40` reproduces GAMENet (its code meant to keep the 40 most severe types, but it
    sorted by frequency and took the 40 LEAST frequent: GAMENet issue #18), `most-frequent` keeps the
    `top` most frequent. Ties at the cut are broken by side-effect id (GAMENet's pandas sort leaves
    them unspecified). Rows of the kept types map both drugs to their ATC3 classes (first 4 characters
    of every ATC code of the CID in drug-atc.csv, all combinations); the result is the sorted,
    deduplicated unordered pairs without self pairs. Unlike GAMENet, pairs are not restricted to a
    dataset's drug vocabulary. The graph's nodes are the ATC3 classes of every compound of the table,
    whatever its side effects (a class without a kept pair is known not to interact). Two streaming passes (count, then filter), so the 232 MB file is never
    held in memory. Tested only on a small fixture: the raw TWOSIDES file is not available here.
    """
    cid2atc3 = {cid: frozenset(code[:4] for code in codes) for cid, codes in read_drug_atc(drug_atc).items()}
    counts: Counter[str] = Counter()
    compounds: set[str] = set()
    for a, b, effect in _twosides_rows(twosides):
        counts[effect] += 1
        compounds.update((a, b))
    if not counts:
        raise UserError(f"{twosides}: no rows under the header {','.join(TWOSIDES_HEADER)}")
    kept = kept_side_effects(counts, keep, top)
    wanted, pairs, rows_kept = set(kept), set(), 0
    for a, b, effect in _twosides_rows(twosides):
        if effect in wanted:
            rows_kept += 1
            pairs.update(tuple(sorted((x, y))) for x in cid2atc3.get(a, ()) for y in cid2atc3.get(b, ()) if x != y)
    nodes = frozenset(code for cid in compounds for code in cid2atc3.get(cid, ()))
    return DdiBuild(tuple(sorted(pairs)), len(counts), tuple(kept), rows_kept, nodes)


def write_ddi_pairs(out: Path, pairs: tuple[tuple[str, str], ...]) -> None:
    """Write `atc3_a,atc3_b` rows atomically (the format drug_knowledge.read_ddi_pairs reads)."""
    atomic_write_text(out, "atc3_a,atc3_b\n" + "".join(f"{a},{b}\n" for a, b in pairs))
