"""A hostile feed server on 127.0.0.1: every way a source can misbehave, one path each.

Raw sockets, so that a case can drip, never end, reset the connection or fail a TLS
handshake. Used by tests/test_hostile.py and bench/hostile_report.py. Our own fixture text.
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


class HostileServer:
    """Plain HTTP on one port, and a port that answers a TLS hello with garbage."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self._sockets = []
        self.port = self._listen(self._http)
        self.tls_port = self._listen(_not_tls_conn)
        self._closed = False

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def tls_url(self) -> str:
        return f"https://127.0.0.1:{self.tls_port}/feed.xml"

    def _listen(self, handler: Handler) -> int:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
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
        path = request.split(b" ", 2)[1].decode("latin-1")
        self.hits[path] = self.hits.get(path, 0) + 1
        if path.startswith("/loop/"):
            _redirect_loop(conn, path)
        elif path in ROUTES:
            ROUTES[path](conn)
        else:
            _send(conn, "404 Not Found", b"not found", "text/plain")

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
