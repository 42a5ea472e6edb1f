"""Prove which prompts and digits a caller heard, byte for byte.

Asterisk plays a prompt's ``.ulaw`` file without transcoding when the channel is
µ-law (PCMU, or a Local channel originated with ``Codecs: ulaw``), so the µ-law
payload it sends contains each prompt's ``.ulaw`` bytes exactly and in order. A
MixMonitor WAV of such a call is the same audio decoded to 16-bit linear: encoded
back to µ-law it gives the same bytes (up to the two codes that don't survive the
trip, normalised by :func:`canonical_ulaw`).

:class:`PromptLibrary` finds every prompt in a captured stream, complete or cut short
(a key pressed during ``Background`` stops it), and returns them in order.
"""

from __future__ import annotations

import bisect
import time
import wave
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 8000
ANCHOR = 400  # bytes (50 ms) of a prompt searched for first
_MIN_VARIETY = 16  # distinct byte values an anchor needs (not silence)
# The music-on-hold folder under the sounds dir (dialplan/musiconhold.conf.sample): a
# caller waiting in the queue hears it between prompts, not as one.
MUSIC = "sac-hold/"


# -- G.711 µ-law -----------------------------------------------------------------------


def _ulaw_to_linear(code: int) -> int:
    code = ~code & 0xFF
    sign, exponent, mantissa = code & 0x80, (code >> 4) & 0x07, code & 0x0F
    sample = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -sample if sign else sample


