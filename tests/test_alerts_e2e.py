"""Alerts end to end through the CLI: `tracker poll --once` against a real feed server on
127.0.0.1, sending to a real webhook receiver (``json://``, as text, Markdown and HTML) and
a real SMTP server (``mailto://``); bursts as one summary; a receiver that fails or hangs is
retried, reported and does not hold up the cycle; feed markup arrives inert; no secret in
any message, log line or listing."""

from __future__ import annotations

import email
import email.policy
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from .alertkit import RULE, Receiver, article, publish
from .conftest import HTTPServer
from .test_cli import tracker
from .test_digest import Inbox, free_port
from .test_postgres import DSN as PG_DSN
from .test_postgres import pg_url  # noqa: F401 - a fixture

pytestmark = pytest.mark.slow

HOSTILE = "Harbour board *votes* <script>alert(1)</script> [x](javascript:alert(2)) _now_"
SECRET = "hunter2-s3cr3t-Pw"


@pytest.fixture
def site() -> Iterator[HTTPServer]:
    server = HTTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield int(controller.port), inbox
    controller.stop()


def write_config(tmp_path: Path, site: HTTPServer, urls: list[str], extra: str = "") -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "harbour.toml").write_text(RULE, encoding="utf-8")
    cfg = tmp_path / "tracker.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/tracker.sqlite"\n\n[rules]\npaths = ["{rules}"]\n\n'
        "[fetch]\nallow_private_addresses = true\nextract_workers = 1\nper_host_per_minute = 0\n\n"
        f'[[feeds]]\nname = "Gazette"\nurl = "{site.url("/feed.xml")}"\n\n'
        f'[[alerts]]\nname = "harbour desk"\nrules = ["harbour"]\nurls = {json.dumps(urls)}\n'
        f'timezone = "Europe/Berlin"\n{extra}',
        encoding="utf-8",
    )
    return cfg


def rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "tracker.sqlite") as db:
        return db.execute(sql).fetchall()


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def html_tags(text: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(text)
    return parser.tags


def test_poll_sends_one_message_per_story_to_webhook_and_email_then_one_summary_for_a_burst(
    tmp_path: Path, site: HTTPServer, hook: Receiver, smtp: tuple[int, Inbox]
) -> None:
    smtp_port, inbox = smtp
    urls = [
        hook.url("/text"),
        hook.url("/md?format=markdown"),
        hook.url("/html?format=html"),
        f"mailto://127.0.0.1:{smtp_port}?mode=insecure&from=tracker@harlan.example&to=desk@harlan.example",
    ]
    cfg = write_config(tmp_path, site, urls)
    publish(site, {1: article(1), 2: article(2, HOSTILE)})
    done = tracker("--config", str(cfg), "poll", "--once")
    assert done.returncode == 0, done.stderr

    # Two new stories: one message each, to each URL.
    for path in ("/text", "/md", "/html"):
        assert len(hook.at(path)) == 2, (path, hook.posts)
    assert len(inbox.messages) == 2
    refs = {p.ref for p in hook.at("/text")}
    assert len(refs) == 2 and all(r.startswith("nt-") for r in refs)
    assert {p.ref for p in hook.at("/md")} == refs == {p.ref for p in hook.at("/html")}
    assert {m["X-Newstracker-Ref"] for m in inbox.messages} == refs
    first = next(p for p in hook.at("/text") if "item 1" in p.body["message"])
    text = first.body["message"]
    assert re.search(r"\[NEW\] .* for harbour board \(item 1\)", text)  # headline
    assert "Outlets: 127.0.0.1" in text and "Topic: Harbour board decisions" in text  # outlet, topic
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d CE", text)  # time, in the alert's timezone
    assert article(1)[1][0].split(". ")[0] in text  # snippet: the start of the text (the match was the headline)
    assert site.url("/a/1.html") in text  # link
    assert f"ref {first.ref}" in text
    assert first.body["title"] == "New story · Harbour board decisions"

    # The hostile headline arrives inert in every format.
    md = next(p for p in hook.at("/md") if "script" in p.body["message"]).body["message"]
    assert "\\<script\\>" in md and "\\*votes\\*" in md and "\\[x\\]\\(javascript" in md
    assert "](javascript" not in md and "<script>" not in md
    html = next(p for p in hook.at("/html") if "script" in p.body["message"]).body["message"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert {tag for tag, _ in html_tags(html)} <= {"a", "b", "br"}
    assert all(attrs["href"].startswith("http://127.0.0.1") for tag, attrs in html_tags(html) if tag == "a")
    mail = next(m for m in inbox.messages if "script" in str(m.get_body(("html", "plain")).get_content()))
    mail_html = str(mail.get_body(("html",)).get_content())
    assert "<script>" not in mail_html and "&lt;script&gt;" in mail_html

    # Nothing new: nothing sent.
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    assert len(hook.at("/text")) == 2 and len(inbox.messages) == 2

    # A burst of seven new stories: one summary per URL, listing each with its link.
    publish(site, {n: article(n, HOSTILE if n == 2 else None) for n in range(1, 10)})
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    summaries = hook.at("/text")[2:]
    assert len(summaries) == 1, [p.body["title"] for p in summaries]
    summary = summaries[0].body
    assert summary["title"] == "harbour desk: 7 new stories"
    for n in range(3, 10):
        assert f"(item {n})" in summary["message"] and site.url(f"/a/{n}.html") in summary["message"]
    assert len(hook.at("/md")) == len(hook.at("/html")) == 3 and len(inbox.messages) == 3
    # Every (alert, story, event) once, and the outbox says so.
    assert rows(tmp_path, "SELECT count(*), count(DISTINCT key) FROM alert_events") == [(9, 9)]
    assert rows(tmp_path, "SELECT status, count(*) FROM alert_sends GROUP BY status") == [("sent", 12)]

    listed = tracker("--config", str(cfg), "alerts", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    sent = json.loads(listed.stdout)
    assert len(sent) == 12 and {r["status"] for r in sent} == {"sent"}
    assert {r["ref"] for r in sent} >= refs
    table = tracker("--config", str(cfg), "alerts", "list", "--limit", "4")
    assert "harbour desk: 7 new stories" in table.stdout and "sent" in table.stdout


def test_failing_and_hanging_receivers_are_retried_reported_and_do_not_hold_up_polling(
    tmp_path: Path, site: HTTPServer, hook: Receiver
) -> None:
    hanging = Receiver(hang=30)
    try:
        urls = [hook.url("/ok"), hook.url("/broken"), hanging.url("/slow")]
        hook.fail_paths.add("/broken")
        cfg = write_config(tmp_path, site, urls, "timeout = 20\nbackoff = 0\n")
        cfg.write_text(cfg.read_text().replace("[fetch]\n", "[poll]\nalert_budget = 3\n\n[fetch]\n"))
        publish(site, {1: article(1)})
        t0 = time.monotonic()
        done = tracker("--config", str(cfg), "poll", "--once", "--format", "json")
        took = time.monotonic() - t0
        ended = datetime.now(UTC)
        assert done.returncode == 0, done.stderr
        after = (ended - datetime.fromisoformat(json.loads(done.stdout)["finished_at"])).total_seconds()
        print(f"poll --once, a receiver hanging 30 s: {took:.1f} s in all, {after:.1f} s after the cycle (budget 3 s)")
        # The 30 s hang (and the 20 s timeout) held the run up by the budget, and no more.
        assert after < 3 + 2.0, after
        assert len(hook.at("/ok")) == 1 and hook.tries.count("/broken") == 1
        assert "/slow" in hanging.tries and not hanging.posts
        state = dict(
            rows(tmp_path, "SELECT target, status || ':' || attempts || ':' || coalesce(error, '') FROM alert_sends")
        )
        broken = next(v for k, v in state.items() if "/broken" in k)
        assert broken.startswith("pending:1:") and "500" in broken, state

        status = tracker("--config", str(cfg), "status", "--format", "json")
        assert status.returncode == 0, status.stderr
        alerts = json.loads(status.stdout)["alerts"]
        failing = [c for c in alerts[0]["channels"] if c["failing"]]
        assert [c["target"] for c in failing] == [f"json://127.0.0.1:{hook.port}/broken"], alerts
        assert "500" in failing[0]["error"]
        text = tracker("--config", str(cfg), "status")
        assert "1 URLs FAILING" in text.stdout and "/broken: FAILING" in text.stdout

        # The receiver recovers: the next cycle sends it again (backoff 0), same ref; nothing else doubles.
        hook.fail_paths.clear()
        hanging.hang = 0
        rows(tmp_path, "UPDATE alert_sends SET next_attempt_at = '2000-01-01 00:00:00.000000' WHERE status = 'pending'")
        assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
        assert len(hook.at("/broken")) == 1 and len(hook.at("/ok")) == 1 and len(hanging.at("/slow")) == 1
        assert hook.at("/broken")[0].ref == hook.at("/ok")[0].ref == hanging.at("/slow")[0].ref
        assert rows(tmp_path, "SELECT DISTINCT status FROM alert_sends") == [("sent",)]
    finally:
        hanging.stop()


def test_no_secret_in_messages_logs_listings_or_status(tmp_path: Path, site: HTTPServer, hook: Receiver) -> None:
    urls = [
        hook.url("/ok").replace("json://", "json://desk:${HOOK_PW}@"),
        hook.url("/broken").replace("json://", f"json://desk:{SECRET}x@"),
    ]
    hook.fail_paths.add("/broken")
    cfg = write_config(tmp_path, site, urls)
    publish(site, {1: article(1)})
    env = {"HOOK_PW": SECRET}
    done = tracker("-vv", "--config", str(cfg), "poll", "--once", env=env)
    assert done.returncode == 0, done.stderr
    assert len(hook.at("/ok")) == 1
    assert hook.at("/ok")[0].headers["Authorization"].startswith("Basic ")  # the secret went where it belongs
    outputs = [
        done.stdout + done.stderr,
        json.dumps([p.body for p in hook.posts]),
        tracker("--config", str(cfg), "alerts", "list", "--format", "json", env=env).stdout,
        tracker("-vv", "--config", str(cfg), "status", "--format", "json", env=env).stdout,
        tracker("--config", str(cfg), "alerts", "test", "harbour desk", env=env).stdout,
        json.dumps(rows(tmp_path, "SELECT * FROM alert_sends")),
        json.dumps(rows(tmp_path, "SELECT * FROM alert_messages")),
    ]
    assert "alert harbour desk: sending" in outputs[0]  # the failure was logged ...
    for out in outputs:
        assert SECRET not in out  # ... without the password


def test_alerts_test_sends_a_sample_and_reports_each_url(tmp_path: Path, site: HTTPServer, hook: Receiver) -> None:
    cfg = write_config(tmp_path, site, [hook.url("/ok"), hook.url("/broken"), "json://127.0.0.1:${NOT_SET}/x"])
    hook.fail_paths.add("/broken")
    out = tracker("--config", str(cfg), "alerts", "test", "harbour desk")
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert lines[0].endswith("/ok: sent") and "FAILED" in lines[1] and "500" in lines[1]
    assert "${NOT_SET}" in lines[2] and "is not set" in lines[2]
    assert "Test message from newstracker" in hook.at("/ok")[0].body["message"]
    unknown = tracker("--config", str(cfg), "alerts", "test", "nobody")
    assert unknown.returncode == 2 and "no alert named 'nobody'" in unknown.stderr


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('urls = ["json://x"]\nevents = ["new_story", "earthquake"]', "alerts[0].events"),
        ('urls = ["json://x"]\nquiet = "22:00-7"', "alerts[0].quiet"),
        ('urls = ["json://x"]\ntimezone = "Europe/Atlantis"', "alerts[0].timezone"),
        ('urls = ["json://x"]\nmin_score = -1', "alerts[0].min_score"),
        ('urls = ["json://x"]\nrules = ["no-such-rule"]', "alerts[0].rules"),
        ('urls = ["nonsense://x"]', "alerts[0].urls[0]"),
        ("urls = []", "alerts[0].urls"),
        ('urls = ["json://x"]\nchannel = "#news"', "alerts[0].channel"),
    ],
)
def test_bad_alert_config_is_one_line_naming_file_and_key(tmp_path: Path, table: str, key: str) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "harbour.toml").write_text(RULE, encoding="utf-8")
    cfg = tmp_path / "tracker.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/t.sqlite"\n[rules]\npaths = ["{rules}"]\n'
        f'[[alerts]]\nname = "desk"\n{table}\n',
        encoding="utf-8",
    )
    out = tracker("--config", str(cfg), "poll", "--once")
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and str(cfg) in out.stderr and key in out.stderr, out.stderr
    assert not (tmp_path / "t.sqlite").exists()


