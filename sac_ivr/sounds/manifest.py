"""Load and validate sounds/manifest.toml (prompt name -> pt-BR text or silence).

Each entry under ``[prompts]`` is one of::

    "sac/menu-main" = "Para falar com um atendente, tecle 0."
    "sac/menu-main" = { text = "Para falar ...", human = true }
    "sac/pause" = { silence = 0.35 }

``human = true`` marks a file a person recorded: the builder never overwrites it.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ManifestError", "Prompt", "load_manifest", "parse_manifest"]

#: Prompt names: lower-case path segments such as "sac/menu-main" or "digits/0".
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*(?:/[a-z0-9][a-z0-9_-]*)*$")
MAX_SILENCE_S = 10.0
_KEYS = {"text", "silence", "human"}


class ManifestError(ValueError):
    """The manifest is missing, not TOML, or has an invalid entry."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt: exactly one of ``text`` or ``silence`` (seconds) is set."""

    name: str
    text: str | None = None
    silence: float | None = None
    human: bool = False


def load_manifest(path: str | Path) -> dict[str, Prompt]:
    """Read and validate a manifest file; return prompts by name, in file order."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: manifest not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read manifest: {exc}") from None
    return parse_manifest(raw, source=str(path))


def parse_manifest(raw: str, source: str = "<manifest>") -> dict[str, Prompt]:
    """Validate manifest TOML text; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{source}: not valid TOML: {exc}") from None
    prompts = data.get("prompts")
    if not isinstance(prompts, Mapping) or not prompts:
        raise ManifestError(f"{source}: needs a non-empty [prompts] table")
    unknown = sorted(set(data) - {"prompts"})
    if unknown:
        raise ManifestError(f"{source}: unknown top-level key(s): {', '.join(unknown)}")
    return {name: _entry(name, value, source) for name, value in prompts.items()}


def _entry(name: str, value: Any, source: str) -> Prompt:
    where = f"{source}: prompt {name!r}"
    if not NAME_RE.match(name):
        raise ManifestError(
            f"{where}: bad name (want lower-case path segments without extension, "
            "e.g. 'sac/menu-main' or 'digits/0')"
        )
    if isinstance(value, str):
        value = {"text": value}
    if not isinstance(value, Mapping):
        raise ManifestError(f"{where}: must be a text string or a table, not {value!r}")
    unknown = sorted(set(value) - _KEYS)
    if unknown:
        raise ManifestError(
            f"{where}: unknown key(s) {', '.join(unknown)} (allowed: text, silence, human)"
        )
    text, silence, human = value.get("text"), value.get("silence"), value.get("human", False)
    if not isinstance(human, bool):
        raise ManifestError(f"{where}: 'human' must be true or false")
    if (text is None) == (silence is None):
        raise ManifestError(f"{where}: needs exactly one of 'text' or 'silence'")
    if text is not None:
        if not isinstance(text, str) or not text.strip():
            raise ManifestError(f"{where}: 'text' must be a non-empty string")
        return Prompt(name, text=text.strip(), human=human)
    if (
        isinstance(silence, bool)
        or not isinstance(silence, int | float)
        or not math.isfinite(silence)
        or not 0 < silence <= MAX_SILENCE_S
    ):
        raise ManifestError(
            f"{where}: 'silence' must be a number of seconds in (0, {MAX_SILENCE_S:g}]"
        )
    return Prompt(name, silence=float(silence), human=human)
