"""A digest as an email: Jinja2 templates (shipped in ``tracker/templates``) for the HTML
and plain-text parts, and the multipart/alternative message with its headers.

Feed-derived text reaches the HTML only through Jinja2's autoescaping; highlighted terms
are passed as segments, never as markup, so a title or snippet containing ``<script>``
shows as text.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from tracker.digest.compose import Digest

MAX_TERMS = 8


@lru_cache(maxsize=1)
def _env() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("tracker", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["segments"] = segments
    return env


def segments(text: str, terms: tuple[str, ...] | list[str]) -> list[tuple[str, bool]]:
    """``text`` cut into (piece, is_a_matched_term) pairs, longest terms first."""
    words = sorted({t for t in terms if t.strip()}, key=len, reverse=True)
    if not words:
        return [(text, False)]
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)", re.IGNORECASE)
    out: list[tuple[str, bool]] = []
    last = 0
    for m in pattern.finditer(text):
        if m.start() > last:
            out.append((text[last : m.start()], False))
        out.append((m.group(0), True))
        last = m.end()
    if last < len(text):
        out.append((text[last:], False))
    return out


def local(dt: datetime | None, tz: str, now: datetime | None = None) -> str:
    """A time in the subscriber's zone; with its year when that is not the year of ``now``."""
    if dt is None:
        return ""
    when = dt.astimezone(ZoneInfo(tz))
    this_year = (now or when).astimezone(ZoneInfo(tz)).year
    return when.strftime("%a %d %b %H:%M %Z" if when.year == this_year else "%a %d %b %Y %H:%M %Z")


def subject(digest: Digest) -> str:
    day = digest.generated_at.astimezone(ZoneInfo(digest.timezone)).strftime("%Y-%m-%d")
    return f"[newstracker] {digest.name} {day}: {digest.summary}"


def render(digest: Digest) -> tuple[str, str]:
    """The HTML and the plain-text part."""
    context = {
        "d": digest,
        "subject": subject(digest),
        "local": lambda dt: local(dt, digest.timezone, digest.generated_at),
        "max_terms": MAX_TERMS,
        "generated": local(digest.generated_at, digest.timezone),
        "since": local(digest.since, digest.timezone, digest.generated_at),
        "titles": dict(digest.subscribed),
    }
    env = _env()
    html = env.get_template("digest.html.j2").render(**context)
    text = env.get_template("digest.txt.j2").render(**context)
    return html, text


def message(digest: Digest, *, sender: str, to: tuple[str, ...] | list[str], msgid_key: str) -> EmailMessage:
    """The multipart/alternative email for ``digest``. ``msgid_key`` makes the Message-ID
    (the digest run's id): a message sent again after a crash carries the same one."""
    html, text = render(digest)
    msg = EmailMessage()
    msg["Subject"] = subject(digest)
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime(digest.generated_at)
    domain = sender.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = make_msgid(idstring=msgid_key, domain=domain)
    slug = re.sub(r"[^a-z0-9-]+", "-", digest.name.lower()).strip("-") or "digest"
    msg["List-Id"] = f"newstracker digest {digest.name} <{slug}.digests.{domain}>"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg
