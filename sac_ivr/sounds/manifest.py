"""Load and validate sounds/manifest.toml (prompt name -> pt-BR text, silence or tones).

Each entry under ``[prompts]`` is one of::

    "sac/menu-main" = "Para falar com um atendente, tecle 0."
    "sac/menu-main" = { text = "Para falar ...", human = true }
    "sac/pause" = { silence = 0.35 }
    "sac-hold/chimes" = { tones = "C5 E5 G5 E5" }   # soft notes, TONE_S seconds each

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
#: Seconds each note of a ``tones`` entry lasts, and the most notes one may have.
TONE_S = 0.5
MAX_TONES = 64
#: A note: letter, optional sharp or flat, octave ("C5", "F#4", "Bb3").
NOTE_RE = re.compile(r"^[A-G][#b]?[0-8]$")
_KEYS = {"text", "silence", "tones", "human"}
_KINDS = ("text", "silence", "tones")


class ManifestError(ValueError):
    """The manifest is missing, not TOML, or has an invalid entry."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """One prompt: exactly one of ``text``, ``silence`` (seconds) or ``tones`` (note
    names) is set."""

    name: str
    text: str | None = None
    silence: float | None = None
    human: bool = False
    tones: tuple[str, ...] | None = None


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
            f"{where}: unknown key(s) {', '.join(unknown)} (allowed: text, silence, tones, human)"
        )
    text, silence, human = value.get("text"), value.get("silence"), value.get("human", False)
    if not isinstance(human, bool):
        raise ManifestError(f"{where}: 'human' must be true or false")
    if sum(value.get(kind) is not None for kind in _KINDS) != 1:
        raise ManifestError(f"{where}: needs exactly one of 'text' or 'silence' (or 'tones')")
    if value.get("tones") is not None:
        return Prompt(name, tones=_tones(value["tones"], where), human=human)
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


def _tones(value: Any, where: str) -> tuple[str, ...]:
    notes = tuple(value.split()) if isinstance(value, str) else ()
    if not notes or len(notes) > MAX_TONES or not all(NOTE_RE.match(n) for n in notes):
        raise ManifestError(
            f"{where}: 'tones' must be 1 to {MAX_TONES} note names separated by spaces, "
            'e.g. "C5 E5 G5" (letter, optional # or b, octave 0-8)'
        )
    return notes
