"""A webhook receiver for the alert tests: a real HTTP server on 127.0.0.1 that keeps every
POST it accepts (path, headers, JSON body), and can answer an error or hang instead; and a
writer of distinct harbour-board articles, each its own story (our own fixture text)."""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .conftest import HTTPServer, Response
from .feedkit import HTML_HEADERS, RSS_HEADERS, Entry, page, rss


class _Quiet(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a sender killed mid-request resets its connection: expected here


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def ref(self) -> str:
        return self.headers.get("X-Newstracker-Ref", "")


@dataclass
class Receiver:
    """``status`` is answered to every POST (a 2xx one is kept); ``hang`` seconds are waited
    before answering; ``fail_paths`` answer 500 whatever ``status`` says."""

    status: int = 200
    hang: float = 0.0
    fail_paths: set[str] = field(default_factory=set)
    posts: list[Post] = field(default_factory=list)
    tries: list[str] = field(default_factory=list)  #: every path POSTed to, kept or not

    def __post_init__(self) -> None:
        self._server = _Quiet(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._lock = threading.Lock()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str, scheme: str = "json") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Post]:
        return [p for p in self.posts if p.path.split("?")[0] == path]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                with receiver._lock:
                    receiver.tries.append(path)
                if receiver.hang:
                    time.sleep(receiver.hang)
                status = 500 if path in receiver.fail_paths else receiver.status
                if 200 <= status < 300:
                    with receiver._lock:
                        receiver.posts.append(Post(path, dict(self.headers.items()), json.loads(data or b"{}")))
                body = b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        return Handler


_WORDS_TEXT = (
    "apple orchard violin meteor glacier tundra comet saffron velvet canyon prairie opera "
    "falcon lantern harvest meadow granite copper silver marble timber cotton wool linen cedar "
    "maple quay berth ferry dredging pontoon tariff crane pier warehouse tug pilot lock gate "
    "channel container terminal budget council levy harbourmaster lease dock slipway breakwater "
    "marina cargo customs fishing trawler lighthouse buoy mooring wharf freight rail depot "
    "inspection survey contract tender audit safety strike pension wages overtime schedule "
    "timetable route island commuter passenger ticket fare subsidy grant loan bond rating "
    "insurance flood storm"
)
_WORDS = tuple(_WORDS_TEXT.split())


_SYLLABLES_TEXT = "ka lo mi ne ru sa ti vo ze ba de fi go hu ja ke lu ma no pi ra se to vu wa xi yo zu"
_SYLLABLES = tuple(_SYLLABLES_TEXT.split())


def article(n: int, title: str | None = None) -> tuple[str, tuple[str, ...]]:
    """Article ``n``: a headline and three paragraphs that mention the harbour board, in
    words unlike every other ``n``'s (so each is a story of its own)."""
    rng = random.Random(n * 7919)

    def word() -> str:  # made up: no two articles share their words
        return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))

    def sentence(k: int) -> str:
        words = [*rng.sample(_WORDS, 3), *(word() for _ in range(k - 3))]
        rng.shuffle(words)
        return " ".join(words).capitalize() + "."

    paragraphs = (
        f"{sentence(9)} The harbour board said {sentence(12).lower()} {sentence(10)}",
        f"{sentence(11)} {sentence(8)} {rng.randint(10, 99)} {sentence(9)}",
        f"{sentence(10)} Board members {sentence(9).lower()}",
    )
    # Headlines of made-up words too: a shared template ("Harbour board rules on X") reads as
    # one event to story grouping, which weighs what a headline says happened.
    return title or f"{word().capitalize()} {word()} {word()} {word()} for harbour board (item {n})", paragraphs


def publish(server: HTTPServer, articles: dict[int, tuple[str, tuple[str, ...]]]) -> None:
    """Serve ``articles`` (n -> headline, paragraphs) as pages and one RSS feed."""
    entries = []
    for n, (title, paragraphs) in articles.items():
        server.routes[f"/a/{n}.html"] = Response(200, page(title, paragraphs), HTML_HEADERS)
        entries.append(Entry(slug=f"a{n}", title=title, link=server.url(f"/a/{n}.html"), guid=f"a{n}"))
    server.routes["/feed.xml"] = Response(200, rss(entries, title="Harlan Bay Gazette"), RSS_HEADERS)


RULE = 'id = "harbour"\ntitle = "Harbour board decisions"\nquery = \'harbour AND board\'\n'