def test_email_alert_arrives_with_html_and_ref(tmp_path: Path, site: HTTPServer, smtp: tuple[int, Inbox]) -> None:
    port, inbox = smtp
    url = f"mailto://127.0.0.1:{port}?mode=insecure&from=tracker@harlan.example&to=desk@harlan.example"
    cfg = write_config(tmp_path, site, [url])
    publish(site, {5: article(5)})
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    assert len(inbox.messages) == 1
    msg = email.message_from_bytes(inbox.messages[0].as_bytes(), policy=email.policy.default)
    assert inbox.envelopes[0] == ("tracker@harlan.example", ["desk@harlan.example"])
    assert msg["Subject"] == "New story · Harbour board decisions"
    ref = msg["X-Newstracker-Ref"]
    assert ref and ref.startswith("nt-")
    assert f"ref {ref}" in str(msg.get_body(("html", "plain")).get_content())


def test_quiet_hours_hold_messages_and_send_them_after_as_one_summary(
    tmp_path: Path, site: HTTPServer, hook: Receiver
) -> None:
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    local = datetime.now(ZoneInfo("Europe/Berlin"))

    def window(start: int, end: int) -> str:
        return f'quiet = "{local + timedelta(hours=start):%H:%M}-{local + timedelta(hours=end):%H:%M}"\n'

    cfg = write_config(tmp_path, site, [hook.url("/q")], window(-1, 1))  # quiet now
    publish(site, {1: article(1), 2: article(2)})
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    assert hook.tries == []
    status = json.loads(tracker("--config", str(cfg), "status", "--format", "json").stdout)["alerts"][0]
    assert status["held_events"] == 2 and status["quiet_now"] is True

    cfg = write_config(tmp_path, site, [hook.url("/q")], window(2, 3))  # the quiet hours are over
    publish(site, {1: article(1), 2: article(2), 3: article(3)})
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    (summary,) = hook.at("/q")
    assert summary.body["title"] == "harbour desk: 3 new stories"
    assert "held during the quiet hours" in summary.body["message"] and "Europe/Berlin" in summary.body["message"]
    for n in (1, 2, 3):
        assert f"(item {n})" in summary.body["message"]


