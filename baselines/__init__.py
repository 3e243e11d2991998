"""Baseline medication recommenders, each in its own module, registered by `baselines/plugin.py` (bench.plugins)."""
