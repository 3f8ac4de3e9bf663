"""Where things stand in rule and entity files, for error messages: the line of a key or table,
the column of a line's first character, where a query starts, a query's error placed in its
file, unknown keys, and "did you mean" hints."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tracker.core.errors import RuleError
from tracker.rules.query import QueryLimitError
from tracker.rules.rulefiles import limit_error, source_line


def _first_column(text: str, line: int | None) -> int:
    """Column of the first non-blank character of ``line`` (1 when there is none)."""
    source = source_line(text, line) or ""
    return len(source) - len(source.lstrip()) + 1


def _line_of(text: str, needle: str) -> int | None:
    """Line of ``key = ...`` when ``needle`` is a bare key, else of the first line containing it."""
    if re.fullmatch(r"[A-Za-z_][\w-]*", needle):
        m = re.search(rf"^\s*{re.escape(needle)}\s*=", text, re.M)
        if m:
            return text.count("\n", 0, m.start()) + 1
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    return None


def _reject_unknown_keys(
    table: Mapping[str, Any], known: set[str], where: str, suffix: str, line_of: Callable[[str], int | None]
) -> None:
    unknown = set(table) - known
    if unknown:
        key = sorted(unknown)[0]
        raise RuleError(
            f"unknown key {key!r}{suffix}", path=where, line=line_of(key), expected="one of " + ", ".join(sorted(known))
        )


def _line_in_table(text: str, table: str, key: str) -> int | None:
    head = _line_of(text, f"[{table}]")
    if head is None:
        return _line_of(text, key)
    lines = text.splitlines()
    for number in range(head, len(lines)):
        stripped = lines[number].strip()
        if stripped.startswith("["):
            break
        if re.match(rf"{re.escape(key)}\s*=", stripped):
            return number + 1
    return head


def _table_key_lines(text: str, table: str) -> dict[str, int]:
    """Key → line of the keys of ``[table]`` (one pass; a key that this misses is looked up the slow way)."""
    out: dict[str, int] = {}
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            header = re.fullmatch(r"\[\s*([^\[\]]+?)\s*\]\s*(#.*)?", stripped)
            if header is not None:
                inside = header.group(1).strip("\"'") == table
                continue
            if not inside:
                continue
        if inside:
            m = re.match(r"([A-Za-z0-9_-]+)\s*=", stripped)
            if m:
                out.setdefault(m.group(1), number)
    return out


def _query_position(text: str, query: str) -> tuple[int, int]:
    """Line and column in the file where the query's first character stands."""
    m = re.search(r"^\s*query\s*=\s*('''|\"\"\"|'|\")", text, re.M)
    if not m:
        return 1, 1
    start = m.end()
    if m.group(1) in ("'''", '"""') and text[start : start + 1] == "\n":
        start += 1
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    return line, column


def _located(
    _exc: Exception | None,
    message: str,
    path: str,
    text: str,
    qline: int,
    qcol: int,
    line: int,
    column: int,
    expected: str | None,
) -> RuleError:
    file_line = qline + line - 1
    file_col = qcol + column - 1 if line == 1 else column
    if isinstance(_exc, QueryLimitError):
        return limit_error(message, path, file_line, file_col, expected or "")
    return RuleError(
        message,
        path=path,
        line=file_line,
        column=file_col,
        source_line=source_line(text, file_line),
        expected=expected,
    )


def _did_you_mean(name: str, known: set[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    return close[0] if close else None
