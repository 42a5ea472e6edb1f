"""The README stays true to the code where the code can say it."""

from __future__ import annotations

import re
from pathlib import Path

from sac_ivr.cli import build_parser
from sac_ivr.config import settings_markdown
from sac_ivr.features import FEATURES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_settings_table_is_the_generated_one() -> None:
    block = README.split("<!-- settings-table:start -->\n", 1)[1].split(
        "<!-- settings-table:end -->", 1
    )[0]
    assert block == settings_markdown(), "regenerate it: python -m sac_ivr.config"


def test_every_cli_command_is_in_the_readme() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        assert re.search(rf"`sac-ivr {name}\b", README), f"sac-ivr {name} is not in the README"


def test_the_two_commands_are_the_makefile_targets() -> None:
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    for target in ("run", "test"):
        assert f"make {target}" in README
        assert re.search(rf"^{target}:", makefile, re.M)
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "make test" in ci


def test_every_feature_has_its_paragraph_in_the_layout() -> None:
    """One paragraph per entry of FEATURES, naming the hooks it offers and uses."""
    layout = README.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    paragraphs = {
        match[1]: match[0]
        for match in re.finditer(r"^- \*\*([^*]+)\*\*.*(?:\n  .*)*", layout, re.M)
    }
    assert list(paragraphs) == [f.name for f in FEATURES]
    for feature in FEATURES:
        for hook in feature.offers + feature.uses:
            assert f"**{hook}**" in paragraphs[feature.name], (feature.name, hook)
