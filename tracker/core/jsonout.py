"""One JSON shape for every command's machine output: times as ISO 8601 with the ``T`` and
an offset (a naive time is UTC), tuples and sets as arrays, enums as their value, records
(dataclasses) as objects, text as UTF-8 (not escaped)."""

from __future__ import annotations

import dataclasses
import enum
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any


def plain_value(value: Any) -> Any:
    """``value`` as JSON can hold it."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(value: Any, *, indent: int | None = None) -> str:
    return json.dumps(value, default=plain_value, ensure_ascii=False, indent=indent)
