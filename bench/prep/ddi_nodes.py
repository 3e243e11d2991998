"""The node set of the DDI graph: the ATC3 classes the graph knows, with or without an interaction.

A DDI rate counts interacting pairs among ALL predicted pairs, but the graph can only judge a pair whose
two classes it knows; a class outside it never has an edge, so a dataset with many such classes (MIMIC-IV)
gets an undercounted DDI rate. `ddi_coverage` (bench.metric_registry) reports the share of pairs judged.

The pairs file (`ddi_pairs_atc3.csv`) lists edges only, so the node set comes from, in this order:
1. `ddi_nodes_atc3.csv` beside it (one column `atc3`; `bench resources build-ddi` writes it);
2. for the pinned pairs file (its sha256): `PINNED_GRAPH_NODES`, the classes of GAMENet's DDI matrix;
3. otherwise the classes with at least one pair: a lower bound (coverage then reads lower than it is).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Literal

from bench.errors import UserError
from bench.io import atomic_write_text
from bench.prep.drug_knowledge import DDI_PAIRS

NODES_FILE = "ddi_nodes_atc3.csv"
Source = Literal["file", "pinned", "edges"]   # where a node set came from (recorded in the bundle's meta)

# The 151 ATC3 classes (rows and columns, less two decoder tokens) of GAMENet's data/ddi_A_final.pkl:
# the medication vocabulary of its data/voc_final.pkl (sjy1203/GAMENet @ da695b4, MIT), which is the
# MIMIC-III drug vocabulary GAMENet built the matrix over. 95 of them have a pair in the pinned
# ddi_pairs_atc3.csv (its 467 pairs are exactly the matrix's); the other 56 are known, without interaction.
PINNED_GRAPH_NODES: frozenset[str] = frozenset("""
A01A A02A A02B A03A A03B A03F A04A A05A A06A A07A A07B A07D A07E A09A A10A A10B A11C A11D A11G A11H A12A
A12B A12C A16A B01A B02A B02B B03A B03B B03X B05A B05C B05X B06A C01A C01B C01C C01D C01E C02A C02C C02D
C03A C03B C03C C03D C03X C04A C05A C05B C07A C08C C08D C09A C09C C09X C10A D01A D04A D05A D06A D06B D07A
D08A D10A D11A G01A G02C G03A G03B G03C G03D G03X G04B G04C H01B H01C H02A H03A H03B H04A H05A H05B J01A
J01C J01D J01E J01F J01G J01M J01X J02A J04A J05A J06B J07A L01A L01B L01C L01D L01X L02A L02B L03A L04A
M01A M01C M02A M03A M03B M03C M04A M05B N01A N01B N02A N02B N02C N03A N04A N04B N05A N05B N05C N06A N06B
N06D N07A N07B N07X P01A P01B P01C P02B P02C P03A R01A R01B R02A R03A R03D R05C R05D R06A S01A S01E S01F
S01H S01K V03A V04C
""".split())


def edge_classes(pairs: tuple[tuple[str, str], ...]) -> frozenset[str]:
    """Every class that appears in a pair."""
    return frozenset(code for pair in pairs for code in pair)


def read_nodes(path: Path) -> frozenset[str]:
    """The `atc3` column of a node file; a UserError naming the file when it has no such column."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if "atc3" not in (reader.fieldnames or ()):
                raise UserError(f"{path}: expected a column atc3 (the DDI graph's ATC3 classes, one per row)")
            return frozenset(code for row in reader if (code := (row["atc3"] or "").strip()))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc})") from None


def write_nodes(path: Path, nodes: frozenset[str]) -> None:
    """Write the node file atomically (what `read_nodes` reads), classes sorted."""
    atomic_write_text(path, "atc3\n" + "".join(f"{code}\n" for code in sorted(nodes)))


def graph_nodes(folder: Path, pairs: tuple[tuple[str, str], ...], pairs_sha256: str) -> tuple[frozenset[str], Source]:
    """(the DDI graph's classes, where they came from) for the pairs read from `folder` (module docstring).
    A node file that leaves out a class with a pair is refused: it does not describe this graph."""
    from bench.prep.drug_knowledge_files import RESOURCES   # deferred: it imports drug_knowledge, which imports us

    with_edges = edge_classes(pairs)
    path = folder / NODES_FILE
    if path.is_file():
        nodes = read_nodes(path)
        missing = sorted(with_edges - nodes)
        if missing:
            raise UserError(f"{path}: lacks {len(missing)} class(es) of the DDI pairs (e.g. {missing[0]}); it must "
                            "list every class of the graph (`bench resources build-ddi` writes both files)")
        return nodes, "file"
    if pairs_sha256 == next(r.sha256 for r in RESOURCES if r.name == DDI_PAIRS):
        return PINNED_GRAPH_NODES, "pinned"
    return with_edges, "edges"
