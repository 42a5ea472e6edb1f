"""Retention: ``sac-ivr retention`` purges old recordings and anonymises old
records."""

from __future__ import annotations

from sac_ivr.core import Core
from sac_ivr.feature import Feature
from sac_ivr.retention import cli
from sac_ivr.retention.config import check_settings

FEATURE = Feature[Core](
    name="retention",
    depends_on=("calls", "history", "lifecycle", "notifications", "protocols"),
    cli=cli.add_parser,
    check_settings=check_settings,
)
