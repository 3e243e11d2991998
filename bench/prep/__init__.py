"""Data preparation: MIMIC tables, drug knowledge, the bundle store, code titles, synthetic cohorts and raw tables, data fetch."""
