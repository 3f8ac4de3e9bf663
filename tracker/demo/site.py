"""A small news website on 127.0.0.1 for the demo and the end-to-end tests.

It serves the articles in articles.json as full HTML pages with the boilerplate real
news pages carry (navigation, cookie banner, related links, newsletter box, comments,
footer), for two outlets: The Daily Ledger, at ``http://127.0.0.1:PORT`` with three feeds of
different kinds (RSS 2.0 /feeds/autos.xml, Atom 1.0 /feeds/world.atom, RSS 1.0
/feeds/more.rdf), and the Lakeshore Courier, at ``http://localhost:PORT`` with one RSS 2.0
feed (/feeds/courier.xml). Both names reach the same loopback server; being two hosts, they
are two outlets to the tracker, so stories re-reported by both count two. Feed links carry utm_* parameters,
pages declare their canonical URL, feeds honor If-None-Match, responses are gzipped
when asked. One article's page is gone (404), so the tracker has to fall back to the
text in the feed.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import html
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ARTICLES = Path(__file__).with_name("articles.json")
SECTIONS = ("World", "Politics", "Business", "Autos", "Tech", "Science", "Sports", "Opinion")
#: outlet key (an article's "outlet", default "ledger") → its name
OUTLETS = {"ledger": "The Daily Ledger", "courier": "Lakeshore Courier"}
#: path → (title, sections carried, outlet)
FEEDS = {
    "/feeds/autos.xml": ("Autos & Business (RSS 2.0)", ("autos", "business"), "ledger"),
    "/feeds/world.atom": ("World & Politics (Atom)", ("world", "politics", "business"), "ledger"),
    "/feeds/more.rdf": ("Tech, Science & Sports (RSS 1.0)", ("tech", "science", "sports"), "ledger"),
    "/feeds/courier.xml": ("All news (RSS 2.0)", tuple(s.lower() for s in SECTIONS), "courier"),
}
SITE_NAME = OUTLETS["ledger"]
TRACKING = "?utm_source=rss&utm_medium=feed&utm_campaign=demo"


def load_articles(path: Path = ARTICLES) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        data: list[dict[str, Any]] = json.load(fh)
    return data


def moved_to(articles: Sequence[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The articles with their dates moved by whole days, so that the newest is from the day
    before ``now``: "this week", ``--since`` and the report's default window then show the
    demo's news, and weekdays and times of day stay as written."""
    dates = [datetime.fromisoformat(a["published"].replace("Z", "+00:00")) for a in articles]
    if not dates:
        return list(articles)
    days = (now.astimezone(UTC).date() - max(dates).date()).days - 1
    shift = timedelta(days=days)
    return [
        {**a, "published": (d + shift).strftime("%Y-%m-%dT%H:%M:%SZ")} for a, d in zip(articles, dates, strict=True)
    ]


def outlet_of(article: dict[str, Any]) -> str:
    """The name of the outlet that publishes ``article``."""
    return OUTLETS[article.get("outlet", "ledger")]


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def article_page(article: dict[str, Any], related: Sequence[dict[str, Any]], base: str) -> str:
    slug = article["slug"]
    site = outlet_of(article)
    published = article["published"]
    nav = "".join(f'<li><a href="/section/{s.lower()}">{s}</a></li>' for s in SECTIONS)
    body = "\n".join(f"<p>{_e(p)}</p>" for p in article["paragraphs"])
    more = "".join(f'<li><a href="/articles/{r["slug"]}.html">{_e(r["title"])}</a></li>' for r in related)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{_e(article["title"])} | {site}</title>
