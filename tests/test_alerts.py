"""Alerts, piece by piece: the [[alerts]] config, quiet hours, rendering with feed text
escaped for each format, the spike and "New:" hooks, and a round of run_alerts against a
real store and a real webhook receiver (no mocks)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tracker.alerts.channels import Channel, channels_of, deliver, scrub
from tracker.alerts.delivery import AlertsReport, run_alerts
from tracker.alerts.events import SpikeEvent, story_records
from tracker.alerts.render import render, safe_url, title
from tracker.core.alertconfig import AlertConfig
from tracker.core.config import parse_config
from tracker.core.errors import ConfigError
from tracker.store.database import Store

from .alertkit import Receiver

HOSTILE = "Board *votes* <script>alert(1)</script> [x](javascript:alert(2)) _now_ `code` <img src=x onerror=y>"


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.stop()


def alerts_of(table: dict[str, Any], env: dict[str, str] | None = None) -> tuple[AlertConfig, ...]:
    return parse_config({"alerts": [{"name": "desk", **table}]}, Path("/etc/t.toml"), env or {}).alerts


def test_config_reads_alerts_and_fills_secrets_from_the_environment() -> None:
    (alert,) = alerts_of(
        {
            "urls": ["json://desk:${HOOK_PW}@127.0.0.1:9/x", "ntfy://${TOPIC}"],
            "rules": ["harbour"],
            "events": ["new_story", "spike"],
            "min_score": 2,
            "quiet": "22:00-07:00",
            "timezone": "Europe/Berlin",
        },
        {"HOOK_PW": "pw-123"},
    )
    assert alert.urls[0] == "json://desk:${HOOK_PW}@127.0.0.1:9/x"  # as written: what is shown
    assert alert.expanded[0] == "json://desk:pw-123@127.0.0.1:9/x"  # what is sent
    assert alert.missing == ((), ("TOPIC",))
    assert "pw-123" in alert.secrets and "pw-123" not in repr(alert)
    assert alert.quiet == (time(22), time(7)) and alert.events == ("new_story", "spike")
    assert alert.min_score == 2.0 and alert.rules == ("harbour",)
    summary = parse_config({"alerts": [{"name": "d", "urls": ["slack://T/B/tok"]}]}, Path("/t.toml"), {}).summary()
    assert summary["alerts"] == {"d": ["slack"]}  # no token in the start-up log line


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ({"urls": "json://x", "events": ["boom"]}, "alerts[0].events", "unknown event 'boom'"),
        ({"urls": ["json://x"], "quiet": "7-22"}, "alerts[0].quiet", "expected HH:MM-HH:MM"),
        ({"urls": ["json://x"], "quiet": "07:00-07:00"}, "alerts[0].quiet", "same time"),
        ({"urls": ["json://x"], "timezone": "Nowhere/Town"}, "alerts[0].timezone", "unknown IANA timezone"),
        ({"urls": ["json://x"], "burst": 0}, "alerts[0].burst", "out of range"),
        ({"urls": ["json://x"], "timeout": 0}, "alerts[0].timeout", "out of range"),
        ({"urls": ["json://x"], "min_score": "high"}, "alerts[0].min_score", "expected a number"),
        ({"urls": ["not a url"]}, "alerts[0].urls", "not a notification URL"),
        ({}, "alerts[0].urls", "at least one"),
        ({"urls": ["json://x"], "to": "me"}, "alerts[0].to", "unknown key"),
    ],
)
def test_bad_values_name_the_file_and_the_key(table: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        alerts_of(table)
    assert str(err.value).startswith(f"/etc/t.toml: {key}: ") and words in str(err.value)
    assert "\n" not in str(err.value)


def test_quiet_hours_across_midnight_in_the_alerts_timezone() -> None:
    (alert,) = alerts_of({"urls": ["json://x"], "quiet": "22:00-07:00", "timezone": "Europe/Berlin"})
    berlin = {  # UTC hour in December (CET = UTC+1) -> quiet?
        20: False,
        21: True,  # 22:00 in Berlin
        23: True,
        5: True,
        6: False,  # 07:00 in Berlin
        12: False,
    }
    for hour, quiet in berlin.items():
        assert alert.is_quiet(datetime(2026, 12, 5, hour, 0, tzinfo=UTC)) is quiet, hour
    (day,) = alerts_of({"urls": ["json://x"], "quiet": "09:00-17:00"})
    assert day.is_quiet(datetime(2026, 12, 5, 9, 0, tzinfo=UTC)) and not day.is_quiet(
        datetime(2026, 12, 5, 17, 0, tzinfo=UTC)
    )


def story_event(headline: str = HOSTILE, url: str = "https://news.example/a?b=1&c=2") -> dict[str, Any]:
    return {
        "event": "new_story",
        "headline": headline,
        "url": url,
        "outlets": ["Gazette <b>", "Herald"],
        "at": "2026-12-05T09:30:00+00:00",
        "topic": "harbour",
        "topic_title": "Harbour board decisions",
        "snippet": "A *snippet* with [a](javascript:x) link",
        "new": None,
    }


def content(*events: dict[str, Any], kind: str = "event") -> dict[str, Any]:
    return {
        "alert": "desk",
        "kind": kind,
        "timezone": "Europe/Berlin",
        "held": False,
        "quiet": None,
        "events": list(events),
    }


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_feed_text_is_inert_in_html_markdown_and_text() -> None:
    msg = content(story_event())
    html = render(msg, "html", "nt-1")
    parser = _Tags()
    parser.feed(html)
    assert {t for t, _ in parser.tags} <= {"a", "b", "br"}
    assert [a["href"] for t, a in parser.tags if t == "a"] == ["https://news.example/a?b=1&c=2"] * 2
    assert "&lt;script&gt;" in html and "&lt;img" in html and "Gazette &lt;b&gt;" in html
    md = render(msg, "markdown", "nt-1")
    # Every markup character of the feed text is escaped; the one link is ours, to the article.
    assert "\\<script\\>" in md and "\\*votes\\*" in md and "\\_now\\_" in md and "\\`code\\`" in md
    assert "\\[x\\]\\(javascript:alert\\(2\\)\\)" in md and "\\[a\\]\\(javascript:x\\)" in md
    assert re.findall(r"(?<!\\)\]\(<([^>]*)>\)", md) == ["https://news.example/a?b=1&c=2"] * 2
    text = render(msg, "text", "nt-1")
    assert HOSTILE in text and text.endswith("ref nt-1")
    assert title(msg) == "New story · Harbour board decisions"  # no feed text in a title


def test_markdown_parses_to_our_links_and_feed_text_only() -> None:
    markdown_it = pytest.importorskip("markdown_it")
    md = render(content(story_event(HOSTILE + " @everyone 1. <b>x</b> &amp; ~~gone~~ # h")), "markdown", "nt-1")
    tokens = [
        t
        for block in markdown_it.MarkdownIt("commonmark").enable("strikethrough").parse(md)
        for t in (block.children or [block])
    ]
    kinds = {t.type for t in tokens}
    assert not kinds & {"html_inline", "html_block", "em_open", "s_open", "code_inline", "heading_open"}, kinds
    assert [t.attrs["href"] for t in tokens if t.type == "link_open"] == ["https://news.example/a?b=1&c=2"] * 2
    shown = "".join(t.content for t in tokens if t.type == "text")
    assert "<script>alert(1)</script>" in shown and "[x](javascript:alert(2))" in shown and "*votes*" in shown


def test_only_http_links_are_made() -> None:
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("data:text/html,<script>") is None
    assert safe_url("urn:guid:123") is None
    assert safe_url('https://x.example/a b"<c>') == "https://x.example/a%20b%22%3Cc%3E"
    md = render(content(story_event(url="javascript:alert(1)")), "markdown", "r")
    html = render(content(story_event(url="javascript:alert(1)")), "html", "r")
    assert "](" not in md.replace("\\](", "") and "href" not in html


def test_summary_lists_every_event_with_its_link() -> None:
    events = [story_event(f"Story {i}", f"https://news.example/{i}") for i in range(40)]
    events[3] = {**events[3], "event": "update"}
    msg = content(*events, kind="summary")
    assert title(msg) == "desk: 39 new stories, 1 update"
    text = render(msg, "text", "nt-9")
    for i in range(40):
        assert f"Story {i} " in text and f"https://news.example/{i}" in text
    assert "[UPDATE] Story 3" in text


def test_spike_and_update_events_go_through_the_same_rendering() -> None:
    spike = SpikeEvent(
        "harbour",
        datetime(2026, 12, 5, 6, tzinfo=UTC),
        datetime(2026, 12, 5, 12, tzinfo=UTC),
        count=14,
        baseline=2.5,
        stories=(("Ferry *strike*", "https://news.example/s"),),
    ).record({"harbour": "Harbour board decisions"})
    assert spike["key"] == "spike:harbour:2026-12-05T06:00:00+00:00"
    text = render(content(spike["payload"]), "markdown", "r")
    assert "14 articles" in text and "usual 2.5" in text and "[Ferry \\*strike\\*](<https://news.example/s>)" in text
    assert title(content(spike["payload"])) == "Spike · Harbour board decisions"
    row = {
        "item_id": 7,
        "rule_id": "harbour",
        "snippet": "Second sentence.",
        "lede": "",
        "story_id": 3,
        "story_role": "update",
        "title": "Terminal cost rises",
        "url": "https://news.example/7",
        "outlet": "herald.example",
        "at": datetime(2026, 12, 5, tzinfo=UTC),
    }
    (update,) = story_records([row], {3: ["gazette.example", "herald.example"]}, {}, lambda item: f"cost now {item}0 m")
    assert update["key"] == "update:3:7" and update["payload"]["new"] == "cost now 70 m"
    assert "New: cost now 70 m" in render(content(update["payload"]), "text", "r")


def test_errors_never_carry_the_secret(hook: Receiver) -> None:
    hook.fail_paths.add("/x")
    (alert,) = alerts_of({"urls": [hook.url("/x").replace("json://", "json://u:${PW}@")]}, {"PW": "pa55-w0rd-XYZ"})
    (channel,) = channels_of(alert)
    with pytest.raises(Exception) as err:
        deliver(channel, "t", content(story_event()), "nt-1")
    assert "500" in str(err.value) and "pa55-w0rd-XYZ" not in str(err.value)
    assert "pa55-w0rd-XYZ" not in channel.target() and "pa55" not in repr(channel)
    assert scrub("failed for json://u:pa55-w0rd-XYZ@h/x (pa55-w0rd-XYZ)", ["pa55-w0rd-XYZ"]).count("pa55") == 0


def test_a_round_takes_on_spikes_composes_and_confirms(store: Store, hook: Receiver) -> None:
    (alert,) = alerts_of({"urls": [hook.url("/s")], "events": ["spike"], "rules": ["harbour"]})
    config = replace(
        parse_config({}, Path("/etc/t.toml"), {}),
        alerts=(alert,),
    )
    now = datetime.now(UTC)
    spike = SpikeEvent("harbour", now - timedelta(hours=6), now, count=9, baseline=1.0)
    other = SpikeEvent("weather", now - timedelta(hours=6), now, count=9, baseline=1.0)  # not followed
    report = run_alerts(config, store, start=now, rule_titles={"harbour": "Harbour"}, spikes=[spike, other])
    assert (report.events, report.messages, report.sent, report.failed) == (1, 1, 1, 0)
    assert len(hook.at("/s")) == 1 and "[SPIKE] Harbour: 9 articles" in hook.at("/s")[0].body["message"]
    again = run_alerts(config, store, start=now, rule_titles={}, spikes=[spike])  # the same spike: taken on once
    assert again == AlertsReport() and len(hook.at("/s")) == 1


def test_a_budget_bounds_the_wait_for_a_hanging_url(store: Store) -> None:
    slow = Receiver(hang=5)
    try:
        (alert,) = alerts_of({"urls": [slow.url("/h")], "events": ["spike"], "timeout": 4})
        config = replace(parse_config({}, Path("/t.toml"), {}), alerts=(alert,))
        now = datetime.now(UTC)
        t0 = datetime.now(UTC)
        report = run_alerts(
            config, store, start=now, rule_titles={}, budget=0.5, spikes=[SpikeEvent("x", now, now, 3, 1.0)]
        )
        waited = (datetime.now(UTC) - t0).total_seconds()
        assert waited < 2.0 and report.unfinished == 1, (waited, report)
        with store.engine.connect() as conn:
            status, attempts, until = conn.exec_driver_sql(
                "SELECT status, attempts, next_attempt_at FROM alert_sends"
            ).one()
        assert (status, attempts) == ("pending", 1)  # claimed: re-sent only if it never confirms
        assert json.dumps(until) > json.dumps(str(now))
    finally:
        slow.stop()


def test_channel_identity_follows_the_url_as_written() -> None:
    a = Channel("desk", "json://h/${X}", "json://h/one")
    b = Channel("desk", "json://h/${X}", "json://h/two")  # the secret changed, the channel did not
    assert a.key == b.key and a.key != Channel("other", "json://h/${X}", "json://h/one").key


def test_logs_never_carry_the_secret(store: Store, hook: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hook.fail_paths.update({"/x", "/y"})
    urls = [
        hook.url("/x").replace("json://", "json://u:${PW}@"),
        hook.url("/y").replace("json://", "json://u:L1teral-Pw@"),
    ]
    (alert,) = alerts_of({"urls": urls, "events": ["spike"]}, {"PW": "pa55-w0rd-XYZ"})
    config = replace(parse_config({}, Path("/t.toml"), {}), alerts=(alert,))
    now = datetime.now(UTC)
    report = run_alerts(config, store, start=now, rule_titles={}, spikes=[SpikeEvent("x", now, now, 3, 1.0)])
    assert report.failed == 2 and len(report.failing) == 2
    assert "sending nt-" in caplog.text and "500" in caplog.text  # the failures are logged ...
    for secret in ("pa55-w0rd-XYZ", "L1teral-Pw"):  # ... without the passwords
        assert secret not in caplog.text and all(secret not in t for _, t in report.failing)


def test_two_senders_at_once_send_each_message_once(store: Store) -> None:
    """Two workers running a round at the same time (as on PostgreSQL with several
    `tracker run`): each event is taken on by one, each message sent by one."""
    import threading

    slow = Receiver(hang=0.05)
    try:
        (alert,) = alerts_of({"urls": [slow.url("/w")], "events": ["spike"], "burst": 1000})
        config = replace(parse_config({}, Path("/t.toml"), {}), alerts=(alert,))
        now = datetime.now(UTC)
        spikes = [SpikeEvent(f"topic{i}", now, now, 5, 1.0) for i in range(12)]
        reports: list[AlertsReport] = []

        def worker() -> None:
            reports.append(run_alerts(config, store, start=now, rule_titles={}, spikes=spikes))

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sum(r.events for r in reports) == 12 and sum(r.messages for r in reports) == 12
        assert sum(r.sent for r in reports) == 12
        refs = [p.ref for p in slow.at("/w")]
        assert len(refs) == len(set(refs)) == 12
    finally:
        slow.stop()


def test_alerts_list_without_any_says_so(tmp_path: Path) -> None:
    from .test_cli import tracker

    db = tmp_path / "t.sqlite"
    assert tracker("--db", str(db), "init").returncode == 0
    shown = tracker("--db", str(db), "alerts", "list")
    assert shown.returncode == 0 and shown.stdout.startswith("No alert messages yet") and "[[alerts]]" in shown.stdout
    assert tracker("--db", str(db), "alerts", "list", "--format", "json").stdout.strip() == "[]"
