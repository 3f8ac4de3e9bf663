"""tracker.sources.decoding and the bounded body decoding in Fetcher: bombs stop at the cap in bounded
memory, normal bodies round-trip, bad or unboundable encodings are refused.

Bombs are served by a raw-socket server on 127.0.0.1. They are built without compressing a
gigabyte: a deflate block of 1 MiB of zeros ended by a full flush does not refer back to earlier
data, so the same bytes can be repeated for every further MiB.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from functools import cache

import brotli
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.core.config import FetchConfig
from tracker.core.errors import FetchError
from tracker.core.types import FetchStatus
from tracker.sources.decoding import (
    ACCEPT_ENCODING,
    MAX_LAYERS,
    STEP,
    BadEncoding,
    DecodedTooLarge,
    Decoder,
    UnsupportedEncoding,
    parse_codings,
)
from tracker.sources.fetching import Fetcher

ZEROS = bytes(1 << 20)
GIB = 1024  # in MiB


# --- building encoded bodies ---------------------------------------------------------------------


@cache
def _zero_block() -> tuple[bytes, bytes]:
    """A raw deflate block for 1 MiB of zeros (repeatable after a full flush), and the stream's end."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = packer.compress(ZEROS) + packer.flush(zlib.Z_FULL_FLUSH)
    assert packer.compress(ZEROS) + packer.flush(zlib.Z_FULL_FLUSH) == block
    return block, packer.flush()


@cache
def _zero_checksums(mib: int) -> tuple[int, int]:
    crc, adler = 0, 1
    for _ in range(mib):
        crc, adler = zlib.crc32(ZEROS, crc), zlib.adler32(ZEROS, adler)
    return crc, adler


def raw_deflate_zeros(mib: int) -> bytes:
    block, end = _zero_block()
    return block * mib + end


def gzip_zeros(mib: int) -> bytes:
    crc = _zero_checksums(mib)[0]
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + raw_deflate_zeros(mib) + struct.pack("<II", crc, (mib << 20) & 0xFFFFFFFF)


def zlib_zeros(mib: int) -> bytes:
    return b"\x78\xda" + raw_deflate_zeros(mib) + struct.pack(">I", _zero_checksums(mib)[1])


@cache
def brotli_zeros(mib: int) -> bytes:
    packer = brotli.Compressor(quality=1)
    return b"".join(packer.process(ZEROS) for _ in range(mib)) + packer.finish()


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


#: an encoder per way of writing each coding: (Content-Encoding token, function)
ENCODERS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "x-gzip": ("x-gzip", lambda d: gzip.compress(d, compresslevel=1)),
    "deflate (zlib)": ("deflate", zlib.compress),
    "deflate (raw)": ("deflate", raw_deflate),
    "br": ("br", brotli.compress),
    "identity": ("identity", lambda d: d),
}


def encode(data: bytes, ways: list[str]) -> tuple[bytes, str]:
    """``data`` encoded by each of ``ways`` in turn, and the Content-Encoding header for it."""
    tokens = []
    for way in ways:
        token, encoder = ENCODERS[way]
        data = encoder(data)
        tokens.append(token)
    return data, ", ".join(tokens)


def test_the_bomb_builders_make_what_they_say() -> None:
    assert gzip.decompress(gzip_zeros(3)) == bytes(3 << 20)
    assert zlib.decompress(zlib_zeros(3)) == bytes(3 << 20)
    assert zlib.decompress(raw_deflate_zeros(3), -zlib.MAX_WBITS) == bytes(3 << 20)
    assert brotli.decompress(brotli_zeros(3)) == bytes(3 << 20)
    assert len(gzip_zeros(GIB)) < 2_000_000  # about a thousand to one


# --- Decoder units -----------------------------------------------------------------------------------


def decode(codings: list[str], raw: bytes, sizes: list[int], limit: int = 1 << 30) -> list[bytes]:
    """Feed ``raw`` to a Decoder in chunks of the given sizes (cycled); every piece it yields."""
    decoder = Decoder(parse_codings([", ".join(codings)]), limit)
    pieces: list[bytes] = []
    at, i = 0, 0
    while at < len(raw):
        size = sizes[i % len(sizes)]
        pieces.extend(decoder.feed(raw[at : at + size]))
        at, i = at + size, i + 1
    pieces.extend(decoder.finish())
    return pieces


def body_bytes(chunks: list[bytes], repeat: int) -> bytes:
    return b"".join(chunk * repeat for chunk in chunks)


