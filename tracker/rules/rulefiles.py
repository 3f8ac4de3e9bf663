"""Finding and reading rule files: which files, within which byte budgets, as TOML, with one clear
error per problem. No query is parsed here, so a command that only needs the rules' ids
(``tracker status``) reads them without loading the query parser or the topic model."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tracker.core.errors import RuleError

ENTITY_FILE = "entities.toml"
#: Bytes in one rule file or entities.toml, and in all of them together (checked before reading TOML).
MAX_FILE_BYTES = 500_000
MAX_TOTAL_BYTES = 2_000_000
#: Nesting of arrays and tables reported as too deep when the TOML reader gives up (by RecursionError).
_TOML_DEPTH = 32


def rule_files(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """(rule files, entity files) found under ``paths`` (files or directories)."""
    rules: list[Path] = []
    entities: list[Path] = []
    for path in paths:
        if path.is_dir():
            candidates = sorted(path.glob("*.toml"))
        elif path.is_file():
            candidates = [path]
        else:
            raise RuleError("no such file or directory", path=str(path))
        for file in candidates:
            (entities if file.name == ENTITY_FILE else rules).append(file)
    return rules, entities


def rule_ids(paths: Iterable[Path]) -> list[str]:
    """The ids the rule files declare, read without checking or compiling their queries (for
    commands that only name the rules, such as ``tracker status``). Raises RuleError for a file
    that cannot be read as TOML."""
    rule_paths, _ = rule_files(paths)
    budget = Budget()
    found = (read_toml(path, budget)[1].get("id") for path in rule_paths)
    return sorted({rid for rid in found if isinstance(rid, str)})


class Budget:
    """What is left of MAX_TOTAL_BYTES for the files still to read."""

    def __init__(self) -> None:
        self.left = MAX_TOTAL_BYTES


def read_toml(path: Path, budget: Budget | None = None) -> tuple[str, dict[str, Any]]:
    room = MAX_FILE_BYTES if budget is None else min(MAX_FILE_BYTES, budget.left)
    try:
        with path.open("rb") as fh:
            raw = fh.read(room + 1)
    except OSError as exc:
        raise RuleError(f"cannot read the file: {exc.strerror or exc}", path=str(path)) from None
    if len(raw) > room:
        if room < MAX_FILE_BYTES:
            message = f"this file brings the rule files to more than {MAX_TOTAL_BYTES:,} bytes"
            expected = f"at most {MAX_TOTAL_BYTES:,} bytes in all rule files and entities.toml"
        else:
            message, expected = f"file is larger than {MAX_FILE_BYTES:,} bytes", f"at most {MAX_FILE_BYTES:,} bytes"
        raise limit_error(message, str(path), 1, 1, expected)
    if budget is not None:
        budget.left -= len(raw)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RuleError("file is not UTF-8", path=str(path)) from None
    try:
        return text, tomllib.loads(text)
    except RecursionError:  # tomllib reads nested arrays and tables by recursion
        deep_line, deep_col = _deep_bracket(text)
        raise limit_error(
            "not valid TOML here: arrays or tables nested too deeply to read",
            str(path),
            deep_line,
            deep_col,
            f"at most {_TOML_DEPTH} nested arrays and tables",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"at line (\d+), column (\d+)", msg)
        line, col = (int(m.group(1)), int(m.group(2))) if m else (None, None)
        raise RuleError(
            f"not valid TOML: {re.sub(r' [(]at line.*', '', msg)}",
            path=str(path),
            line=line,
            column=col,
            source_line=source_line(text, line),
            expected="key = value",
        ) from None


def _deep_bracket(text: str) -> tuple[int, int]:
    """Line and column of the first ``[`` or ``{`` nested more than _TOML_DEPTH deep, outside strings and
    comments (1, 1 when there is none)."""
    depth, i, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else c
            i += len(quote)
            while i < n and not text.startswith(quote, i):
                if quote[0] == '"' and text[i] == "\\":
                    i += 1
                elif len(quote) == 1 and text[i] == "\n":
                    break
                i += 1
            i += len(quote)
            continue
        if c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in "[{":
            depth += 1
            if depth > _TOML_DEPTH:
                line = text.count("\n", 0, i) + 1
                return line, i - (text.rfind("\n", 0, i) + 1) + 1
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    return 1, 1


def limit_error(message: str, path: str, line: int | None, column: int | None, expected: str) -> RuleError:
    """A RuleError for a limit of rules/README.md: one line, without the source line (which may be huge)."""
    return RuleError(message, path=path, line=line or 1, column=column or 1, expected=expected)


def source_line(text: str, line: int | None) -> str | None:
    if line is None:
        return None
    lines = text.splitlines()
    return lines[line - 1] if 0 < line <= len(lines) else None
