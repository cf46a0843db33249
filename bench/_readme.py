"""Rewrite one generated section of ``bench/README.md``, leaving the others as they are."""

from __future__ import annotations

from pathlib import Path

README = Path(__file__).resolve().parent / "README.md"


def write_section(section: str, text: str, path: Path = README) -> None:
    """Replace the section whose heading line is ``section`` (up to the next ``## `` heading) by ``text``.

    A section not yet in the file is appended at its end.
    """
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    start = old.find(section)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        nxt = old.find("\n## ", start + len(section))
        new = old[:start] + text + ("" if nxt < 0 else "\n" + old[nxt + 1:])
    path.write_text(new)
