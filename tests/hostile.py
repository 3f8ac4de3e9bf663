"""A hostile feed server on 127.0.0.1: every way a source can misbehave, one path each.

Raw sockets, so that a case can drip, never end, reset the connection or fail a TLS
handshake. Used by tests/test_hostile.py, tests/test_hostile_more.py and
bench/hostile_report.py. Our own fixture text.

Besides 127.0.0.1 the server listens on 127.0.0.2 (the same paths: "another host", since
per-host budgets are kept by host name), and it runs two *internal* listeners, on 127.0.0.2
and [::1], that stand for services a feed must never reach through a redirect: they count
every connection they accept (``internal_hits``).
"""

from __future__ import annotations

import contextlib
import html
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable
from functools import cache

HEAD = "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nConnection: close\r\n{extra}\r\n"
RSS_TYPE = "application/rss+xml; charset=utf-8"


def rss(items: str, title: str = "Hostile Gazette") -> bytes:
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
        f"<title>{title}</title><link>http://example.invalid/</link><description>d</description>{items}"
        "</channel></rss>"
    ).encode()


def item(i: int, title: str, text: str = "") -> str:
    body = text or (
        f"Entry {i} of the harbour board's minutes: the board discussed the quay, the ferry timetable and "
        "the dredging contract, and postponed a vote on the fish market until its next meeting."
    )
    return (
        f"<item><title>{html.escape(title)}</title><guid isPermaLink='false'>e-{i}</guid>"
        f"<pubDate>Tue, 10 Feb 2026 09:00:00 GMT</pubDate><description>{html.escape(body)}</description></item>"
    )


GOOD = rss(item(1, "Harbour board approves the new quay") + item(2, "Ferry timetable changes next month"))

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY lol "lol">'
    + b"".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'.encode() for i in range(1, 10)
    )
    + b"]><rss version='2.0'><channel><title>Laughs</title><link>http://example.invalid/</link>"
    b"<description>d</description><item><title>&lol9;</title><guid>l1</guid><description>&lol9;</description>"
    b"</item></channel></rss>"
)

XXE = (
    b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    b"<rss version='2.0'><channel><title>XXE</title><link>http://example.invalid/</link><description>d</description>"
    b"<item><title>Leak &secret; here</title><guid>x1</guid><description>Body &secret; end of the harbour report"
    b" with enough words to be stored as the text of this entry by the tracker.</description></item>"
    b"</channel></rss>"
)

BAD_UTF8 = GOOD.replace(b"approves the new quay", b"approves the \xff\xfe quay \xc3\x28")

HTML_PAGE = b"<!DOCTYPE html><html><head><title>Not a feed</title></head><body><p>Hello</p></body></html>"


def many_entries(n: int = 5000) -> bytes:
    return rss("".join(item(i, f"Harbour notice number {i}") for i in range(n)), title="Huge feed")


