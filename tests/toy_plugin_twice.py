"""A second plug-in that registers the toy plug-in's model name again (refused, tests/test_plugins.py)."""

from __future__ import annotations

from bench.plugins import ModelEntry, Plugin

PLUGIN = Plugin(name="toy-twice", models=(ModelEntry("toy-popular", "tests.toy_model:ToyPopular", "again"),))
