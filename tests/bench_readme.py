"""What bench/README.md promises each benchmark's JSON holds: the field names in the first
column of the tables under a section heading (up to the next heading of that level or
above). The smoke tests check the written JSON against them, so a field dropped or renamed
in the code, or documented but never written, fails a test."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "bench" / "README.md"


def documented_fields(heading: str) -> list[set[str]]:
    """One set per table under ``heading`` (e.g. ``"### Reading `bench/out/e2e.json`"``)."""
    lines = README.read_text().splitlines()
    start = lines.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    tables: list[set[str]] = []
    in_table = False
    for line in lines[start + 1 :]:
        if re.match(rf"^#{{1,{level}}} ", line):
            break
        if not line.startswith("|"):
            in_table = False
            continue
        first = line.split("|")[1]
        if set(first.strip()) <= {"-", " ", ":"}:
            continue  # the separator row
        if not in_table:
            tables.append(set())
            in_table = True
            continue  # the header row
        tables[-1].update(re.findall(r"`([a-z0-9_]+)(?:\[\])?`", first))
    return [t for t in tables if t]
