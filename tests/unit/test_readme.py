"""The README tables match the feature contract and Settings; its set-up commands exist."""

from __future__ import annotations

import re

from app.settings import PROJECT_ROOT
from docs.readme_tables import render

README = PROJECT_ROOT / "README.md"


def test_readme_tables_match_contract_and_settings() -> None:
    text = README.read_text()
    assert render(text) == text, "README tables are stale: run `make readme`"


def test_readme_gives_the_two_setup_commands_and_they_exist() -> None:
    text = README.read_text()
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    for target in ("run", "test"):
        assert f"make {target}" in text
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no `{target}` target"


def test_every_make_target_in_the_readme_exists() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    for target in set(re.findall(r"`make ([a-z-]+)", README.read_text())):
        assert re.search(rf"^{target}:", makefile, re.M), f"README names missing `make {target}`"
