"""Voice prompts: manifest, committed files, deterministic builder, gTTS fallback."""

from __future__ import annotations

import importlib
import logging
import math
import re
import shutil
import socket
import struct
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from sac_ivr.sounds import (
    FORMATS,
    ManifestError,
    SoundsBuildError,
    build_sounds,
    load_manifest,
    prompt_duration,
)
from sac_ivr.sounds.manifest import TONE_S, parse_manifest

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "sounds" / "manifest.toml"
SOUNDS = ROOT / "sounds" / "pt_BR"
PROMPTS = load_manifest(MANIFEST)

needs_tools = pytest.mark.skipif(
    not (shutil.which("espeak-ng") and shutil.which("sox")),
    reason="needs espeak-ng and sox (Debian packages espeak-ng, sox)",
)

# A prompt name inside dialplan text: sac/... or digits/N, not part of a URL or
# path (sac/${VAR} and agi://host/sac/x are not prompt names).
DIALPLAN_PROMPT_RE = re.compile(
    r"(?<![\w/$.:{-])((?:sac/[\w-]++(?:/[\w-]++)*+)|digits/\d++)(?![\w${/])"
)
# A whole string literal in Python source that names a prompt.
PY_PROMPT_RE = re.compile(r"""["']((?:sac/[\w-]+(?:/[\w-]+)*)|digits/\d+)["']""")


def dialplan_prompt_names(text: str) -> set[str]:
    """Prompt names in dialplan text, comments (``;`` not escaped) removed."""
    code = "\n".join(re.sub(r"(?<!\\);.*", "", line) for line in text.splitlines())
    return set(DIALPLAN_PROMPT_RE.findall(code))


def agi_prompt_names() -> set[str]:
    """Prompt names in sac_ivr/agi/prompts.py: string literals and module values."""
    path = ROOT / "sac_ivr" / "agi" / "prompts.py"
    if not path.exists():
        return set()
    names = set(PY_PROMPT_RE.findall(path.read_text(encoding="utf-8")))
    module = importlib.import_module("sac_ivr.agi.prompts")
    for value in vars(module).values():
        values = value if isinstance(value, tuple | list | frozenset | set) else (value,)
        names |= {v for v in values if isinstance(v, str) and PY_PROMPT_RE.fullmatch(f'"{v}"')}
    return names


