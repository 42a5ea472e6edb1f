"""Sounds: the pt-BR voice prompts, built from ``sounds/manifest.toml``
(``sac-ivr sounds build``)."""

from __future__ import annotations

from sac_ivr.core import Core
from sac_ivr.feature import Feature
from sac_ivr.sounds import cli

FEATURE = Feature[Core](name="sounds", cli=cli.add_parser)
