"""The toy plug-in's model (tests/toy_plugin.py): `popular` under its own registry name."""

from __future__ import annotations

from typing import ClassVar

from baselines.popular import Popular


class ToyPopular(Popular):
    name: ClassVar[str] = "toy-popular"
