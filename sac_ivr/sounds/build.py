"""Build the prompt files Asterisk plays from sounds/manifest.toml.

For each manifest entry ``name`` the builder writes ``<out>/<name>.wav`` (8 kHz,
16-bit, mono), ``.ulaw``, ``.alaw``, ``.gsm`` and ``.sln16`` (16 kHz raw), so
Asterisk never transcodes. Output is byte-deterministic: espeak-ng is, and sox
runs with ``-R`` (no random dither); speech is trimmed of leading/trailing
silence and normalised to -3 dBFS.

Engines: ``espeak`` (espeak-ng, offline, the default) and ``gtts`` (Google via
gTTS, online). When gTTS fails (offline, timeout) the builder logs one warning
and uses espeak-ng for that prompt and the rest of the run.

Tones: an entry with ``tones`` (music on hold) is a row of soft sine notes made by
sox, each ``TONE_S`` seconds with a quick rise and a long fade, at -15 dBFS: neutral
audio that tells a waiting caller the line is alive, without advertising.

Human recordings: an entry with ``human = true`` is a file a person recorded.
The builder never overwrites any of its files; it only creates formats that are
missing, converting them from ``<name>.wav``.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sac_ivr.sounds.manifest import TONE_S, Prompt, load_manifest

__all__ = [
    "FORMATS",
    "BuildReport",
    "MissingToolError",
    "SoundsBuildError",
    "build_sounds",
    "prompt_duration",
]

log = logging.getLogger(__name__)

#: File extensions written for every prompt.
FORMATS: tuple[str, ...] = ("wav", "ulaw", "alaw", "gsm", "sln16")
ENGINES: tuple[str, ...] = ("espeak", "gtts")
ESPEAK_SPEED_WPM = 160
GTTS_TIMEOUT_S = 10.0

# sox output options per format (they go right before the output file name).
_SOX_OUT: dict[str, list[str]] = {
    "wav": ["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "wav"],
    "ulaw": ["-r", "8000", "-c", "1", "-t", "ul"],
    "alaw": ["-r", "8000", "-c", "1", "-t", "al"],
    "gsm": ["-r", "8000", "-c", "1", "-t", "gsm"],
    "sln16": ["-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw"],
}
# Trim leading/trailing silence, then normalise to -3 dBFS.
_TRIM_NORMALISE = [
    "silence", "1", "0.02", "0.5%", "reverse",
    "silence", "1", "0.02", "0.5%", "reverse",
    "gain", "-n", "-3",
]  # fmt: skip
# Raw formats: bytes per second of audio.
_BYTES_PER_S = {"ulaw": 8000, "alaw": 8000, "ul": 8000, "al": 8000, "sln": 16000, "sln16": 32000}
_PACKAGES = {"espeak-ng": "espeak-ng", "sox": "sox"}


class SoundsBuildError(RuntimeError):
    """A prompt could not be built."""


class MissingToolError(SoundsBuildError):
    """A required program (espeak-ng, sox) or library is not installed."""


@dataclass
class BuildReport:
    """What a build did.

    ``engines`` maps each generated prompt to what made it ("espeak", "gtts" or
    "sox" for silence); ``fallbacks`` lists prompts gTTS should have made.
    """

    built: list[str] = field(default_factory=list)
    engines: dict[str, str] = field(default_factory=dict)
    human: list[str] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def build_sounds(
    manifest_path: str | Path,
    out_dir: str | Path,
    engine: str = "espeak",
    voice: str = "pt-br",
    only: Iterable[str] | None = None,
    *,
    gtts_timeout: float = GTTS_TIMEOUT_S,
) -> BuildReport:
    """Build every prompt of the manifest (or just ``only``) into ``out_dir``.

    ``voice`` is the espeak-ng voice (also used when gTTS falls back); gTTS
    always speaks Brazilian Portuguese (lang "pt", tld "com.br").
    """
    if engine not in ENGINES:
        raise SoundsBuildError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")
    prompts = load_manifest(manifest_path)
    if only is not None:
        wanted = list(dict.fromkeys(only))
        unknown = [n for n in wanted if n not in prompts]
        if unknown:
            raise SoundsBuildError(f"not in {manifest_path}: {', '.join(unknown)}")
        prompts = {n: prompts[n] for n in wanted}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = BuildReport()
    _require("sox")
    if engine == "espeak" and any(p.text and not p.human for p in prompts.values()):
        _require("espeak-ng")
    gtts_ok = engine == "gtts"
    for prompt in prompts.values():
        with tempfile.TemporaryDirectory(prefix=".build-", dir=out) as tmp_name:
            tmp = Path(tmp_name)
            if prompt.human:
                _complete_human(prompt, out, tmp, report)
                continue
            if prompt.silence is not None:
                source, used = _silence(prompt.silence, tmp), "sox"
            elif prompt.tones is not None:
                source, used = _tones(prompt.tones, tmp), "sox"
            elif gtts_ok:
                source, used = _gtts_or_fallback(prompt, voice, gtts_timeout, tmp, report)
                gtts_ok = used == "gtts"
            else:
                source, used = _espeak(prompt.text or "", voice, tmp), "espeak"
            if used != "sox":
                source = _trim_normalise(source, tmp)
            report.files += _write_formats(source, out, prompt.name, FORMATS, tmp)
            report.built.append(prompt.name)
            report.engines[prompt.name] = used
            if engine == "gtts" and used == "espeak":
                report.fallbacks.append(prompt.name)
    return report


def prompt_duration(path: str | Path) -> float:
    """Seconds of audio in a prompt file, from its size (or its header for .wav)."""
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    if ext == "wav":
        return _wav_duration(path)
    if ext == "gsm":
        return (path.stat().st_size // 33) * 0.020  # 33-byte frames of 20 ms
    if ext not in _BYTES_PER_S:
        raise ValueError(f"{path}: unknown prompt format {ext!r}")
    return path.stat().st_size / _BYTES_PER_S[ext]


def _wav_duration(path: Path) -> float:
    """Duration from the RIFF ``fmt `` and ``data`` chunks (any PCM layout)."""
    data = path.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a WAV file")
    pos, rate, align = 12, 0, 0
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if cid == b"fmt ":
            rate, align = (
                struct.unpack_from("<I", data, pos + 12)[0],
                data[pos + 20] | data[pos + 21] << 8,
            )
        elif cid == b"data":
            if not rate or not align:
                break
            return min(size, len(data) - pos - 8) / (rate * align)
        pos += 8 + size + (size & 1)
    raise ValueError(f"{path}: WAV file without fmt/data chunks")


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise MissingToolError(
            f"{tool} not found: install the Debian package {_PACKAGES[tool]!r} "
            f"(apt-get install {_PACKAGES[tool]})"
        )
    return found


def _run(cmd: list[str], stdin: bytes | None = None) -> None:
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, check=False)
    except FileNotFoundError:
        tool = Path(cmd[0]).name
        pkg = _PACKAGES.get(tool, tool)
        raise MissingToolError(
            f"{tool} not found: install the Debian package {pkg!r} (apt-get install {pkg})"
        ) from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        if "mp3" in err and "no handler" in err:
            raise MissingToolError(
                "sox cannot read MP3: install the Debian package 'libsox-fmt-mp3' "
                "(or libsox-fmt-all)"
            )
        raise SoundsBuildError(f"{' '.join(cmd[:2])}... failed ({proc.returncode}): {err}")


def _espeak(text: str, voice: str, tmp: Path) -> Path:
    dest = tmp / "espeak.wav"
    _run(
        [_require("espeak-ng"), "-v", voice, "-s", str(ESPEAK_SPEED_WPM), "-w", str(dest)],
        stdin=text.encode("utf-8"),
    )
    return dest


def _silence(seconds: float, tmp: Path) -> Path:
    dest = tmp / "silence.wav"
    _run(["sox", "-R", "-n", *_SOX_OUT["wav"], str(dest), "trim", "0", f"{seconds:g}"])
    return dest


def _tones(notes: tuple[str, ...], tmp: Path) -> Path:
    """Each note a sine of TONE_S seconds (2 ms rise, fading over its last 70 %), one
    after the other, the whole at -15 dBFS."""
    parts = []
    for index, note in enumerate(notes):
        part = tmp / f"note-{index:02d}.wav"
        _run(
            [
                *("sox", "-R", "-n", *_SOX_OUT["wav"], str(part)),
                *("synth", f"{TONE_S:g}", "sine", note),
                *("fade", "h", "0.002", f"{TONE_S:g}", f"{TONE_S * 0.7:g}"),
            ]
        )
        parts.append(str(part))
    dest = tmp / "tones.wav"
    _run(["sox", "-R", *parts, *_SOX_OUT["wav"], str(dest), "gain", "-n", "-15"])
    return dest


def _gtts_mp3(text: str, dest: Path, timeout: float) -> None:
    """Fetch ``text`` from Google as MP3 into ``dest`` (temp file, renamed on success)."""
    try:
        from gtts import gTTS
    except ImportError:
        raise MissingToolError("gTTS is not installed: pip install 'sac-ivr[gtts]'") from None
    part = dest.with_name(dest.name + ".part")
    try:
        gTTS(text, lang="pt", tld="com.br", lang_check=False, timeout=timeout).save(str(part))
        if part.stat().st_size == 0:
            raise OSError("gTTS returned no audio")
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


def _gtts_or_fallback(
    prompt: Prompt, voice: str, timeout: float, tmp: Path, report: BuildReport
) -> tuple[Path, str]:
    dest = tmp / "gtts.mp3"
    try:
        _gtts_mp3(prompt.text or "", dest, timeout)
        return dest, "gtts"
    except MissingToolError:
        raise
    except Exception as exc:  # gTTSError, requests errors, OSError: all mean "no gTTS"
        cause = exc.__cause__ or exc.__context__
        reason = f"{type(cause).__name__}: {exc}" if cause else f"{type(exc).__name__}: {exc}"
    msg = (
        f"gTTS failed for {prompt.name!r} ({reason}); falling back to espeak-ng "
        f"(voice {voice}) for this prompt and the rest of this build"
    )
    log.warning(msg)
    report.warnings.append(msg)
    return _espeak(prompt.text or "", voice, tmp), "espeak"


def _trim_normalise(source: Path, tmp: Path) -> Path:
    dest = tmp / "clean.wav"
    _run(["sox", "-R", str(source), "-b", "16", str(dest), *_TRIM_NORMALISE])
    if _wav_duration(dest) <= 0:
        raise SoundsBuildError(f"{source.name}: no audio left after trimming silence")
    return dest


def _write_formats(
    source: Path, out: Path, name: str, formats: Iterable[str], tmp: Path
) -> list[Path]:
    """Convert ``source`` into each format in ``tmp``, then move all into place."""
    made: list[tuple[Path, Path]] = []
    for ext in formats:
        part = tmp / f"out.{ext}"
        _run(["sox", "-R", str(source), *_SOX_OUT[ext], str(part)])
        made.append((part, out / f"{name}.{ext}"))
    for part, final in made:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, final)
    return [final for _, final in made]


def _complete_human(prompt: Prompt, out: Path, tmp: Path, report: BuildReport) -> None:
    """Leave a human recording alone; only create its missing formats from its .wav."""
    report.human.append(prompt.name)
    missing = [ext for ext in FORMATS if not (out / f"{prompt.name}.{ext}").exists()]
    if not missing:
        return
    wav = out / f"{prompt.name}.wav"
    if not wav.exists():
        msg = (
            f"human recording {prompt.name!r}: {wav} is missing, cannot create {', '.join(missing)}"
        )
        log.warning(msg)
        report.warnings.append(msg)
        return
    report.files += _write_formats(wav, out, prompt.name, missing, tmp)
