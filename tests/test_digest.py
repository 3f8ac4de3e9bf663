"""Digests end to end: a real SMTP server on 127.0.0.1 (aiosmtpd), `tracker poll --once`,
`tracker digest send` / `preview`, exactly-once delivery across failures and crashes, and
the HTML digest rendered in headless Chromium."""

from __future__ import annotations

import contextlib
import email
import email.policy
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from tracker.core.config import DigestConfig, load_config
from tracker.digest.delivery import Sender, due, send_digest
from tracker.digest.queries import attach_message, record_run, runs
from tracker.digest.render import message, segments
from tracker.service.app import open_store

from .conftest import HTTPServer, Response
from .feedkit import HTML_HEADERS, RSS_HEADERS, Entry, page, rss
from .test_cli import tracker
from .test_story_cli import ORIGINAL, OTHER, REWRITE

pytestmark = pytest.mark.slow

# Our own writing: two harbour-board stories; one title carries markup that must show as text.
TERMINAL = ORIGINAL[:3]
ENGINEER = OTHER
TRAMS = (
    "The harbour board also agreed to study a tram link from the Quayside terminal to the old town, "
    "after councillors said buses on Dock Road could not cope with the extra ferry passengers.",
    "A consultant's report on the route and its cost is due before the board's summer recess, and "
    "the board said it would hold two public meetings on the idea in the spring.",
    "Residents of the Dock Road area have asked for the study for years, citing traffic and noise.",
)
MARKUP_TITLE = "Harbour board backs <script>alert('x')</script> ferry terminal <b>expansion</b>"
TITLES = {"harbour": "Harbour board decisions"}
#: what the site serves first: two harbour-board stories
FIRST_TWO = [
    ("terminal", MARKUP_TITLE, TERMINAL),
    ("engineer", "Harbour board suspends engineer", ENGINEER),
]
RULE = """id = "harbour"
title = "Harbour board decisions"
query = 'harbour AND board'
"""


class Inbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse: list[str] = []  #: replies to give (e.g. "451 try later") before accepting

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return self.refuse.pop(0)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        with contextlib.suppress(AssertionError):  # a test may have stopped it already
            controller.stop()


def smtp_port(controller: Controller) -> int:
    return int(controller.port)


@pytest.fixture
def site() -> Iterator[HTTPServer]:
    server = HTTPServer().start()
    try:
        publish(server, FIRST_TWO)
        yield server
    finally:
        server.stop()


def publish(server: HTTPServer, articles: list[tuple[str, str, tuple[str, ...]]]) -> None:
    entries = []
    for slug, title, paragraphs in articles:
        server.routes[f"/{slug}.html"] = Response(body=page(title, paragraphs), headers=HTML_HEADERS)
        entries.append(Entry(slug=slug, title=title, link=server.url(f"/{slug}.html"), guid=slug))
    server.routes["/feed.xml"] = Response(body=rss(entries, title="Harlan Bay Gazette"), headers=RSS_HEADERS)


def write_config(tmp_path: Path, site: HTTPServer, port: int, extra: str = "") -> Path:
    rules = tmp_path / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "harbour.toml").write_text(RULE, encoding="utf-8")
    cfg = tmp_path / "tracker.toml"
    cfg.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/tracker.sqlite"\n\n'
        f'[rules]\npaths = ["{rules}"]\n\n'
        f'[[feeds]]\nname = "Gazette"\nurl = "{site.url("/feed.xml")}"\n\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nsender = "tracker@harlan.example"\ntimeout = 5\n\n'
        '[[digests]]\nname = "harbour desk"\nto = ["desk@harlan.example", "editor@harlan.example"]\n'
        f'rules = ["harbour"]\nat = "07:00"\ntimezone = "Europe/Berlin"\n{extra}',
        encoding="utf-8",
    )
    return cfg


def parts(msg: EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): part.get_content() for part in msg.walk() if not part.is_multipart()}


def db_rows(tmp_path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "tracker.sqlite") as db:
        return db.execute(sql).fetchall()


