"""Sizes and rates of the synthetic tables at scale 1.0 (full MIMIC-IV v2.2), and time units in seconds."""

from __future__ import annotations

# Full MIMIC-IV v2.2 (scale 1.0).
FULL_PATIENTS = 299_712
FULL_ADMISSIONS = 431_231
SHARE_WITH_ADMISSION = {"mimic4": 0.603, "mimic3": 1.0}  # MIMIC-IV: ~180.7k of 299.7k patients
HOSPITAL_DEATH_RATE = {"mimic4": 0.021, "mimic3": 0.10}  # share of admissions ending in death (MIMIC-III is ICU)
DX_RAW_PER_ADMISSION = 11.65     # drawn per admission before dropping repeated codes: ~11.0 rows kept
DX_MAX = 39                      # MIMIC-IV's largest diagnoses seq_num
PX_SHARE_WITH = 0.45             # admissions with at least one procedure
PX_RAW_PER_ADMISSION = 1.685    # ~1.63 rows kept
RX_SHARE_WITH = 0.88             # admissions with prescriptions
RX_PER_ADMISSION = 37.0
RX_ROWS_PER_DRUG = 2.4           # several rows (different start times) per drug
NDC_ROW_SHARES = (0.66, 0.20, 0.08, 0.06)  # mappable, unmappable 11-digit, "0", empty
DAY = 86_400
YEAR = 365.25 * DAY