def write_manifest(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "manifest.toml"
    path.write_text("[prompts]\n" + body, encoding="utf-8")
    return path


# --- committed prompt files ---------------------------------------------------------


def plausible_range(name: str) -> tuple[float, float]:
    """(min, max) seconds for a prompt, from its kind and text length."""
    prompt = PROMPTS[name]
    if prompt.silence is not None:
        return prompt.silence - 0.005, prompt.silence + 0.025
    if prompt.tones is not None:
        seconds = len(prompt.tones) * TONE_S
        return seconds - 0.005, seconds + 0.025
    if name.startswith("digits/"):
        return 0.3, 0.6
    chars = len(prompt.text or "")
    return max(0.4, 0.04 * chars), 0.5 + 0.15 * chars


@pytest.mark.parametrize("name", list(PROMPTS))
def test_prompt_exists_in_every_format_with_plausible_duration(name: str) -> None:
    paths = {ext: SOUNDS / f"{name}.{ext}" for ext in FORMATS}
    missing = [str(p.relative_to(ROOT)) for p in paths.values() if not p.is_file()]
    assert not missing, f"missing: {missing} (run: sac-ivr sounds build)"
    durations = {ext: prompt_duration(p) for ext, p in paths.items()}
    if not PROMPTS[name].human:
        low, high = plausible_range(name)
        assert low <= durations["wav"] <= high, (name, durations)
    assert max(durations.values()) - min(durations.values()) <= 0.020 + 1e-9, durations
    with wave.open(str(paths["wav"])) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
    assert paths["gsm"].stat().st_size % 33 == 0
    assert paths["sln16"].stat().st_size % 2 == 0


def test_required_prompts_are_in_manifest() -> None:
    required = {f"digits/{d}" for d in range(10)} | {
        "sac/protocol-intro",
        "sac/protocol-outro",
        "sac/pause",
        "sac/menu-main",
        "sac/menu-invalid",
        "sac/agent-whisper",
    }
    assert required <= set(PROMPTS)
    assert PROMPTS["sac/pause"].silence == pytest.approx(0.35)
    assert PROMPTS["digits/3"].text == "três"


def test_no_stray_sound_files() -> None:
    """Every file under sounds/pt_BR belongs to a manifest entry and a known format."""
    expected = {f"{n}.{ext}" for n in PROMPTS for ext in FORMATS}
    found = {p.relative_to(SOUNDS).as_posix() for p in SOUNDS.rglob("*") if p.is_file()}
    assert found <= expected, sorted(found - expected)


# --- names used by the AGI code and the dialplan ----------------------------------------


def test_dialplan_name_extraction() -> None:
    sample = r"""
    [sac-main]
    exten => s,1,Answer()
     same => n,Set(CHANNEL(language)=pt_BR)
     same => n,AGI(agi://127.0.0.1:4573/sac/protocol)
     same => n,Playback(sac/protocol-intro&digits/1&sac/pause)
     same => n,Background(sac/menu-main)
     same => n,Read(OPTION,sac/menu-complaint,1,,2,5) ; Playback(sac/in-a-comment)
     same => n,Playback(sac/menu-${MENU}&digits/${D})
     same => n,Queue(sac,,,,,,,,sac/agent-whisper)
     same => n,Set(X=a\;b)
    """
    assert dialplan_prompt_names(sample) == {
        "sac/protocol-intro",
        "digits/1",
        "sac/pause",
        "sac/menu-main",
        "sac/menu-complaint",
        "sac/agent-whisper",
    }


def test_agi_prompt_name_extraction() -> None:
    names = agi_prompt_names()
    if (ROOT / "sac_ivr" / "agi" / "prompts.py").exists():
        assert "sac/protocol-intro" in names


def test_every_referenced_prompt_exists() -> None:
    """Names in sac_ivr/agi/prompts.py and dialplan/**/*.conf are built in every format."""
    referenced = {name: "sac_ivr/agi/prompts.py" for name in agi_prompt_names()}
    for conf in sorted((ROOT / "dialplan").glob("**/*.conf")):
        for name in dialplan_prompt_names(conf.read_text(encoding="utf-8", errors="replace")):
            referenced.setdefault(name, str(conf.relative_to(ROOT)))
    not_in_manifest = {n: src for n, src in referenced.items() if n not in PROMPTS}
    assert not not_in_manifest, f"not in sounds/manifest.toml: {not_in_manifest}"
    missing = [
        f"{n}.{ext}" for n in referenced for ext in FORMATS if not (SOUNDS / f"{n}.{ext}").is_file()
    ]
    assert not missing, f"not built under sounds/pt_BR (run: sac-ivr sounds build): {missing}"


# --- builder -------------------------------------------------------------------------


@needs_tools
def test_build_is_byte_deterministic(tmp_path: Path) -> None:
    only = ["sac/menu-invalid", "digits/7", "sac/pause", "sac-hold/chimes"]
    first = build_sounds(MANIFEST, tmp_path / "a", only=only)
    build_sounds(MANIFEST, tmp_path / "b", only=only)
    assert first.built == only and len(first.files) == len(only) * len(FORMATS)
    for path in first.files:
        twin = tmp_path / "b" / path.relative_to(tmp_path / "a")
        assert path.read_bytes() == twin.read_bytes(), path
    leftovers = [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]
    assert not leftovers


def _tone_wav(path: Path, seconds: float = 0.5, rate: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = int(seconds * rate)
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(n)
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


@needs_tools
def test_human_recording_is_not_overwritten(tmp_path: Path) -> None:
    manifest = write_manifest(
        tmp_path,
        '"sac/hello" = { text = "Olá, tudo bem?", human = true }\n"digits/1" = "um"\n',
    )
    out = tmp_path / "out"
    wav, ulaw = out / "sac/hello.wav", out / "sac/hello.ulaw"
    _tone_wav(wav)
    ulaw.write_bytes(b"\xff" * 4000)  # the operator's own ulaw file, 0.5 s
    before = wav.read_bytes(), ulaw.read_bytes()

    report = build_sounds(manifest, out)

    assert (wav.read_bytes(), ulaw.read_bytes()) == before
    assert report.human == ["sac/hello"] and report.built == ["digits/1"]
    for ext in ("alaw", "gsm", "sln16"):  # missing formats are made from the .wav
        assert abs(prompt_duration(out / f"sac/hello.{ext}") - 0.5) <= 0.02
    made = {p.name for p in report.files}
    assert not {"hello.wav", "hello.ulaw"} & made

    again = build_sounds(manifest, out, only=["sac/hello"])  # nothing left to do
    assert again.files == [] and (wav.read_bytes(), ulaw.read_bytes()) == before


@needs_tools
def test_human_recording_missing_is_a_warning(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, '"sac/hello" = { text = "Olá", human = true }\n')
    report = build_sounds(manifest, tmp_path / "out")
    assert report.files == []
    assert len(report.warnings) == 1 and "sac/hello" in report.warnings[0]


# --- gTTS fallback ---------------------------------------------------------------------


@pytest.fixture
def gtts_at(monkeypatch: pytest.MonkeyPatch):
    """Point gTTS at a local URL (and bypass any proxy) so the failure is certain."""
    gtts_tts = pytest.importorskip("gtts.tts")
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)

    def point(port: int) -> None:
        monkeypatch.setattr(
            gtts_tts, "_translate_url", lambda tld="com", path="": f"http://127.0.0.1:{port}/{path}"
        )

    return point


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens here once closed


@pytest.fixture
def silent_peer() -> Iterator[int]:
    """A TCP peer that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def _build_in_thread(limit: float, **kwargs) -> tuple[object, float]:
    """Run build_sounds in a daemon thread so a hang fails the test instead of blocking."""
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["report"] = build_sounds(**kwargs)
        except BaseException as exc:  # pragma: no cover - reported below
            result["error"] = exc

    start = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"build_sounds still running after {limit} s"
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["report"], time.monotonic() - start


def _assert_one_clear_fallback(report, caplog: pytest.LogCaptureFixture, names: list[str]) -> str:
    assert report.fallbacks == names
    assert all(report.engines[n] == "espeak" for n in names)
    assert len(report.warnings) == 1
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1 and records[0].exc_info is None
    message = records[0].getMessage()
    assert message == report.warnings[0]
    assert "gTTS failed" in message and "falling back to espeak-ng" in message
    assert "Traceback" not in message
    return message


@needs_tools
def test_gtts_falls_back_to_espeak_when_unreachable(
    tmp_path: Path, gtts_at, closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    gtts_at(closed_port)
    only = ["sac/menu-invalid", "digits/4"]
    caplog.set_level(logging.WARNING)
    report, _ = _build_in_thread(
        30, manifest_path=MANIFEST, out_dir=tmp_path / "g", engine="gtts", only=only
    )
    _assert_one_clear_fallback(report, caplog, only)
    espeak = build_sounds(MANIFEST, tmp_path / "e", only=only)
    for path in espeak.files:  # the fallback is exactly the espeak build
        assert (tmp_path / "g" / path.relative_to(tmp_path / "e")).read_bytes() == path.read_bytes()


@needs_tools
def test_gtts_times_out_on_a_silent_peer(
    tmp_path: Path, gtts_at, silent_peer: int, caplog: pytest.LogCaptureFixture
) -> None:
    gtts_at(silent_peer)
    caplog.set_level(logging.WARNING)
    report, elapsed = _build_in_thread(
        30,
        manifest_path=MANIFEST,
        out_dir=tmp_path / "g",
        engine="gtts",
        only=["digits/4", "digits/5"],
        gtts_timeout=0.5,
    )
    message = _assert_one_clear_fallback(report, caplog, ["digits/4", "digits/5"])
    assert "Timeout" in message
    assert elapsed < 10  # one timeout, not one per prompt
    assert not list((tmp_path / "g").rglob("*.part")) and not list((tmp_path / "g").rglob("*.mp3"))


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('"sac/x" = "oi"\n"sac/y = 1\n', "not valid TOML"),
        ("", "non-empty [prompts]"),
        ('"sac/x" = { text = "oi", silence = 1.0 }\n', "exactly one of 'text' or 'silence'"),
        ('"sac/x" = { human = true }\n', "exactly one of 'text' or 'silence'"),
        ('"sac/x" = { text = "oi", voice = "f1" }\n', "unknown key(s) voice"),
        ('"sac/x.wav" = "oi"\n', "bad name"),
        ('"Sac/X" = "oi"\n', "bad name"),
        ('"../x" = "oi"\n', "bad name"),
        ('"sac/x" = "   "\n', "non-empty string"),
        ('"sac/x" = 3\n', "text string or a table"),
        ('"sac/x" = { text = "oi", human = "yes" }\n', "'human' must be true or false"),
        ('"sac/x" = { silence = -1 }\n', "'silence' must be a number"),
        ('"sac/x" = { silence = "0.3" }\n', "'silence' must be a number"),
        ('"sac/x" = { tones = "C5 H2" }\n', "'tones' must be 1 to 64 note names"),
        ('"sac/x" = { tones = "" }\n', "'tones' must be 1 to 64 note names"),
        ('"sac/x" = { tones = "C5", text = "oi" }\n', "exactly one of 'text' or 'silence'"),
    ],
)
def test_bad_manifest_gives_clear_error(tmp_path: Path, body: str, expected: str) -> None:
    path = write_manifest(tmp_path, body)
    with pytest.raises(ManifestError) as info:
        build_sounds(path, tmp_path / "out")
    assert expected in str(info.value)
    assert str(path) in str(info.value)
    if "sac/x" in body and "not valid TOML" not in expected:
        assert "sac/x" in str(info.value)


def test_manifest_errors_without_prompts_table_or_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="non-empty \\[prompts\\]"):
        parse_manifest('title = "x"\n')
    with pytest.raises(ManifestError, match="manifest not found"):
        load_manifest(tmp_path / "nope.toml")


def test_unknown_only_name_and_engine(tmp_path: Path) -> None:
    with pytest.raises(SoundsBuildError, match="sac/nope"):
        build_sounds(MANIFEST, tmp_path, only=["sac/nope"])
    with pytest.raises(SoundsBuildError, match="unknown engine"):
        build_sounds(MANIFEST, tmp_path, engine="festival")


def test_missing_tool_names_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither sox nor espeak-ng on PATH
    with pytest.raises(SoundsBuildError, match=r"sox not found: install the Debian package 'sox'"):
        build_sounds(MANIFEST, tmp_path / "out", only=["digits/1"])


def test_prompt_duration_by_format(tmp_path: Path) -> None:
    sizes = {"ulaw": 8000, "alaw": 4000, "sln16": 16000, "gsm": 33 * 25}
    for ext, size in sizes.items():
        (tmp_path / f"p.{ext}").write_bytes(b"\0" * size)
    assert prompt_duration(tmp_path / "p.ulaw") == 1.0
    assert prompt_duration(tmp_path / "p.alaw") == 0.5
    assert prompt_duration(tmp_path / "p.sln16") == 0.5
    assert prompt_duration(tmp_path / "p.gsm") == pytest.approx(0.5)
    _tone_wav(tmp_path / "p.wav", seconds=0.25, rate=16000)
    assert prompt_duration(tmp_path / "p.wav") == pytest.approx(0.25)
    with pytest.raises(ValueError, match="unknown prompt format"):
        prompt_duration(tmp_path / "p.mp3")


# --- CLI ----------------------------------------------------------------------------------


@needs_tools
def test_cli_sounds_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from sac_ivr.sounds.cli import add_parser, default_paths

    parser = argparse.ArgumentParser(prog="sac-ivr")
    add_parser(parser.add_subparsers())
    monkeypatch.chdir(ROOT / "sac_ivr")  # defaults are found from a subdirectory too
    assert default_paths() == (MANIFEST, SOUNDS)
    out = tmp_path / "out"
    args = parser.parse_args(
        ["sounds", "build", "--out", str(out), "--only", "digits/0", "--only", "sac/pause"]
    )
    assert args.func(args) == 0
    assert sorted(p.name for p in out.rglob("*.*")) == sorted(
        f"{n}.{ext}" for n in ("0", "pause") for ext in FORMATS
    )
    bad = parser.parse_args(["sounds", "build", "--out", str(out), "--only", "sac/nope"])
    assert bad.func(bad) == 1