@cache
def gzip_bomb(gib: int = 1) -> bytes:
    """``gib`` GiB of zeros, gzip-compressed (about 1 MB per GiB)."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    return b"".join(packer.compress(zeros) for _ in range(gib * 1024)) + packer.flush()


Handler = Callable[[socket.socket], None]


def _send(conn: socket.socket, status: str, body: bytes, ctype: str = RSS_TYPE, extra: str = "") -> None:
    extra += f"Content-Length: {len(body)}\r\n"
    conn.sendall(HEAD.format(status=status, ctype=ctype, extra=extra).encode() + body)


def _drip(conn: socket.socket) -> None:
    conn.sendall(HEAD.format(status="200 OK", ctype=RSS_TYPE, extra="").encode() + b"<?xml")
    for _ in range(120):  # 1 byte every 2 s, for up to four minutes, or until the client leaves
        time.sleep(2)
        conn.sendall(b" ")


def _endless(conn: socket.socket) -> None:
    conn.sendall(HEAD.format(status="200 OK", ctype=RSS_TYPE, extra="Transfer-Encoding: chunked\r\n").encode())
    chunk = b"<item><title>again</title></item>" * 1000
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    while True:
        conn.sendall(frame)


def _huge(conn: socket.socket) -> None:
    size = 3 << 30  # announces 3 GiB
    conn.sendall(HEAD.format(status="200 OK", ctype=RSS_TYPE, extra=f"Content-Length: {size}\r\n").encode())
    block = b"x" * 65536
    for _ in range(size // len(block)):
        conn.sendall(block)


def _bomb(conn: socket.socket) -> None:
    _send(conn, "200 OK", gzip_bomb(), extra="Content-Encoding: gzip\r\n")


def _reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close → RST


def _not_tls(conn: socket.socket) -> None:
    conn.sendall(b"this is not a TLS server hello\r\n" * 4)


def _redirect_loop(conn: socket.socket, path: str) -> None:
    n = int(path.rsplit("/", 1)[1]) if path.rsplit("/", 1)[1].isdigit() else 0
    _send(conn, "302 Found", b"", extra=f"Location: /loop/{(n + 1) % 3}\r\n")


ROUTES: dict[str, Callable[[socket.socket], None]] = {
    "/good.xml": lambda c: _send(c, "200 OK", GOOD),
    "/drip.xml": _drip,
    "/endless.xml": _endless,
    "/huge.xml": _huge,
    "/bomb.xml": _bomb,
    "/laughs.xml": lambda c: _send(c, "200 OK", BILLION_LAUGHS),
    "/xxe.xml": lambda c: _send(c, "200 OK", XXE),
    "/bad-utf8.xml": lambda c: _send(c, "200 OK", BAD_UTF8),
    "/html.xml": lambda c: _send(c, "200 OK", HTML_PAGE, ctype="text/html"),
    "/empty.xml": lambda c: _send(c, "200 OK", b""),
    "/429.xml": lambda c: _send(c, "429 Too Many Requests", b"slow down", "text/plain", "Retry-After: 120\r\n"),
    "/503.xml": lambda c: _send(c, "503 Service Unavailable", b"down", "text/plain"),
    "/reset.xml": _reset,
    "/many.xml": lambda c: _send(c, "200 OK", many_entries()),
}

# -- more hostile sources (tests/test_hostile_more.py) ----------------------------------------

#: 1 GiB of zeros: what every bomb below expands to
BOMB_BYTES = 1 << 30


def _pack_zeros(compress: Callable[[bytes], bytes], finish: Callable[[], bytes], total: int = BOMB_BYTES) -> bytes:
    zeros = bytes(1 << 20)
    return b"".join(compress(zeros) for _ in range(total >> 20)) + finish()


@cache
def brotli_bomb() -> bytes:
    """1 GiB of zeros as ``br``: about 800 bytes, built in about 2 s.

    Quality 5 with a 16 MiB window: quality 11 (default window) takes some 36 s and gives a
    bigger stream (1.7 KB), quality 11 with the 16 MiB window minutes. The ratio is what
    matters here: over a million to one."""
    import brotli

    packer = brotli.Compressor(quality=5, lgwin=24)
    return _pack_zeros(packer.process, packer.finish)


@cache
def deflate_bomb(raw: bool) -> bytes:
    """1 GiB of zeros as ``deflate``: a raw deflate stream, or zlib-wrapped (about 1 MB).

    Cut from the gzip bomb rather than compressed again (that takes seconds): a gzip member is a
    10-byte header, the raw deflate stream and an 8-byte trailer; the zlib wrapping is a 2-byte
    header and the Adler-32 of the data, which for n zeros is (n mod 65521) << 16 | 1."""
    stream = gzip_bomb()[10:-8]
    if raw:
        return stream
    return b"\x78\x9c" + stream + struct.pack(">I", (BOMB_BYTES % 65521) << 16 | 1)


@cache
def stacked_gzip_bomb() -> bytes:
    """``Content-Encoding: gzip, gzip``: the 1 GiB gzip bomb, gzipped again (a few KB)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return packer.compress(gzip_bomb()) + packer.flush()


@cache
def zstd_bomb() -> bytes:
    """1 GiB of zeros as one Zstandard frame of RLE blocks, written by hand (32 KB; no zstd
    module needed): 4 bytes per 128 KiB block. ``zstd -dc`` expands it to exactly 1 GiB."""
    block = 1 << 17  # the largest block a 128 KiB window allows
    header = struct.pack("<I", 0xFD2FB528) + bytes([0x00, 0x38])  # no content size; window 2**17

    def rle(last: bool) -> bytes:  # block header: last-block bit, type 1 (RLE), size; then the byte
        return ((block << 3) | (1 << 1) | int(last)).to_bytes(3, "little") + b"\0"

    n = BOMB_BYTES // block
    return header + rle(False) * (n - 1) + rle(True)


