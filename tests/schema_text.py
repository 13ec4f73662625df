"""Reads a schema document (the seed's plain text, or our Markdown) into comparable structures."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_REL = re.compile(r'^(\S+) \|\|--o\{ (\S+) : "(.*)"$')


@dataclass
class SchemaText:
    columns: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # table -> (name, type, marker)
    relationships: list[tuple[str, str, str]] = field(default_factory=list)  # (target, source, column)
    descriptions: dict[str, str] = field(default_factory=dict)
    foreign_keys: list[tuple[str, str, str, str]] = field(default_factory=list)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def parse(text: str) -> SchemaText:
    out = SchemaText()
    lines = [line.strip() for line in text.splitlines()]
    section = ""
    current: str | None = None
    for line in lines:
        if line.endswith("erDiagram"):
            section = "er"
            continue
        if line.lstrip("# ") == "Tables":
            section = "tables"
            continue
        if line.lstrip("# ") == "Foreign Key Relationships":
            section = "fks"
            continue
        if section == "er":
            if line.startswith("```"):
                section = ""
            elif line.endswith("{") and "||--o{" not in line:
                current = line[:-1].strip()
                out.columns[current] = []
            elif line == "}":
                current = None
            elif current is not None and line:
                parts = line.split()
                out.columns[current].append((parts[1], parts[0], parts[2] if len(parts) > 2 else ""))
            elif (match := _REL.match(line)) is not None:
                out.relationships.append((match[1], match[2], match[3]))
        elif section in ("tables", "fks") and "|" in line:
            cells = _cells(line)
            if cells[0] in ("Table", "Source Table") or set(cells[0]) <= {"-"}:
                continue
            if section == "tables":
                out.descriptions[cells[0]] = cells[1]
            else:
                out.foreign_keys.append((cells[0], cells[1], cells[2], cells[3]))
    return out


def without_generator_bug(schema: SchemaText) -> SchemaText:
    """The seed's first FK row ('-- FOREIGN KEY CONSTRAINTS') is an artefact of the original generator."""
    bad = "-- FOREIGN KEY CONSTRAINTS"
    schema.relationships = [r for r in schema.relationships if bad not in r[0] and bad not in r[2]]
    schema.foreign_keys = [f for f in schema.foreign_keys if bad not in f[1]]
    return schema