@settings(max_examples=150, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=200), max_size=8),
    repeat=st.integers(1, 400),
    ways=st.lists(st.sampled_from(sorted(ENCODERS)), max_size=3),
    sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=6),
)
def test_encoded_bodies_round_trip_in_any_chunking(
    chunks: list[bytes], repeat: int, ways: list[str], sizes: list[int]
) -> None:
    data = body_bytes(chunks, repeat)  # random bytes, often very compressible
    raw, header = encode(data, ways)
    pieces = decode([header], raw, sizes)
    assert b"".join(pieces) == data
    assert all(0 < len(piece) <= STEP for piece in pieces)


def test_a_long_body_comes_out_in_bounded_pieces() -> None:
    data = os.urandom(300_000) + bytes(3_000_000)
    for way in ("gzip", "deflate (zlib)", "deflate (raw)", "br"):
        raw, header = encode(data, [way])
        pieces = decode([header], raw, [len(raw)])  # all input at once
        assert b"".join(pieces) == data, way
        assert max(map(len, pieces)) <= STEP, way


def test_gzip_members_are_concatenated_and_trailing_garbage_is_ignored() -> None:
    raw = gzip.compress(b"first ") + gzip.compress(b"second")
    assert b"".join(decode(["gzip"], raw, [3])) == b"first second"
    assert b"".join(decode(["gzip"], raw + b"\0\0\0\0", [7])) == b"first second"
    assert b"".join(decode(["gzip"], gzip.compress(b"only") + b"<html>junk", [100])) == b"only"