def page(title: str, paragraphs: list[str], head: str = "") -> bytes:
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>{head}"
        f"</head><body><nav><a href='/'>Front page</a></nav><article><h1>{html.escape(title)}</h1>{body}</article>"
        "<footer>Hostile Gazette, printed on the quay.</footer></body></html>"
    ).encode()


STORY_TEXT = [
    "The lighthouse on the north mole was switched back on last night after eleven weeks of repairs, and the "
    "harbour master said the first ships had already used it to find the channel in the fog.",
    "Engineers replaced the lamp, the clockwork that turns the lens and most of the wiring, which had been "
    "damaged by the storm in November. The council paid for the work out of the harbour fund.",
    "Fishermen had complained that the temporary buoys were hard to see at dusk; the harbour master thanked "
    "them for their patience and said the buoys would be removed by the end of the month.",
]

#: the other host's good feed (127.0.0.2): two entries whose pages are fetched and extracted
GOOD_ARTICLE_TITLES = ("Lighthouse on the north mole shines again", "Harbour buoys to go by the end of the month")


def good_articles_feed() -> bytes:
    items = "".join(
        f"<item><title>{html.escape(t)}</title><link>/story/{n}.html</link><guid>/story/{n}.html</guid>"
        f"<description>Short note {n} on the harbour.</description></item>"
        for n, t in enumerate(GOOD_ARTICLE_TITLES, start=1)
    )
    return rss(items, title="Harbour Light")


def story_page(n: int) -> bytes:
    return page(GOOD_ARTICLE_TITLES[(n - 1) % 2], [f"Report {n}.", *STORY_TEXT])


def throttled_feed(n: int) -> bytes:
    """``n`` entries, each linking to a small page on the feed's own host."""
    items = "".join(
        f"<item><title>Quay notice {i}</title><link>/throttled/{i}.html</link>"
        f"<description>Notice {i} of the quay office.</description></item>"
        for i in range(n)
    )
    return rss(items, title="Quay Office")


def throttled_page(i: int) -> bytes:
    return page(f"Quay notice {i}", [f"Notice {i} of the quay office.", *STORY_TEXT[:2]])


NESTED_DEPTH = 200
NESTED_SIZE = 10_000_000


