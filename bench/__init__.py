"""medrec-bench: one harness for medication recommenders (data, metrics, runner, results, CLI)."""

__version__ = "0.1.0"