def _linear_to_ulaw(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    if sign:
        sample = -sample
    sample = min(sample, 32635) + 0x84
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not sample & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (sample >> (exponent + 3)) & 0x0F
    code = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return code or 0x02  # Asterisk's ZEROTRAP: never emit 0x00


ULAW_TO_LINEAR: tuple[int, ...] = tuple(_ulaw_to_linear(c) for c in range(256))
_LINEAR_TO_ULAW = bytes(_linear_to_ulaw(s - 32768) for s in range(65536))
# 0x7f and 0xff are both zero, 0x00 becomes 0x02 through Asterisk's encoder.
_CANONICAL = bytes(_LINEAR_TO_ULAW[(ULAW_TO_LINEAR[c] + 32768) & 0xFFFF] for c in range(256))


def canonical_ulaw(data: bytes) -> bytes:
    """µ-law as it comes out of a decode/encode round trip (0x7f→0xff, 0x00→0x02)."""
    return data.translate(_CANONICAL)


def ulaw_encode(samples: Iterable[int]) -> bytes:
    """16-bit signed linear samples to µ-law."""
    table = _LINEAR_TO_ULAW
    return bytes(table[(s + 32768) & 0xFFFF] for s in samples)


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """Little-endian 16-bit PCM bytes to µ-law."""
    import array

    samples = array.array("h")
    samples.frombytes(pcm[: len(pcm) // 2 * 2])
    return ulaw_encode(samples)


def wav_to_ulaw(path: Path) -> bytes:
    """A WAV file (8 kHz, mono, 16-bit, as MixMonitor writes ``.wav``) as µ-law."""
    with wave.open(str(path), "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, SAMPLE_RATE):
            raise ValueError(
                f"{path}: need 8 kHz mono 16-bit, got {w.getframerate()} Hz, "
                f"{w.getnchannels()} ch, {8 * w.getsampwidth()} bit"
            )
        return pcm16_to_ulaw(w.readframes(w.getnframes()))


def recording_to_ulaw(path: Path) -> bytes:
    """A MixMonitor recording (``.wav``, or raw ``.ulaw``/``.ul``) as µ-law."""
    if path.suffix.lower() in (".ulaw", ".ul", ".pcm", ".mu"):
        return path.read_bytes()
    return wav_to_ulaw(path)


# -- matching --------------------------------------------------------------------------


@dataclass(frozen=True)
class Heard:
    """One prompt found in a stream: bytes ``start``..``end`` (8000 per second)."""

    name: str
    start: int
    end: int
    complete: bool

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


def _anchor(data: bytes) -> int | None:
    """Offset of the first ANCHOR-long window that is not (near) silence."""
    if len(data) < ANCHOR:
        return 0 if len(set(data)) >= min(_MIN_VARIETY, max(1, len(data) // 4)) else None
    for off in range(0, len(data) - ANCHOR + 1, 80):
        if len(set(data[off : off + ANCHOR])) >= _MIN_VARIETY:
            return off
    return None


def _common_prefix(a: bytes, a_start: int, b: bytes) -> int:
    """Length of the common prefix of a[a_start:] and b (slice compares, O(log n))."""
    n = min(len(a) - a_start, len(b))
    if a[a_start : a_start + n] == b[:n]:
        return n
    lo, hi = 0, n  # a[..lo] matches, a[..hi] doesn't
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[a_start : a_start + mid] == b[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def is_subsequence(expected: Sequence[str], actual: Sequence[str]) -> bool:
    """True when ``expected`` appears in ``actual`` in order (other items may sit between)."""
    it = iter(actual)
    return all(any(a == e for a in it) for e in expected)


class PromptLibrary:
    """The prompts Asterisk plays, read from a language folder (``.../sounds/pt_BR``).

    Only ``.ulaw`` files are used: they are what Asterisk sends on a µ-law channel.
    Prompts that are pure silence (``sac/pause``) can't be told apart and are skipped.
    Music on hold (``sac-hold/``) is not a prompt: it is left out (see :data:`MUSIC`).
    """

    def __init__(self, sounds_dir: Path) -> None:
        self.sounds_dir = Path(sounds_dir)
        self._data: dict[str, bytes] = {}
        for path in sorted(self.sounds_dir.rglob("*.ulaw")):
            name = path.relative_to(self.sounds_dir).with_suffix("").as_posix()
            if name.startswith(MUSIC):
                continue
            self._data[name] = canonical_ulaw(path.read_bytes())
        self._anchors = {n: _anchor(d) for n, d in self._data.items()}

    @property
    def names(self) -> list[str]:
        return list(self._data)

    def ulaw(self, name: str) -> bytes:
        return self._data[name]

    def duration(self, name: str) -> float:
        return len(self._data[name]) / SAMPLE_RATE

    def find(
        self, stream: bytes, names: Iterable[str] | None = None, *, tail_tolerance: int = 0
    ) -> list[Heard]:
        """Every prompt in ``stream`` (µ-law), in order. A prompt cut short counts when
        at least its first distinct 50 ms are there (``complete=False``).

        ``tail_tolerance``: a prompt at the very end of the stream missing at most this
        many bytes still counts as complete (MixMonitor drops the last partial 20 ms
        frame when nothing follows it; RTP captures lose nothing: use 0).
        """
        stream = canonical_ulaw(stream)
        hits: list[Heard] = []
        for name in names if names is not None else self._data:
            data, off = self._data[name], self._anchors[name]
            if off is None:
                continue
            needle = data[off : off + ANCHOR]
            pos = stream.find(needle)
            while pos >= 0:
                start = pos - off
                if start >= 0 and stream[start:pos] == data[:off]:
                    length = _common_prefix(stream, start, data)
                    complete = length == len(data) or (
                        len(data) - length <= tail_tolerance and start + length == len(stream)
                    )
                    hits.append(Heard(name, start, start + length, complete))
                pos = stream.find(needle, pos + 1)
        return _resolve(hits)

    def sequence(
        self,
        stream: bytes,
        names: Iterable[str] | None = None,
        *,
        complete_only: bool = False,
        tail_tolerance: int = 0,
    ) -> list[str]:
        """Names of the prompts heard, in order."""
        return [
            h.name
            for h in self.find(stream, names, tail_tolerance=tail_tolerance)
            if h.complete or not complete_only
        ]

    def digits(self, stream: bytes) -> str:
        """The digits read to the caller (``digits/N`` prompts heard whole), in order."""
        return digits_heard(self.find(stream, [n for n in self._data if n.startswith("digits/")]))


def digits_heard(heard: Iterable[Heard]) -> str:
    return "".join(
        h.name.removeprefix("digits/") for h in heard if h.name.startswith("digits/") and h.complete
    )


def _resolve(hits: list[Heard]) -> list[Heard]:
    """Keep non-overlapping hits: complete ones first (longest first), then prompts cut
    short, each clipped where the next kept prompt starts."""
    kept: list[Heard] = []

    def overlaps(h: Heard) -> bool:
        return any(h.start < k.end and k.start < h.end for k in kept)

    for h in sorted((h for h in hits if h.complete), key=lambda h: h.start - h.end):
        if not overlaps(h):
            kept.append(h)
    for h in sorted((h for h in hits if not h.complete), key=lambda h: h.start - h.end):
        starts = sorted(k.start for k in kept)
        if any(k.start <= h.start < k.end for k in kept):
            continue
        i = bisect.bisect_right(starts, h.start)
        end = min(h.end, starts[i]) if i < len(starts) else h.end
        if end - h.start >= ANCHOR and not overlaps(Heard(h.name, h.start, end, False)):
            kept.append(Heard(h.name, h.start, end, False))
    return sorted(kept, key=lambda h: h.start)


def time_of(offset: int, audio_times: Sequence[tuple[int, float]]) -> float | None:
    """Arrival time (s from the call start) of the packet holding byte ``offset``."""
    if not audio_times:
        return None
    offsets = [o for o, _ in audio_times]
    i = max(0, bisect.bisect_right(offsets, offset) - 1)
    return audio_times[i][1]


def wait_file_settled(path: Path, timeout: float = 5.0) -> None:
    """Wait until a recording stops growing (MixMonitor writes it after the hangup)."""
    last, deadline = -1, time.monotonic() + timeout
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else -1
        if size == last and size > 0:
            return
        last = size
        time.sleep(0.2)