def test_a_truncated_stream_gives_what_it_has() -> None:
    data = os.urandom(50_000)
    for way in ("gzip", "deflate (zlib)", "br"):
        raw, header = encode(data, [way])
        out = b"".join(decode([header], raw[: len(raw) // 2], [1000]))
        assert data.startswith(out) and len(out) < len(data), way


def test_codings_are_parsed_from_every_header_value() -> None:
    assert parse_codings(["gzip, Identity", " X-GZIP ,, br"]) == ["gzip", "x-gzip", "br"]
    assert parse_codings(["identity"]) == [] and parse_codings([]) == []
    assert not Decoder([], 10).encoded and Decoder(["gzip"], 10).encoded


@pytest.mark.parametrize("coding", ["zstd", "compress", "x-compress", "exi", "pack200-gzip", "bogus"])
def test_codings_that_cannot_be_bounded_are_refused(coding: str) -> None:
    with pytest.raises(UnsupportedEncoding) as err:
        Decoder(["gzip", coding], 1000)
    assert err.value.coding == coding and repr(coding) in str(err.value)


def test_too_many_stacked_codings_are_refused() -> None:
    Decoder(["gzip"] * MAX_LAYERS, 1000)
    with pytest.raises(UnsupportedEncoding):
        Decoder(["gzip"] * (MAX_LAYERS + 1), 1000)


def test_accept_encoding_names_only_what_can_be_bounded() -> None:
    assert ACCEPT_ENCODING == "gzip, deflate, br"  # brotli >= 1.2 is installed


@pytest.mark.parametrize(
    ("codings", "raw"),
    [
        (["gzip"], b"not gzip at all"),
        (["gzip"], gzip.compress(b"x" * 1000)[:20] + b"\xff" * 40),
        (["deflate"], b"\x78\x9c" + b"\xff" * 40),
        (["deflate"], b"\xff" * 40),
        (["br"], b"definitely not brotli"),
        (["gzip", "gzip"], gzip.compress(b"inner is plain text")),
    ],
)
def test_corrupt_data_is_a_bad_encoding(codings: list[str], raw: bytes) -> None:
    with pytest.raises(BadEncoding):
        decode(codings, raw, [7])


@pytest.mark.parametrize("way", ["gzip", "deflate (zlib)", "deflate (raw)", "br"])
def test_the_decoded_size_is_capped_as_it_is_produced(way: str) -> None:
    raw, header = encode(bytes(1_000_000), [way])
    decoder = Decoder(parse_codings([header]), 100_000)
    seen = 0
    with pytest.raises(DecodedTooLarge) as err:
        for piece in decoder.feed(raw):
            seen += len(piece)
    assert err.value.final
    assert seen <= 100_000  # nothing over the cap was handed out


def test_an_intermediate_layer_is_capped_too() -> None:
    # The inner stream is a gzip member made of empty stored blocks: megabytes that decode to
    # nothing, so the final size never grows while the CPU churns. Its own cap stops it.
    empty_blocks = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + b"\x00\x00\x00\xff\xff" * 1_000_000
    raw = gzip.compress(empty_blocks)
    decoder = Decoder(["gzip", "gzip"], 100_000)
    with pytest.raises(DecodedTooLarge) as err:
        list(decoder.feed(raw))
    assert not err.value.final and "after undoing gzip" in str(err.value)
    assert decoder.decoded_size == 0


def test_the_tick_runs_between_steps_even_without_output() -> None:
    empty_blocks = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + b"\x00\x00\x00\xff\xff" * 200_000
    raw = gzip.compress(empty_blocks)
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        if ticks > 5:
            raise TimeoutError("deadline")

    with pytest.raises(TimeoutError):
        list(Decoder(["gzip", "gzip"], 10_000_000, tick=tick).feed(raw))


def test_output_after_the_end_of_a_brotli_stream_is_ignored() -> None:
    raw = brotli.compress(b"hello brotli")
    decoder = Decoder(["br"], 1000)
    out = list(decoder.feed(raw)) + list(decoder.feed(b"trailing")) + list(decoder.finish())
    assert b"".join(out) == b"hello brotli"


# --- a raw loopback server ----------------------------------------------------------------------------

Route = Callable[[socket.socket], None]


class RawServer:
    """HTTP on 127.0.0.1 with raw sockets: ``routes[path](conn)`` writes whatever it likes after
    the request head has been read. ``requests`` holds (path, lower-cased headers)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(32)
        self.port = int(self._sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            path = lines[0].split(" ")[1]
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self.requests.append((path, headers))
            route = self.routes.get(path)
            if route is None:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            else:
                route(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


def send(body: bytes, encoding: str = "", *, chunk: int = 0, extra: str = "") -> Route:
    """A route answering 200 with ``body`` as is (Content-Length, or chunked in ``chunk``-byte frames)."""

    def route(conn: socket.socket) -> None:
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nConnection: close\r\n" + extra
        if encoding:
            head += f"Content-Encoding: {encoding}\r\n"
        if not chunk:
            conn.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body)
            return
        conn.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode("latin-1"))
        for at in range(0, len(body), chunk):
            part = body[at : at + chunk]
            conn.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        conn.sendall(b"0\r\n\r\n")

    return route


@pytest.fixture(scope="module")
def server() -> Iterator[RawServer]:
    s = RawServer()
    yield s
    s.close()


#: name → (Content-Encoding, body): each expands to at least 1 GiB
BOMBS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "gzip": ("gzip", lambda: gzip_zeros(GIB)),
    "deflate": ("deflate", lambda: zlib_zeros(GIB)),
    "raw deflate": ("deflate", lambda: raw_deflate_zeros(GIB)),
    "br": ("br", lambda: brotli_zeros(GIB)),
    "gzip, gzip": ("gzip, gzip", lambda: zlib.compress(gzip_zeros(GIB), 6, wbits=31)),
}


def fetch_error(fetcher: Fetcher, url: str) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetcher.get(url)
    return info.value


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_a_bomb_stops_at_the_cap_in_bounded_memory(server: RawServer, name: str) -> None:
    encoding, build = BOMBS[name]
    body = build()
    assert len(body) < 2_000_000
    path = f"/bomb/{name.replace(' ', '-').replace(',', '')}"
    server.routes[path] = send(body, encoding)
    with Fetcher(FetchConfig(max_bytes=5_000_000, total_timeout=20)) as fetcher:
        tracemalloc.start()
        try:
            started = time.monotonic()
            err = fetch_error(fetcher, server.url(path))
            elapsed = time.monotonic() - started
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert err.status is FetchStatus.TOO_LARGE, str(err)
    assert "5000000-byte cap" in str(err)
    assert peak < 40_000_000, f"{peak / 1e6:.0f} MB allocated at the peak"
    assert elapsed < 5


CHILD = """
import json, resource, sys
from tracker.core.config import FetchConfig
from tracker.core.errors import FetchError
from tracker.sources.fetching import Fetcher

def rss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

statuses = {}
with Fetcher(FetchConfig(max_bytes=5_000_000, total_timeout=20)) as fetcher:
    fetcher.get(sys.argv[1])  # a small body first: clients, pools and TLS contexts are all built
    before = rss_kb()
    for url in sys.argv[2:]:
        try:
            fetcher.get(url)
            statuses[url] = "ok"
        except FetchError as exc:
            statuses[url] = exc.status.value
    after = rss_kb()
print(json.dumps({"statuses": statuses, "growth_kb": after - before}))
"""


def test_bombs_leave_the_peak_rss_of_a_fresh_process_nearly_unchanged(server: RawServer) -> None:
    urls = []
    for encoding, build in BOMBS.values():
        path = f"/rss-bomb/{len(urls)}"
        server.routes[path] = send(build(), encoding)
        urls.append(server.url(path))
    server.routes["/small"] = send(gzip.compress(b"<rss/>" * 1000), "gzip")
    run = subprocess.run(
        [sys.executable, "-c", CHILD, server.url("/small"), *urls], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert set(report["statuses"].values()) == {"too_large"}, report
    assert report["growth_kb"] < 100 * 1024, f"peak RSS grew by {report['growth_kb'] / 1024:.0f} MB"


# --- normal bodies through Fetcher -------------------------------------------------------------------

BODY = os.urandom(40_000) + b"<item><title>Harbour board meets</title></item>" * 5000


@pytest.mark.parametrize(
    "ways",
    [
        ["gzip"],
        ["x-gzip"],
        ["deflate (zlib)"],
        ["deflate (raw)"],
        ["br"],
        ["identity"],
        ["gzip", "gzip"],
        ["deflate (raw)", "br"],
        ["br", "identity", "gzip"],
    ],
    ids=lambda ways: "+".join(ways),
)
@pytest.mark.parametrize("chunk", [0, 1, 777])
def test_encoded_bodies_decode_over_loopback(server: RawServer, ways: list[str], chunk: int) -> None:
    raw, header = encode(BODY[:20_000] if chunk == 1 else BODY, ways)
    path = f"/ok/{'+'.join(ways).replace(' ', '')}/{chunk}"
    server.routes[path] = send(raw, header, chunk=chunk)
    with Fetcher(FetchConfig()) as fetcher:
        result = fetcher.get(server.url(path))
    assert result.body == (BODY[:20_000] if chunk == 1 else BODY)
    assert server.requests[-1][1]["accept-encoding"] == "gzip, deflate, br"


def test_both_clients_ask_only_for_boundable_encodings() -> None:
    with Fetcher(FetchConfig()) as fetcher:
        assert fetcher.client.headers["Accept-Encoding"] == ACCEPT_ENCODING
        assert fetcher.guarded.headers["Accept-Encoding"] == ACCEPT_ENCODING


@pytest.mark.parametrize("coding", ["zstd", "compress", "gzip, zstd", "whatever"])
def test_a_response_in_an_unboundable_encoding_is_an_error(server: RawServer, coding: str) -> None:
    path = f"/unbounded/{coding.replace(', ', '-')}"
    server.routes[path] = send(b"\x28\xb5\x2f\xfd" + b"\0" * 100, coding)
    with Fetcher(FetchConfig()) as fetcher:
        err = fetch_error(fetcher, server.url(path))
    assert err.status is FetchStatus.ERROR
    assert repr(coding.split(", ")[-1]) in str(err) and "refused" in str(err)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "gzip, br"])
def test_corrupt_compressed_bodies_are_errors(server: RawServer, coding: str) -> None:
    path = f"/corrupt/{coding.replace(', ', '-')}"
    server.routes[path] = send(b"\x1f\x8b this is not what it claims to be" * 10, coding)
    with Fetcher(FetchConfig()) as fetcher:
        err = fetch_error(fetcher, server.url(path))
    assert err.status is FetchStatus.ERROR
    assert "bad content encoding" in str(err)


def test_an_intermediate_layer_over_its_cap_is_too_large(server: RawServer) -> None:
    empty_blocks = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + b"\x00\x00\x00\xff\xff" * 1_000_000
    server.routes["/churn"] = send(gzip.compress(empty_blocks), "gzip, gzip")
    with Fetcher(FetchConfig(max_bytes=200_000)) as fetcher:
        err = fetch_error(fetcher, server.url("/churn"))
    assert err.status is FetchStatus.TOO_LARGE and "after undoing gzip" in str(err)


def test_decoding_that_outlasts_the_total_timeout_is_a_timeout() -> None:
    # gzip over a gzip member made of gigabytes of empty stored blocks: they decode to nothing,
    # so with a huge cap only the clock stops them. The body arrives in memory as a single raw
    # chunk, so the deadline must be checked inside the decoding, not between chunks.
    period = b"\x00\x00\x00\xff\xff" * (1 << 18)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = packer.compress(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + period)
    first += packer.flush(zlib.Z_FULL_FLUSH)
    again = packer.compress(period) + packer.flush(zlib.Z_FULL_FLUSH)
    body = first + again * 4000  # about 5 GB of empty blocks once the outer gzip is undone

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip, gzip"}, content=iter([body]))

    config = FetchConfig(max_bytes=10**12, total_timeout=0.5)
    with Fetcher(config, transport=httpx.MockTransport(handler)) as fetcher:
        started = time.monotonic()
        with pytest.raises(FetchError) as info:
            fetcher.get("https://slow-decode.example/feed")
        elapsed = time.monotonic() - started
    assert info.value.status is FetchStatus.TIMEOUT, str(info.value)
    assert "longer than 0.5s" in str(info.value)
    assert elapsed < 1.5