def test_run_reports_a_failing_url_in_healthz_and_metrics(tmp_path: Path, site: HTTPServer, hook: Receiver) -> None:
    import signal
    import urllib.error
    import urllib.request

    from .test_service import start_run

    port = free_port()
    hook.fail_paths.add("/broken")
    cfg = write_config(tmp_path, site, [hook.url("/ok"), hook.url("/broken")])
    cfg.write_text(
        cfg.read_text().replace(
            "[fetch]\n", f"[poll]\ninterval_minutes = 1\n\n[service]\nmetrics_port = {port}\n\n[fetch]\n"
        )
    )
    publish(site, {1: article(1)})
    proc = start_run(cfg)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        metrics = ""
        while "tracker_alert_urls_failing 1.0" not in metrics:
            assert proc.poll() is None and time.monotonic() < deadline, metrics
            time.sleep(0.5)
            try:
                metrics = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
            except (urllib.error.URLError, ConnectionError):
                metrics = ""
        assert "tracker_alerts_sent_total 1.0" in metrics
        assert 'tracker_alert_send_failures_total{alert="harbour desk"} 1.0' in metrics
        health = urllib.request.urlopen(base + "/healthz", timeout=5)
        body = json.loads(health.read())
        assert health.status == 200 and body["status"] == "degraded", body  # still polling: 200
        (failing,) = body["alerts"]["failing"]
        assert failing["alert"] == "harbour desk" and failing["url"].endswith("/broken") and "500" in failing["error"]
        assert len(hook.at("/ok")) == 1
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err


def test_an_update_says_what_it_adds(tmp_path: Path, site: HTTPServer, hook: Receiver) -> None:
    from .test_story_cli import ORIGINAL, REWRITE

    cfg = write_config(tmp_path, site, [hook.url("/u")])
    first = {1: ("Harbour board approves $86m Quayside terminal expansion", ORIGINAL)}
    publish(site, first)
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    update = (
        *REWRITE,
        "Harbour board treasurer Ingrid Castellano said the board would borrow $40 million of the cost.",
    )
    publish(site, {**first, 2: ("Quayside terminal to grow after harbour board vote", update)})
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    roles = rows(tmp_path, "SELECT story_role FROM items ORDER BY id")
    assert roles == [("new",), ("update",)], roles
    new, upd = hook.at("/u")
    assert new.body["title"] == "New story · Harbour board decisions"
    assert upd.body["title"] == "Story update · Harbour board decisions"
    assert "[UPDATE] Quayside terminal to grow" in upd.body["message"]
    line = next(x for x in upd.body["message"].splitlines() if x.startswith("New: "))
    assert "Castellano" in line or "$40 million" in line, line


@pytest.mark.skipif(not PG_DSN, reason="TRACKER_TEST_PG is not set (see .ci/postgres)")
def test_alerts_on_postgresql(tmp_path: Path, site: HTTPServer, hook: Receiver, pg_url: str) -> None:  # noqa: F811
    cfg = write_config(tmp_path, site, [hook.url("/pg")])
    cfg.write_text(cfg.read_text().replace(f'url = "sqlite:///{tmp_path}/tracker.sqlite"', f'url = "{pg_url}"'))
    publish(site, {1: article(1), 2: article(2)})
    for _ in range(2):
        done = tracker("--config", str(cfg), "poll", "--once")
        assert done.returncode == 0, done.stderr
    assert len(hook.at("/pg")) == 2 and len({p.ref for p in hook.at("/pg")}) == 2
    listed = json.loads(tracker("--config", str(cfg), "alerts", "list", "--format", "json").stdout)
    assert [r["status"] for r in listed] == ["sent", "sent"]
    status = json.loads(tracker("--config", str(cfg), "status", "--format", "json").stdout)
    assert status["alerts"][0]["channels"][0]["sent"] == 2