def leave_interrupted_run(config: Any, store: Any, now: datetime) -> EmailMessage:
    """What a run that died after recording its message (and perhaps sending it) leaves."""
    from tracker.digest.delivery import compose

    sub = config.digests[0]
    digest, floor = compose(config, store, sub, TITLES, now)
    run_id = record_run(
        store.engine, sub.name, since=floor, now=now, recipients=sub.to, deliveries=digest.deliveries, n_stories=2
    )
    msg = message(digest, sender=config.smtp.sender, to=sub.to, msgid_key=f"digest-{run_id}")
    attach_message(store.engine, run_id, str(msg["Message-ID"]), str(msg["Subject"]), msg.as_bytes())
    return msg


def test_digest_is_delivered_once_with_both_parts_and_escaped_markup(
    tmp_path: Path, site: HTTPServer, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    cfg = write_config(tmp_path, site, smtp_port(controller))
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0

    sent = tracker("--config", str(cfg), "digest", "send", "--now")
    assert sent.returncode == 0, sent.stderr
    assert "harbour desk: sent 2 stories" in sent.stdout
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert inbox.envelopes[0] == ("tracker@harlan.example", ["desk@harlan.example", "editor@harlan.example"])
    assert msg.get_content_type() == "multipart/alternative"
    assert "2 new stories in 1 topic" in msg["Subject"]
    assert datetime.now(UTC).strftime("%Y-%m-") in msg["Subject"]
    for header in ("From", "To", "Date", "Message-ID", "List-Id"):
        assert msg[header], header
    body = parts(msg)
    html, text = body["text/html"], body["text/plain"]
    # The title's markup is text: escaped in the HTML, verbatim in the plain part.
    assert "<script>alert" not in html and "&lt;script&gt;alert(" in html
    assert "<b>expansion</b>" not in html and "&lt;b&gt;expansion&lt;/b&gt;" in html
    assert "<script>alert('x')</script>" in text
    assert "Harbour board decisions" in html and "NEW" in html
    assert "[NEW]" in text and "Why: rule harbour matched" in text
    assert "[harbour]" in text.lower() or "[Harbour]" in text  # matched terms highlighted
    assert "CET" in text or "CEST" in text  # times in the subscriber's timezone

    again = tracker("--config", str(cfg), "digest", "send", "--now")
    assert again.returncode == 0
    assert "nothing new" in again.stdout
    assert len(inbox.messages) == 1
    assert [r[0] for r in db_rows(tmp_path, "SELECT status FROM digest_runs ORDER BY id")] == ["sent", "empty"]

    # A new story arrives: the next digest carries it alone.
    publish(
        site,
        [
            *FIRST_TWO,
            ("trams", "Harbour board to study Quayside tram link", TRAMS),
        ],
    )
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    third = tracker("--config", str(cfg), "digest", "send", "--now")
    assert third.returncode == 0, third.stderr
    assert len(inbox.messages) == 2
    latest = parts(inbox.messages[1])["text/plain"]
    assert "tram link" in latest and "suspends engineer" not in latest


def test_smtp_down_fails_cleanly_and_the_next_run_delivers(
    tmp_path: Path, site: HTTPServer, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    port = smtp_port(controller)
    cfg = write_config(tmp_path, site, port)
    cfg.write_text(cfg.read_text().replace("timeout = 5\n", "timeout = 5\nbackoff = 0.1\n"))
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    controller.stop()

    down = tracker("--config", str(cfg), "digest", "send", "--now")
    assert down.returncode == 1
    assert "FAILED" in down.stdout and "127.0.0.1" in down.stdout
    status, error, attempts = db_rows(tmp_path, "SELECT status, error, attempts FROM digest_runs")[0]
    assert status == "failed" and f"127.0.0.1:{port}" in error and attempts == 3
    assert db_rows(tmp_path, "SELECT count(*) FROM digest_deliveries") == [(0,)]  # items released

    restarted = Controller(inbox, hostname="127.0.0.1", port=port)
    restarted.start()
    try:
        up = tracker("--config", str(cfg), "digest", "send", "--now")
        assert up.returncode == 0, up.stdout + up.stderr
    finally:
        restarted.stop()
    assert len(inbox.messages) == 1
    assert "2 new stories" in inbox.messages[0]["Subject"]


@pytest.mark.parametrize(
    ("reply", "status", "waits", "delivered"),
    [("451 4.3.0 try again later", "sent", [0.5], 1), ("554 5.7.1 rejected", "failed", [], 0)],
)
def test_a_transient_refusal_is_retried_a_permanent_one_is_not(
    tmp_path: Path,
    site: HTTPServer,
    smtp: tuple[Controller, Inbox],
    reply: str,
    status: str,
    waits: list[float],
    delivered: int,
) -> None:
    controller, inbox = smtp
    cfg = write_config(tmp_path, site, smtp_port(controller))
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    inbox.refuse = [reply]
    config = load_config(str(cfg))
    slept: list[float] = []
    sender = Sender(attempts=3, backoff=0.5, sleep=slept.append)
    outcome = send_digest(config, open_store(config), config.digests[0], TITLES, sender=sender)
    assert outcome.status == status and slept == waits and len(inbox.messages) == delivered
    assert runs(open_store(config).engine)[0]["attempts"] == len(waits) + 1
    if status == "failed":
        assert reply[:3] in (outcome.error or "")


def test_crash_after_sending_resends_the_same_message_not_a_new_digest(
    tmp_path: Path, site: HTTPServer, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    cfg = write_config(tmp_path, site, smtp_port(controller))
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    config = load_config(str(cfg))
    store = open_store(config)
    sub = config.digests[0]
    titles = TITLES
    now = datetime.now(UTC)
    msg = leave_interrupted_run(config, store, now)

    # While its send could still be running elsewhere, the run is left alone...
    busy = send_digest(config, store, sub, titles, now=now + timedelta(seconds=5), sender=Sender(sleep=lambda _: None))
    assert busy.resent == 0 and busy.status == "empty" and inbox.messages == []
    # ...once it cannot be, it is sent again as it was, and its items go in no other digest.
    later = now + timedelta(hours=1)
    outcome = send_digest(config, store, sub, titles, now=later, sender=Sender(sleep=lambda _: None))
    assert outcome.resent == 1 and outcome.status == "empty"
    assert len(inbox.messages) == 1
    assert inbox.messages[0]["Message-ID"] == msg["Message-ID"]
    assert [r["status"] for r in runs(store.engine)] == ["sent", "empty", "empty"]


def test_preview_writes_three_files_and_records_nothing(tmp_path: Path, site: HTTPServer) -> None:
    cfg = write_config(tmp_path, site, 9)
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    out = tmp_path / "preview"
    shown = tracker("--config", str(cfg), "digest", "preview", "--out", str(out), "--since", "2000-01-01")
    assert shown.returncode == 0, shown.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["harbour-desk.eml", "harbour-desk.html", "harbour-desk.txt"]
    eml = email.message_from_bytes((out / "harbour-desk.eml").read_bytes(), policy=email.policy.default)
    assert eml.get_content_type() == "multipart/alternative"
    assert db_rows(tmp_path, "SELECT count(*) FROM digest_runs") == [(0,)]

    unknown = tracker("--config", str(cfg), "digest", "preview", "--out", str(out), "--name", "nope")
    assert unknown.returncode == 2 and "nope" in unknown.stderr and "harbour desk" in unknown.stderr


def test_segments_never_produce_markup() -> None:
    pieces = segments("Board <b>votes</b> on the harbour plan", ["harbour", "board"])
    assert pieces == [("Board", True), (" <b>votes</b> on the ", False), ("harbour", True), (" plan", False)]
    assert segments("nothing here", []) == [("nothing here", False)]


@pytest.mark.parametrize(
    ("now", "last", "expected"),
    [
        ("2026-03-02T05:30:00+00:00", None, True),  # never sent
        ("2026-03-02T05:30:00+00:00", "2026-03-01T06:01:00+00:00", False),  # 06:30 Berlin, before 07:00
        ("2026-03-02T06:05:00+00:00", "2026-03-01T06:01:00+00:00", True),  # 07:05 Berlin
        ("2026-03-02T06:05:00+00:00", "2026-03-02T06:01:00+00:00", False),  # already sent today
    ],
)
def test_due_uses_the_subscription_timezone(now: str, last: str | None, expected: bool) -> None:
    sub = DigestConfig(name="d", to=("a@b.example",), at="07:00", timezone="Europe/Berlin")
    when = datetime.fromisoformat(now)
    assert due(sub, when, datetime.fromisoformat(last) if last else None) is expected


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def headless(profile: Path) -> list[str]:
    """Chromium, headless, with nothing reaching out to the network, and a fresh profile."""
    assert CHROMIUM is not None
    return [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (.ci/run installs Debian's chromium)")
def test_html_digest_renders_in_headless_chromium(tmp_path: Path, site: HTTPServer) -> None:
    cfg = write_config(tmp_path, site, 9)
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    out = tmp_path / "preview"
    assert (
        tracker("--config", str(cfg), "digest", "preview", "--out", str(out), "--since", "2000-01-01").returncode == 0
    )
    html = out / "harbour-desk.html"
    shot = Path(__file__).resolve().parent.parent / "build" / "digest.png"
    shot.parent.mkdir(exist_ok=True)
    shot.unlink(missing_ok=True)
    result = subprocess.run(
        [
            *headless(tmp_path / "chromium"),
            "--hide-scrollbars",
            "--window-size=720,1100",
            f"--screenshot={shot}",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.exists(), result.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # a page with content, not a blank frame
    # The page has no script to run: the escaped title stays text.
    dom = subprocess.run(
        [*headless(tmp_path / "c2"), "--dump-dom", html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "&lt;script&gt;alert" in dom and "<script>alert" not in dom


def test_times_are_timezone_aware() -> None:
    from tracker.digest.render import local

    when = datetime(2026, 7, 1, 5, 0, tzinfo=UTC)
    assert local(when, "Europe/Berlin").endswith("07:00 CEST")
    assert local(when + timedelta(days=180), "America/New_York").endswith("EST")


@pytest.mark.parametrize(
    ("tz", "now", "fires"),
    [
        ("Europe/Berlin", "2026-01-15T12:00:00+00:00", "2026-01-16T06:00:00+00:00"),  # CET: UTC+1
        ("Europe/Berlin", "2026-07-15T12:00:00+00:00", "2026-07-16T05:00:00+00:00"),  # CEST: UTC+2
        ("America/New_York", "2026-03-07T13:00:00+00:00", "2026-03-08T11:00:00+00:00"),  # DST starts that day
    ],
)
def test_the_service_schedules_each_digest_at_its_local_time(tz: str, now: str, fires: str) -> None:
    from tracker.service.scheduler import digest_trigger

    trigger = digest_trigger(DigestConfig(name="d", to=("a@b.example",), at="07:00", timezone=tz))
    assert trigger.get_next_fire_time(None, datetime.fromisoformat(now)) == datetime.fromisoformat(fires)


def test_the_service_sends_a_digest_that_fell_due_while_it_was_down(
    tmp_path: Path, site: HTTPServer, smtp: tuple[Controller, Inbox]
) -> None:
    from .test_service import start_run

    controller, inbox = smtp
    cfg = write_config(tmp_path, site, smtp_port(controller))
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    proc = start_run(cfg)
    try:
        deadline = time.monotonic() + 60
        while not inbox.messages and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert len(inbox.messages) == 1 and "2 new stories" in inbox.messages[0]["Subject"]
    assert "catching up" in err


# -- TLS, login, updates, source health ------------------------------------------------------


def _config_for(tmp_path: Path, site: HTTPServer, port: int, smtp_extra: str) -> Path:
    cfg = write_config(tmp_path, site, port)
    cfg.write_text(cfg.read_text().replace("timeout = 5\n", f"timeout = 5\nbackoff = 0.1\n{smtp_extra}"))
    return cfg


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_tls_to_a_server_with_a_private_ca(tmp_path: Path, site: HTTPServer, mode: str) -> None:
    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    inbox = Inbox()
    port = free_port()
    if mode == "starttls":
        controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=server_ctx, require_starttls=True)
    else:
        controller = Controller(
            inbox, hostname="127.0.0.1", port=port, ssl_context=server_ctx, server_hostname="127.0.0.1"
        )
    controller.start()
    try:
        cfg = _config_for(tmp_path, site, port, f'{mode} = true\nca_file = "{ca_file}"\n')
        assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
        sent = tracker("--config", str(cfg), "digest", "send", "--now")
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert len(inbox.messages) == 1
        # Without the CA the certificate is not trusted: a clean failure, items kept.
        (tmp_path / "other").mkdir()
        untrusting = _config_for(tmp_path / "other", site, port, f"{mode} = true\n")
        assert tracker("--config", str(untrusting), "poll", "--once").returncode == 0
        refused = tracker("--config", str(untrusting), "digest", "send", "--now")
        assert refused.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in refused.stdout
    finally:
        controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_login_with_the_password_from_the_environment(tmp_path: Path, site: HTTPServer) -> None:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    seen: list[tuple[str, str]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        seen.append((data.login.decode(), data.password.decode()))
        return AuthResult(success=data.password == b"s3cret")

    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    try:
        cfg = _config_for(
            tmp_path, site, port, 'username = "desk"\npassword_env = "HARBOUR_SMTP_PASSWORD"\nattempts = 1\n'
        )
        assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
        wrong = tracker("--config", str(cfg), "digest", "send", "--now", env={"HARBOUR_SMTP_PASSWORD": "nope"})
        assert wrong.returncode == 1 and "FAILED" in wrong.stdout
        missing = tracker("--config", str(cfg), "digest", "send", "--now")
        assert missing.returncode == 1 and "HARBOUR_SMTP_PASSWORD" in missing.stdout
        right = tracker("--config", str(cfg), "digest", "send", "--now", env={"HARBOUR_SMTP_PASSWORD": "s3cret"})
        assert right.returncode == 0, right.stdout + right.stderr
    finally:
        controller.stop()
    assert len(inbox.messages) == 1 and ("desk", "s3cret") in seen


def test_a_later_report_of_a_delivered_story_is_an_update(
    tmp_path: Path, site: HTTPServer, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    cfg = write_config(tmp_path, site, smtp_port(controller))
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    assert tracker("--config", str(cfg), "digest", "send", "--now").returncode == 0
    publish(
        site,
        [
            *FIRST_TWO,
            ("rewrite", "Islanders to get larger Quayside terminal after board vote", REWRITE),
        ],
    )
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    assert tracker("--config", str(cfg), "digest", "send", "--now").returncode == 0
    assert len(inbox.messages) == 2
    second = inbox.messages[1]
    assert "0 new stories in 1 topic, and 1 update" in second["Subject"]
    text = parts(second)["text/plain"]
    assert "[UPDATE]" in text and "[NEW]" not in text


def test_source_health_names_failing_and_silent_feeds(
    tmp_path: Path, site: HTTPServer, smtp: tuple[Controller, Inbox]
) -> None:
    controller, _ = smtp
    cfg = write_config(tmp_path, site, smtp_port(controller))
    cfg.write_text(cfg.read_text() + '\n[[feeds]]\nname = "Dead Wire"\nurl = "http://127.0.0.1:9/feed.xml"\n')
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    # The gazette's history: an item a day for a week, the last one ten days ago.
    with sqlite3.connect(tmp_path / "tracker.sqlite") as db:
        (gazette,) = db.execute("SELECT id FROM feeds WHERE name = 'Gazette'").fetchone()
        db.execute("DELETE FROM item_sources WHERE feed_id = ?", (gazette,))
        for day in range(10, 17):
            seen = (datetime.now(UTC) - timedelta(days=day)).strftime("%Y-%m-%d %H:%M:%S.%f")
            db.execute(
                "INSERT INTO items (url, title, text, text_source, text_hash, fetched_at)"
                " VALUES (?, ?, '', 'none', ?, ?)",
                (f"https://gazette.example/{day}", f"Old news {day}", f"h{day}", seen),
            )
            db.execute(
                "INSERT INTO item_sources (item_id, feed_id, seen_at) VALUES ((SELECT max(id) FROM items), ?, ?)",
                (gazette, seen),
            )
    out = tmp_path / "preview"
    assert tracker("--config", str(cfg), "digest", "preview", "--out", str(out)).returncode == 0
    text = (out / "harbour-desk.txt").read_text()
    health = text.split("== Source health ==")[1]
    assert "failing: Dead Wire" in health and "network" in health.lower()
    assert "silent: Gazette" in health and "no new item for 10 days (usually one every 24 h)" in health


def test_max_stories_says_how_many_were_left_out_and_min_score_filters(
    tmp_path: Path, site: HTTPServer, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    cfg = write_config(tmp_path, site, smtp_port(controller))
    cfg.write_text(cfg.read_text() + "max_stories = 1\n")
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    assert tracker("--config", str(cfg), "digest", "send", "--now").returncode == 0
    text = parts(inbox.messages[0])["text/plain"]
    assert text.count("[NEW]") == 1
    assert "1 more story in this topic not shown." in text
    # The story left out was reported as left out: it is not sent again.
    assert db_rows(tmp_path, "SELECT count(*) FROM digest_deliveries") == [(2,)]
    assert "nothing new" in tracker("--config", str(cfg), "digest", "send", "--now").stdout

    strict = tmp_path / "strict"
    strict.mkdir()
    cfg2 = write_config(strict, site, smtp_port(controller))
    cfg2.write_text(cfg2.read_text() + "min_score = 99\n")
    assert tracker("--config", str(cfg2), "poll", "--once").returncode == 0
    assert "nothing new" in tracker("--config", str(cfg2), "digest", "send", "--now").stdout
    assert len(inbox.messages) == 1


def test_a_failed_resend_keeps_the_run_and_its_items_pending(tmp_path: Path, site: HTTPServer) -> None:
    cfg = _config_for(tmp_path, site, free_port(), "attempts = 1\n")  # nothing listens there
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    config = load_config(str(cfg))
    store = open_store(config)
    sub = config.digests[0]
    titles = TITLES
    now = datetime.now(UTC)
    leave_interrupted_run(config, store, now)
    outcome = send_digest(config, store, sub, titles, now=now + timedelta(hours=1), sender=Sender(sleep=lambda _: None))
    assert outcome.resend_failed == 1 and outcome.status == "empty"  # the stories wait for their own message
    first = runs(store.engine)[0]
    assert first["status"] == "pending" and "re-send" in first["error"]
    assert db_rows(tmp_path, "SELECT count(*) FROM digest_deliveries WHERE run_id = 1") == [(2,)]


def test_an_error_reply_to_quit_does_not_send_the_message_again() -> None:
    """The server took the message; its answer to QUIT is no reason to send it twice."""
    from tracker.core.config import SmtpConfig
    from tracker.digest.mail import send

    accepted: list[bytes] = []

    def serve(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        reader = conn.makefile("rb")
        conn.sendall(b"220 test ESMTP\r\n")
        while line := reader.readline():
            command = line.strip().upper()
            if command == b"DATA":
                conn.sendall(b"354 go on\r\n")
                accepted.append(b"".join(iter(lambda: reader.readline(), b".\r\n")))
                conn.sendall(b"250 queued\r\n")
            elif command == b"QUIT":
                conn.sendall(b"421 closing\r\n")
                break
            else:
                conn.sendall(b"250 ok\r\n")
        conn.close()

    import threading

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        threading.Thread(target=serve, args=(listener,), daemon=True).start()
        smtp = SmtpConfig(host="127.0.0.1", port=listener.getsockname()[1], timeout=5)
        tries = send(
            smtp, b"Subject: x\n\nhello\n", sender="a@x.example", recipients=["b@x.example"], sleep=lambda _: None
        )
    assert tries == 1 and len(accepted) == 1


@pytest.mark.parametrize(
    ("tz", "at", "day"),
    [
        ("Europe/Berlin", "02:30", "2026-03-29"),
        ("Europe/Berlin", "02:30", "2026-10-25"),
        ("America/New_York", "01:30", "2026-11-01"),
    ],
)
def test_a_dst_day_gets_exactly_one_digest(tz: str, at: str, day: str) -> None:
    sub = DigestConfig(name="d", to=("a@b.example",), at=at, timezone=tz)
    start = datetime.fromisoformat(day + "T00:00:00").replace(tzinfo=ZoneInfo(tz)).astimezone(UTC) - timedelta(hours=1)
    last: datetime | None = start - timedelta(hours=20)
    sends = 0
    for step in range(0, 26 * 12):  # every five minutes through the day
        now = start + timedelta(minutes=5 * step)
        if due(sub, now, last):
            sends += 1
            last = now
    assert sends == 1


def test_matches_of_a_removed_rule_do_not_make_a_digest(
    tmp_path: Path, site: HTTPServer, smtp: tuple[Controller, Inbox]
) -> None:
    controller, inbox = smtp
    cfg = write_config(tmp_path, site, smtp_port(controller))
    cfg.write_text(cfg.read_text().replace('rules = ["harbour"]', 'rules = ["*"]'))
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    (tmp_path / "rules" / "harbour.toml").write_text(RULE.replace('"harbour"', '"ferries"').replace("board'", "ferry'"))
    sent = tracker("--config", str(cfg), "digest", "send", "--now")
    assert sent.returncode == 0 and "nothing new" in sent.stdout, sent.stdout + sent.stderr
    assert inbox.messages == []


def test_status_and_one_service_per_sqlite_database(tmp_path: Path, site: HTTPServer) -> None:
    from .test_service import start_run

    cfg = write_config(tmp_path, site, free_port())
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    idle = tracker("--config", str(cfg), "status")
    assert idle.returncode == 0, idle.stderr
    assert "Service: not running" in idle.stdout
    assert "2 new articles" in idle.stdout and "Feeds: 1 active, 0 need attention" in idle.stdout
    assert "Schedule: 0 feeds due now, 0 parked; next poll due 20" in idle.stdout
    assert "harbour desk: 2 articles waiting; last sent never; next " in idle.stdout
    assert "CET" in idle.stdout or "CEST" in idle.stdout

    proc = start_run(cfg)
    try:
        deadline = time.monotonic() + 60
        while "Service: running" not in (shown := tracker("--config", str(cfg), "status").stdout):
            assert proc.poll() is None and time.monotonic() < deadline, shown
            time.sleep(0.3)
        assert f"pid {proc.pid}" in shown
        second = tracker("--config", str(cfg), "run")
        assert second.returncode == 1
        assert f"another `tracker run` (pid {proc.pid}" in second.stderr and "PostgreSQL" in second.stderr
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "Service: not running" in tracker("--config", str(cfg), "status").stdout


def test_maintain_applies_retention_and_rotates_backups(tmp_path: Path, site: HTTPServer) -> None:
    cfg = write_config(tmp_path, site, free_port())
    retention = "\n[maintenance]\nkeep_raw_html_days = 30\nkeep_fetch_log_days = 90\nbackups = 2\n"
    cfg.write_text(cfg.read_text() + retention)
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    old = (datetime.now(UTC) - timedelta(days=40)).strftime("%Y-%m-%d %H:%M:%S.%f")
    older = (datetime.now(UTC) - timedelta(days=100)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(tmp_path / "tracker.sqlite") as db:
        db.execute("UPDATE items SET fetched_at = ? WHERE id = 1", (old,))
        db.execute("UPDATE fetch_log SET started_at = ?", (older,))
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0  # one recent fetch log row

    done = tracker("--config", str(cfg), "maintain")
    assert done.returncode == 0, done.stderr
    assert "stored pages dropped: 1" in done.stdout and "fetch log rows deleted: 1" in done.stdout
    kept = db_rows(tmp_path, "SELECT id, raw_html IS NULL, length(text) > 100 FROM items ORDER BY id")
    assert kept == [(1, 1, 1), (2, 0, 1)]  # the old page is gone, its text stays
    assert db_rows(tmp_path, "SELECT count(*) FROM fetch_log") == [(1,)]
    backups = tmp_path / "backups"
    (first,) = backups.glob("tracker-*.sqlite")
    with sqlite3.connect(first) as copy:
        assert copy.execute("SELECT count(*) FROM items").fetchone() == (2,)

    for _ in range(2):
        time.sleep(1.1)  # backups are named by the second
        assert tracker("--config", str(cfg), "maintain").returncode == 0
    names = sorted(p.name for p in backups.glob("tracker-*.sqlite"))
    assert len(names) == 2 and first.name not in names
    assert not list(backups.glob("*.partial"))


DREDGING = (
    "Ferry operator Caldera Lines said on Tuesday it would pay $4.5 million toward dredging the approach channel."
)
OPERATOR = (
    "Harlan Bay's harbour board approved the $86 million expansion of the Quayside ferry terminal on "
    "Monday, adding two berths and a covered hall for island commuters.",
    DREDGING,
    "Board chair Odile Marchetti said the 1974 terminal carries three times the passengers it was built for.",
)


@pytest.mark.parametrize("only_new_facts", [False, True])
def test_an_update_says_what_it_adds_and_a_restatement_can_be_left_out(
    tmp_path: Path, site: HTTPServer, smtp: tuple[Controller, Inbox], only_new_facts: bool
) -> None:
    controller, inbox = smtp
    extra = f"only_new_facts = {'true' if only_new_facts else 'false'}\n"
    cfg = write_config(tmp_path, site, smtp_port(controller), extra)
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    assert tracker("--config", str(cfg), "digest", "send", "--now").returncode == 0
    # Two updates of the terminal story: a rewrite that restates it, and one that adds the operator's offer.
    publish(
        site,
        [
            *FIRST_TWO,
            ("rewrite", "Islanders to get larger Quayside terminal after board vote", REWRITE),
        ],
    )
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    con = sqlite3.connect(tmp_path / "tracker.sqlite")
    assert con.execute("SELECT story_role, adds_new FROM items WHERE url LIKE '%rewrite%'").fetchone() == ("update", 0)
    assert tracker("--config", str(cfg), "digest", "send", "--now").returncode == 0 or only_new_facts
    publish(
        site,
        [
            *FIRST_TWO,
            ("rewrite", "Islanders to get larger Quayside terminal after board vote", REWRITE),
            ("operator", "Quayside terminal expansion: ferry operator offers to share dredging bill", OPERATOR),
        ],
    )
    assert tracker("--config", str(cfg), "poll", "--once").returncode == 0
    assert con.execute("SELECT story_role, adds_new FROM items WHERE url LIKE '%operator%'").fetchone() == ("update", 1)
    facts = con.execute("SELECT sentence, facts FROM story_developments").fetchall()
    assert facts == [(DREDGING, '["$4.5 million", "Caldera Lines"]')]
    assert tracker("--config", str(cfg), "digest", "send", "--now").returncode == 0
    texts = [parts(m)["text/plain"] for m in inbox.messages]
    last = texts[-1]
    assert f"New: {DREDGING}" in last and "Quayside terminal expansion: ferry operator" in last
    if only_new_facts:  # the restating update was never sent on its own
        assert len(inbox.messages) == 2 and not any("Islanders to get larger" in t for t in texts)
    else:
        assert len(inbox.messages) == 3 and "Islanders to get larger" in texts[1] and "New:" not in texts[1]
    terminal = con.execute("SELECT story_id FROM items WHERE url LIKE '%operator%'").fetchone()[0]
    story = tracker("--config", str(cfg), "story", str(terminal))
    assert f"New: {DREDGING}" in story.stdout and "nothing the story did not already report" in story.stdout
