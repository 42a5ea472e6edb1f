"""The retention feature's settings check."""

from __future__ import annotations

from sac_ivr.config import ConfigError, Settings


def check_settings(settings: Settings) -> None:
    """Refuse retention periods that could not work (raises ConfigError)."""
    if settings.retention_recording_days < 1 or settings.retention_record_days < 1:
        raise ConfigError("retention_recording_days / retention_record_days: at least 1 day")