<link rel="canonical" href="/articles/{slug}.html">
<meta property="og:title" content="{_e(article["title"])}">
<meta property="og:site_name" content="{site}">
<meta property="article:published_time" content="{published}">
<meta name="author" content="{_e(article["author"])}">
<meta name="description" content="{_e(article["summary"])}">
</head><body>
<div class="cookie-banner">We use cookies to personalise content and ads. <button>Accept</button>
<button>Manage preferences</button></div>
<header class="masthead"><a class="logo" href="/">{site}</a>
<nav><ul>{nav}</ul></nav><form action="/search"><input name="q" placeholder="Search"></form>
<a href="/subscribe" class="cta">Subscribe from $1 a week</a></header>
<main>
<article>
<p class="kicker">{_e(article["section"].title())}</p>
<h1>{_e(article["title"])}</h1>
<p class="standfirst">{_e(article["summary"])}</p>
<p class="byline">By <a rel="author" href="/authors/{slug}">{_e(article["author"])}</a>
· <time datetime="{published}">{published[:10]}</time></p>
<div class="article-body">
{body}
</div>
<div class="share">Share: <a href="#">Email</a> <a href="#">X</a> <a href="#">LinkedIn</a>
<a href="#">Copy link</a></div>
</article>
<aside class="related"><h2>More from {site}</h2><ul>{more}</ul></aside>
<aside class="newsletter"><h2>The Morning Briefing</h2>
<p>Our editors' pick of the day's most important stories, in your inbox before breakfast.</p>
<form><input type="email" placeholder="you@example.com"><button>Sign up</button></form></aside>
<section class="comments"><h2>Comments (2)</h2>
<div class="comment"><b>roadwarrior77</b> <span>2 hours ago</span><p>Interesting, but I will believe it when
I see it at my local dealer.</p></div>
<div class="comment"><b>LedgerReader</b> <span>1 hour ago</span><p>Good reporting as always. Please keep
covering this.</p></div>
<p>Comments are moderated. Read our <a href="/community">community guidelines</a>.</p></section>
</main>
<footer><ul><li><a href="/about">About us</a></li><li><a href="/contact">Contact</a></li>
<li><a href="/privacy">Privacy policy</a></li><li><a href="/terms">Terms of use</a></li></ul>
<p>© 2026 {site}. All rights reserved. Demo content written for newstracker.</p></footer>
</body></html>
"""


def _rfc822(iso: str) -> str:
    return email.utils.format_datetime(datetime.fromisoformat(iso.replace("Z", "+00:00")))


def rss20(title: str, items: Sequence[dict[str, Any]], base: str, site: str = SITE_NAME) -> str:
    entries = []
    for a in items:
        link = f"{base}/articles/{a['slug']}.html{TRACKING}"
        entries.append(
            f"<item><title>{_e(a['title'])}</title><link>{_e(link)}</link>"
            f'<guid isPermaLink="false">ledger-{a["slug"]}</guid><pubDate>{_rfc822(a["published"])}</pubDate>'
            f"<dc:creator>{_e(a['author'])}</dc:creator>"
            f"<description>{_e(a['summary'])}</description>"
            f"<content:encoded><![CDATA[{''.join(f'<p>{_e(p)}</p>' for p in a['paragraphs'])}]]></content:encoded>"
            "</item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>{site}: {_e(title)}</title><link>{base}/</link>"
        f"<description>{_e(title)}</description>{''.join(entries)}</channel></rss>"
    )


def atom10(title: str, items: Sequence[dict[str, Any]], base: str, site: str = SITE_NAME) -> str:
    entries = []
    for a in items:
        link = f"{base}/articles/{a['slug']}.html{TRACKING}"
        entries.append(
            f'<entry><title>{_e(a["title"])}</title><link rel="alternate" href="{_e(link)}"/>'
            f"<id>tag:ledger.example,2026:{a['slug']}</id><updated>{a['published']}</updated>"
            f"<published>{a['published']}</published><author><name>{_e(a['author'])}</name></author>"
            f"<summary>{_e(a['summary'])}</summary></entry>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f'<title>{site}: {_e(title)}</title><id>{base}/</id><link href="{base}/"/>'
        f"<updated>2026-05-20T00:00:00Z</updated>{''.join(entries)}</feed>"
    )


def rss10(title: str, items: Sequence[dict[str, Any]], base: str, site: str = SITE_NAME) -> str:
    links = [f"{base}/articles/{a['slug']}.html{TRACKING}" for a in items]
    seq = "".join(f'<rdf:li rdf:resource="{_e(link)}"/>' for link in links)
    entries = "".join(
        f'<item rdf:about="{_e(link)}"><title>{_e(a["title"])}</title><link>{_e(link)}</link>'
        f"<description>{_e(a['summary'])}</description><dc:date>{a['published']}</dc:date>"
        f"<dc:creator>{_e(a['author'])}</dc:creator></item>"
        for a, link in zip(items, links, strict=True)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns="http://purl.org/rss/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f'<channel rdf:about="{base}/"><title>{site}: {_e(title)}</title><link>{base}/</link>'
        f"<description>{_e(title)}</description><items><rdf:Seq>{seq}</rdf:Seq></items></channel>"
        f"{entries}</rdf:RDF>"
    )


_RENDER = {
    ".xml": (rss20, "application/rss+xml"),
    ".atom": (atom10, "application/atom+xml"),
    ".rdf": (rss10, "application/rdf+xml"),
}


class NewsSite:
    """The demo site; ``with NewsSite() as site: site.base_url``."""

    def __init__(
        self,
        articles: Sequence[dict[str, Any]] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        missing_pages: Sequence[str] = ("millbrook-mariners-win-county-basketball-title",),
        recent_to: datetime | None = None,
    ):
        self.articles = list(articles if articles is not None else load_articles())
        if recent_to is not None:
            self.articles = moved_to(self.articles, recent_to)
        self.missing_pages = set(missing_pages)
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The Daily Ledger's address (the server's own)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def outlet_url(self, outlet: str) -> str:
        """The address of an outlet: the Courier is the same server under the name
        ``localhost`` (another host to the tracker) when the server is on 127.0.0.1."""
        host, port = self._server.server_address[:2]
        if outlet != "ledger" and host == "127.0.0.1":
            host = "localhost"
        return f"http://{host!s}:{port}"

    def feed_urls(self, outlet: str | None = None) -> dict[str, str]:
        """Feed name → URL, of every outlet or of one."""
        return {
            f"{OUTLETS[where]}: {name}" if where != "ledger" else name: self.outlet_url(where) + path
            for path, (name, _, where) in FEEDS.items()
            if outlet in (None, where)
        }

    def start(self) -> NewsSite:
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-site", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> NewsSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def render(self, path: str, outlet: str = "ledger") -> tuple[int, str, str]:
        """(status, content type, body) for a path asked of ``outlet``'s host."""
        if path in FEEDS:
            name, sections, where = FEEDS[path]
            items = [a for a in self.articles if a["section"] in sections and a.get("outlet", "ledger") == where]
            render, ctype = _RENDER[path[path.rindex(".") :]]
            return 200, f"{ctype}; charset=utf-8", render(name, items, self.outlet_url(where), OUTLETS[where])
        if path in ("/", "/index.html"):
            return 200, "text/html; charset=utf-8", self.home_page(outlet)
        if path.startswith("/articles/") and path.endswith(".html"):
            slug = path[len("/articles/") : -len(".html")]
            index = next((i for i, a in enumerate(self.articles) if a["slug"] == slug), None)
            if index is not None and slug not in self.missing_pages:
                article = self.articles[index]
                same = [a for a in self.articles if a.get("outlet", "ledger") == article.get("outlet", "ledger")]
                at = same.index(article)
                related = [same[(at + k) % len(same)] for k in (1, 2, 3, 4) if len(same) > k]
                return 200, "text/html; charset=utf-8", article_page(article, related, self.base_url)
        return 404, "text/html; charset=utf-8", "<html><body><h1>Page not found</h1></body></html>"

    def home_page(self, outlet: str = "ledger") -> str:
        """An outlet's front page: its latest headlines, and its feeds advertised as browsers
        and feed readers find them (``<link rel="alternate">``)."""
        site = OUTLETS[outlet]
        links = "".join(
            f'<link rel="alternate" type="{_RENDER[path[path.rindex(".") :]][1]}" title="{_e(name)}" href="{path}">'
            for path, (name, _, where) in FEEDS.items()
            if where == outlet
        )
        mine = [a for a in self.articles if a.get("outlet", "ledger") == outlet]
        latest = sorted(mine, key=lambda a: a["published"], reverse=True)[:10]
        items = "".join(f'<li><a href="/articles/{_e(a["slug"])}.html">{_e(a["title"])}</a></li>' for a in latest)
        return (
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{site}</title>{links}"
            f"</head><body><h1>{site}</h1><ul>{items}</ul></body></html>"
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                site.requests.append(self.path)
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
                status, ctype, text = site.render(path, "courier" if host == "localhost" else "ledger")
                body = text.encode("utf-8")
                etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
                if status == 200 and path in FEEDS and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if "gzip" in (self.headers.get("Accept-Encoding") or ""):
                    body = gzip.compress(body)
                    encoded = True
                else:
                    encoded = False
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                if encoded:
                    self.send_header("Content-Encoding", "gzip")
                if status == 200:
                    self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the demo site in the foreground: ``python -m tracker.demo.site [--scale N]``."""
    import argparse
    import time

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--scale", type=int, default=1, help="serve N copies of every article (for benchmarks)")
    ap.add_argument("--ready-file", help="write the base URL here once listening")
    args = ap.parse_args(argv)
    base = load_articles()
    articles = [{**a, "slug": f"{a['slug']}-{i}" if i else a["slug"]} for i in range(args.scale) for a in base]
    with NewsSite(articles, port=args.port) as site:
        print(f"listening on {site.base_url}", flush=True)
        if args.ready_file:
            Path(args.ready_file).write_text(site.base_url)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
