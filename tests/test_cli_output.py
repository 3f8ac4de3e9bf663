"""What the commands print for people and for scripts: tables cut to the terminal, one JSON
shape, one line for what every failed feed has in common, the progress line on a terminal."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.analysis.tables import MIN_COLUMN, common_failure, table
from tracker.core.jsonout import dumps
from tracker.core.types import CycleReport, FeedReport, FetchStatus

T0 = datetime(2026, 12, 4, 9, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.lists(st.text(max_size=80), min_size=3, max_size=3), max_size=6),
    width=st.integers(min_value=20, max_value=200),
)
def test_a_table_fits_the_width_it_is_given(rows: list[list[str]], width: int) -> None:
    out = table(("a", "bb", "ccc"), rows, width=width)
    for line in out.splitlines():
        # each column is cut to no less than MIN_COLUMN, so only then can a line be wider
        assert len(line) <= max(width, 3 * MIN_COLUMN + 4)


def test_a_wide_column_is_cut_with_an_ellipsis() -> None:
    out = table(("id", "headline"), [(1, "x" * 200)], width=40).splitlines()
    assert max(len(line) for line in out) <= 40 and out[2].endswith("…")
    assert table(("id", "headline"), [(1, "short")], width=40).splitlines()[2] == " 1  short"


class _Color(enum.Enum):
    RED = "red"


@dataclass
class _Row:
    when: datetime
    tags: tuple[str, ...]
    color: _Color


def test_one_json_shape() -> None:
    naive = datetime(2026, 12, 4, 9, 30)
    row = _Row(naive, ("a", "b"), _Color.RED)
    got = json.loads(dumps({"row": row, "at": T0.astimezone(timezone(timedelta(hours=2))), "set": {"x"}}))
    assert got == {
        "row": {"when": "2026-12-04T09:30:00+00:00", "tags": ["a", "b"], "color": "red"},
        "at": "2026-12-04T11:00:00+02:00",
        "set": ["x"],
    }
    assert dumps({"name": "Zürich"}) == '{"name": "Zürich"}'
    with pytest.raises(TypeError):
        dumps({"x": object()})


def _report(*feeds: FeedReport) -> CycleReport:
    return CycleReport(started_at=T0, finished_at=T0, feeds=feeds)


def _feed(n: int, status: FetchStatus, error: str | None) -> FeedReport:
    return FeedReport(feed_id=n, name=f"feed {n}", url=f"https://f{n}.example/rss", status=status, error=error)


def test_every_feed_failing_for_one_reason_is_said_in_one_line() -> None:
    dns = "[Errno -3] Temporary failure in name resolution"
    report = _report(*(_feed(n, FetchStatus.NETWORK, dns) for n in range(35)))
    assert common_failure(report) == "35/35 feeds failed: name resolution — is the network or proxy up?"
    tls = _report(*(_feed(n, FetchStatus.NETWORK, "SSL: CERTIFICATE_VERIFY_FAILED") for n in range(4)))
    assert "TLS" in (common_failure(tls) or "")
    mixed = _report(_feed(1, FetchStatus.HTTP_ERROR, "HTTP 500"), _feed(2, FetchStatus.HTTP_ERROR, "HTTP 503"))
    assert common_failure(mixed) == "2/2 feeds failed, all with http_error"


def test_no_line_when_some_feeds_worked_or_there_is_one_feed() -> None:
    dns = "Name or service not known"
    assert common_failure(_report(_feed(1, FetchStatus.NETWORK, dns), _feed(2, FetchStatus.OK, None))) is None
    assert common_failure(_report(_feed(1, FetchStatus.NETWORK, dns))) is None
