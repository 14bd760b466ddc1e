"""The code blocks of client/README.md, so tests run the examples exactly as written."""

from __future__ import annotations

import re
from pathlib import Path

from tests.servers import ROOT

CLIENT_README = ROOT / "client/README.md"
TOP_README = ROOT / "README.md"


def code_block(heading: str, lang: str = "python", readme: Path = CLIENT_README) -> str:
    """The first ``lang`` code block after the Markdown heading ``heading``."""
    text = readme.read_text()
    match = re.search(rf"^#+ {re.escape(heading)}\n(.*?)^```{lang}\n(.*?)^```", text, re.S | re.M)
    if match is None:
        raise LookupError(f"no {lang} block under {heading!r} in {readme}")
    return match.group(2)


def substitute(code: str, replacements: dict[str, str]) -> str:
    """``code`` with each key replaced once at least (fails loudly if one is missing)."""
    for old, new in replacements.items():
        if old not in code:
            raise LookupError(f"{old!r} is not in the README example any more")
        code = code.replace(old, new)
    return code