@cache
def nested_page() -> bytes:
    """About 10 MB of paragraphs made of spans nested 200 deep: parsing and extracting it takes
    minutes and far more memory than a page should (1 MB of it already takes 8 s)."""
    block = "<span>" * NESTED_DEPTH + "word " + "</span>" * NESTED_DEPTH
    blocks = (NESTED_SIZE // len(block)) or 1
    paragraph = "<p>" + block * 40 + "</p>"
    body = paragraph * (blocks // 40 + 1)
    head = "<!DOCTYPE html><html><head><title>Nested</title></head>"
    return f"{head}<body><article>{body}</article></body></html>".encode()


NESTED_SUMMARY = "The harbour board's page of the day could not be read, so this summary stands in for it."


def nested_feed() -> bytes:
    return rss(
        f"<item><title>The board's deepest page</title><link>/nested/page.html</link>"
        f"<description>{NESTED_SUMMARY}</description></item>",
        title="Deep Pages",
    )


#: a summary that used to stall NEAR (every word a hit for both sides)
NEAR_SENTENCE = "Trump will visit China. "
NEAR_SIZE = 380_000


def near_feed() -> bytes:
    text = NEAR_SENTENCE * (NEAR_SIZE // len(NEAR_SENTENCE))
    return rss(
        "<item><title>Trump will visit China</title><guid isPermaLink='false'>near-stall-1</guid>"
        f"<pubDate>Tue, 10 Feb 2026 09:00:00 GMT</pubDate><description>{text}</description></item>",
        title="Repeating Wire",
    )


TINY_ENTRIES = 200_000


@cache
def tiny_entries_feed(n: int = TINY_ENTRIES) -> bytes:
    """``n`` tiny entries, about 11 MB: a title and a guid each, and no link, so nothing to fetch
    (the guid is a URI of its own, ``x:N``, or feedparser would take it for a relative link)."""
    return rss("".join(f"<item><title>{i}</title><guid>x:{i}</guid></item>" for i in range(n)), title="Tiny")


#: a page claiming another outlet's article as its canonical URL
RIVAL_URL = "https://www.rival-outlet.example/world/2026/02/10/harbour-scoop"


def canonical_feed() -> bytes:
    return rss(
        "<item><title>Harbour scoop</title><link>/canonical/story.html</link>"
        "<description>The harbour scoop, in short.</description></item>",
        title="Claims",
    )


def canonical_page() -> bytes:
    return page("Harbour scoop", STORY_TEXT, head=f'<link rel="canonical" href="{RIVAL_URL}">')


#: credentials in a feed URL; neither value may appear anywhere the tracker writes
CRED_PASSWORD = "secret-pw-7d3f"
CRED_TOKEN = "SECRET-KEY-7d3f"


def latin1_feed(n: int) -> bytes:
    """``n`` entries (guids of their own: ``item``'s would be those of the good feed)."""
    items = "".join(
        f"<item><title>Validator notice {i}</title><guid isPermaLink='false'>v-{i}</guid>"
        f"<description>Notice {i}: the quay office changed its opening hours for the winter.</description></item>"
        for i in range(1, n + 1)
    )
    return rss(items, title="Latin-1 Validators")


def malformed_feed() -> bytes:
    """Entries a careless parser chokes on; each has a guid and a summary, so each can be stored."""
    body = (
        "The quay office posted a notice about the ferry timetable and the new mooring fees for the "
        "winter season, with the harbour master's signature."
    )
    items = (
        "<item><title>Port out of range</title><link>http://example.com:99999/a</link>"
        f"<guid isPermaLink='false'>m-1</guid><description>{body} (1)</description></item>"
        "<item><title>Port not a number</title><link>http://example.com:abc/b</link>"
        f"<guid isPermaLink='false'>m-2</guid><description>{body} (2)</description></item>"
        "<item><title>Published in the year one</title><guid isPermaLink='false'>m-3</guid>"
        f"<pubDate>Mon, 01 Jan 0001 00:00:00 GMT</pubDate><description>{body} (3)</description></item>"
    )
    return rss("<ttl>²</ttl>" + items, title="Malformed")


INTERNAL_FEED = rss(item(1, "Internal: the payroll server's private feed"), title="Internal")

#: header drip: one byte of the status line and headers every DRIP_STEP s, for DRIP_SECONDS s
DRIP_STEP = 0.5
DRIP_SECONDS = 30.0


#: what each case is, for reports
CASES = {
    "/drip.xml": "slow drip (1 byte every 2 s)",
    "/endless.xml": "never-ending body",
    "/huge.xml": "body far over the size cap (3 GiB announced)",
    "/bomb.xml": "gzip bomb (1 MB → 1 GiB)",
    "/laughs.xml": "billion laughs",
    "/xxe.xml": "external entity (XXE) to /etc/passwd",
    "/bad-utf8.xml": "invalid UTF-8 under a UTF-8 declaration",
    "/html.xml": "HTML served as a feed",
    "/empty.xml": "empty 200",
    "/loop/0": "redirect loop",
    "/429.xml": "429 with Retry-After: 120",
    "/503.xml": "503",
    "/reset.xml": "connection reset",
    "tls": "TLS handshake failure",
    "/many.xml": "5,000 entries",
}


#: the new cases, by a key naming the path (or how the URL is built), for tests and reports
MORE_CASES = {
    "/bomb-br.xml": "brotli bomb (800 B → 1 GiB)",
    "/bomb-deflate-raw.xml": "raw deflate bomb (1 MB → 1 GiB)",
    "/bomb-deflate-zlib.xml": "zlib deflate bomb (1 MB → 1 GiB)",
    "/bomb-gzip-gzip.xml": "stacked gzip, gzip bomb",
    "/bomb-zstd.xml": "zstd bomb (32 KB → 1 GiB)",
    "/drip-headers.xml": "header drip (1 byte every 0.5 s)",
    "/nested.xml": "article page of 10 MB of nested spans",
    "/near-stall.xml": "380 KB summary repeating a NEAR pair",
    "/tiny-entries.xml": "200,000 tiny entries (11 MB)",
    "throttled": "1,000 articles on one throttled host",
    "other-host": "good feed on another host (127.0.0.2)",
    "/redirect/v4": "feed redirect to 127.0.0.2",
    "/redirect/v6": "feed redirect to [::1]",
    "/redirect/decimal": "feed redirect to 2130706434 (127.0.0.2)",
    "/canonical.xml": "canonical link claiming another outlet",
    "credentials": "credentials in the feed URL",
    "/latin1-validators.xml": "non-ASCII ETag and Last-Modified",
    "/malformed-entries.xml": "malformed entries (port 99999, :abc, ttl ², year 1)",
}

#: the cases that are bombs (Content-Encoding), path → (header value, body builder)
BOMBS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "/bomb-br.xml": ("br", brotli_bomb),
    "/bomb-deflate-raw.xml": ("deflate", lambda: deflate_bomb(True)),
    "/bomb-deflate-zlib.xml": ("deflate", lambda: deflate_bomb(False)),
    "/bomb-gzip-gzip.xml": ("gzip, gzip", stacked_gzip_bomb),
    "/bomb-zstd.xml": ("zstd", zstd_bomb),
}


def build_payloads() -> None:
    """Build the cached bombs and big bodies now, before any client waits for them."""
    gzip_bomb()
    for _, build in BOMBS.values():
        build()
    nested_page()
    tiny_entries_feed()


class HostileServer:
    """Plain HTTP on 127.0.0.1 and 127.0.0.2, a port that answers a TLS hello with garbage, and
    two internal listeners (127.0.0.2, [::1]) that only count connections."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        #: (path with query, request headers with lower-case names) of every HTTP request, in order
        self.requests: list[tuple[str, dict[str, str]]] = []
        #: connections accepted by the internal listeners (a redirect must never get there)
        self.internal_hits = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.port = self._listen(self._http)
        self.tls_port = self._listen(_not_tls_conn)
        self.other_port = self._listen(self._http, "127.0.0.2")
        self.internal_port = self._listen(self._internal, "127.0.0.2")
        self.internal_v6_port = self._listen(self._internal, "::1")
        self._closed = False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def other_url(self, path: str) -> str:
        """``path`` on the other host, 127.0.0.2 (the same routes)."""
        return f"http://127.0.0.2:{self.other_port}{path}"

    @property
    def tls_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}/feed.xml"

    def hits_under(self, prefix: str) -> int:
        with self._lock:
            return sum(n for path, n in self.hits.items() if path.startswith(prefix))

    def _listen(self, handler: Handler, host: str = "127.0.0.1") -> int:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, 0))
        sock.listen(128)
        self._sockets.append(sock)
        threading.Thread(target=self._accept, args=(sock, handler), daemon=True).start()
        return int(sock.getsockname()[1])

    def _accept(self, sock: socket.socket, handler: Handler) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, handler), daemon=True).start()

    def _serve(self, conn: socket.socket, handler: Handler) -> None:
        with contextlib.suppress(OSError), conn:
            handler(conn)

    def _http(self, conn: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request and len(request) < 65536:
            data = conn.recv(4096)
            if not data:
                return
            request += data
        head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        path = head[0].split(" ", 2)[1]
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        with self._lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            self.requests.append((path, headers))
            hit = self.hits[path]
        route, _, query = path.partition("?")
        if path.startswith("/loop/"):
            _redirect_loop(conn, path)
        elif path in ROUTES:
            ROUTES[path](conn)
        elif route in BOMBS:
            coding, build = BOMBS[route]
            _send(conn, "200 OK", build(), extra=f"Content-Encoding: {coding}\r\n")
        else:
            self._more(conn, route, query, hit)

    def _more(self, conn: socket.socket, route: str, query: str, hit: int) -> None:
        """The routes of MORE_CASES (and the pages their feeds link to)."""
        if route == "/drip-headers.xml":
            _drip_headers(conn)
        elif route == "/nested.xml":
            _send(conn, "200 OK", nested_feed())
        elif route == "/nested/page.html":
            _send(conn, "200 OK", nested_page(), "text/html; charset=utf-8")
        elif route == "/near-stall.xml":
            _send(conn, "200 OK", near_feed())
        elif route == "/tiny-entries.xml":
            _send(conn, "200 OK", tiny_entries_feed())
        elif route == "/throttled.xml":
            n = int(query.partition("n=")[2] or 1000)
            _send(conn, "200 OK", throttled_feed(n))
        elif route.startswith("/throttled/") and route.endswith(".html"):
            _send(conn, "200 OK", throttled_page(int(route[11:-5])), "text/html; charset=utf-8")
        elif route == "/good-articles.xml":
            # A little late: its pages are queued after a throttled host's backlog, not before it.
            time.sleep(float(query.partition("delay=")[2] or 0))
            _send(conn, "200 OK", good_articles_feed())
        elif route in ("/story/1.html", "/story/2.html"):
            _send(conn, "200 OK", story_page(int(route[7])), "text/html; charset=utf-8")
        elif route == "/redirect/v4":
            _send(conn, "302 Found", b"", extra=f"Location: http://127.0.0.2:{self.internal_port}/internal.xml\r\n")
        elif route == "/redirect/v6":
            _send(conn, "302 Found", b"", extra=f"Location: http://[::1]:{self.internal_v6_port}/internal.xml\r\n")
        elif route == "/redirect/decimal":
            _send(conn, "302 Found", b"", extra=f"Location: http://2130706434:{self.internal_port}/internal.xml\r\n")
        elif route == "/canonical.xml":
            _send(conn, "200 OK", canonical_feed())
        elif route == "/canonical/story.html":
            _send(conn, "200 OK", canonical_page(), "text/html; charset=utf-8")
        elif route == "/latin1-validators.xml":
            # Raw latin-1 bytes in both validators; a new entry on every request.
            etag = b'ETag: "v' + str(hit).encode() + b'-caf\xe9\xff"\r\n'
            extra = etag + b"Last-Modified: Tue, 10 F\xe9v 2026 09:00:00 GMT\r\n"
            body = latin1_feed(hit + 1)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: "
                + RSS_TYPE.encode()
                + b"\r\nConnection: close\r\n"
                + extra
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
        elif route == "/malformed-entries.xml":
            _send(conn, "200 OK", malformed_feed())
        else:
            _send(conn, "404 Not Found", b"not found", "text/plain")

    def _internal(self, conn: socket.socket) -> None:
        with self._lock:
            self.internal_hits += 1
        with contextlib.suppress(OSError):
            conn.recv(65536)
        _send(conn, "200 OK", INTERNAL_FEED)

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _drip_headers(conn: socket.socket) -> None:
    """The status line and headers, one byte every DRIP_STEP s (an endless header after the
    real ones), for DRIP_SECONDS s; then the connection is closed without a body."""
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {RSS_TYPE}\r\nX-Drip: ".encode()
    end = time.monotonic() + DRIP_SECONDS
    i = 0
    while time.monotonic() < end:
        conn.sendall(head[i : i + 1] if i < len(head) else b".")
        i += 1
        time.sleep(DRIP_STEP)


def _not_tls_conn(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.recv(4096)  # the client hello
        _not_tls(conn)


def feed_urls(server: HostileServer) -> dict[str, str]:
    """Case name → URL, the good feed included."""
    urls = {"good": server.url("/good.xml")}
    for path, what in CASES.items():
        urls[what] = server.tls_url if path == "tls" else server.url(path)
    return urls


def more_feed_url(server: HostileServer, key: str, *, throttled: int = 1000) -> str:
    """The URL to configure for one key of MORE_CASES. The throttled host is ``localhost``
    (budgets are kept by host name, so it is another host than 127.0.0.1 for them); the
    credentials are in the user-info part and in an ``api_key`` query parameter."""
    if key == "throttled":
        return f"http://localhost:{server.port}/throttled.xml?n={throttled}"
    if key == "other-host":
        return server.other_url("/good-articles.xml?delay=1")
    if key == "credentials":
        return f"http://user:{CRED_PASSWORD}@127.0.0.1:{server.port}/private.xml?api_key={CRED_TOKEN}"
    return server.url(key)


def more_feed_urls(server: HostileServer, *, throttled: int = 1000) -> dict[str, str]:
    """Case name → URL for every MORE_CASES case."""
    return {what: more_feed_url(server, key, throttled=throttled) for key, what in MORE_CASES.items()}
