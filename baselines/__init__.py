"""Baseline medication recommenders, each in its own module, registered in `bench.registry`."""
