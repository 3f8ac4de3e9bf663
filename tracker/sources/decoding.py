"""Content-Encoding undone in bounded steps, so a compression bomb costs no more memory than the cap.

httpx decodes each raw chunk of a response in one call, so 809 bytes of brotli can become 2 GB before
anyone looks at the size. ``Decoder`` undoes a response's Content-Encoding list itself, one layer per
coding (the coding applied last is undone first), and every layer hands on at most about ``STEP`` bytes
at a time. The total each stage produces is counted and capped: the decoded body at ``limit``, the raw
input and any intermediate layer at ``limit`` plus a little (compressed data is never much bigger than
what it decodes to). Memory stays about ``limit + layers × STEP`` whatever the ratio, and ``tick`` is
called between steps, so a caller can enforce a deadline even while a layer produces nothing.

Only codings that can be decoded in bounded steps are accepted: ``gzip`` (``x-gzip``, several members
allowed), ``deflate`` (zlib-wrapped or raw, as browsers and httpx tolerate), ``br`` (only with brotli
1.2 or newer, whose decompressor takes an output limit) and ``identity``. Anything else (``zstd``,
``compress``, unknown tokens) is refused before the body is read.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

_brotli_module: Any
try:
    _brotli_module = importlib.import_module("brotli")
except ImportError:  # pragma: no cover - brotli is a dependency
    _brotli_module = None

#: output of one decoding step, per layer
STEP = 64 * 1024
#: brotli's output limit is checked per block of its output buffer (the first one is 32752 bytes,
#: later ones double), so a limit under one block gives at most one block per call
_BROTLI_STEP = 16 * 1024
#: more stacked codings than this is refused (each layer holds a decoder's window)
MAX_LAYERS = 4

Tick = Callable[[], None]


def _no_tick() -> None:
    return None


class DecodeError(Exception):
    """The body cannot be decoded."""


class BadEncoding(DecodeError):
    """The bytes are not valid data for the declared coding."""


class UnsupportedEncoding(DecodeError):
    """A coding that cannot be decoded in bounded memory (or too many codings)."""

    def __init__(self, coding: str, why: str) -> None:
        self.coding = coding
        super().__init__(f"content encoding {coding!r} refused: {why}")


class DecodedTooLarge(DecodeError):
    """A stage produced more than its cap; ``final`` when it is the decoded body."""

    def __init__(self, stage: str, limit: int, *, final: bool) -> None:
        self.stage = stage
        self.limit = limit
        self.final = final
        super().__init__(f"{stage} is over {limit} bytes")


def _brotli_is_bounded() -> bool:
    """True when the installed brotli can stop producing output at a limit (brotli >= 1.2)."""
    if _brotli_module is None:
        return False
    decompressor = _brotli_module.Decompressor()
    if not hasattr(decompressor, "can_accept_more_data"):
        return False
    try:
        decompressor.process(b"", output_buffer_limit=1)
    except TypeError:
        return False
    return True


BROTLI_BOUNDED = _brotli_is_bounded()
#: the codings we can bound, for the Accept-Encoding request header
ACCEPT_ENCODING = "gzip, deflate, br" if BROTLI_BOUNDED else "gzip, deflate"


class _Layer(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def finish(self) -> Iterator[bytes]: ...


def _looks_zlib_wrapped(head: bytes) -> bool:
    """RFC 1950 header: method 8 (deflate), window ≤ 32 KiB, header checksum a multiple of 31."""
    cmf, flg = head[0], head[1]
    return cmf & 0x0F == 8 and cmf >> 4 <= 7 and (cmf << 8 | flg) % 31 == 0


class _Inflate:
    """gzip (one member after another) or deflate (zlib-wrapped or raw, told apart by the header)."""

    def __init__(self, coding: str, tick: Tick) -> None:
        self._coding = coding
        self._gzip = coding == "gzip"
        self._tick = tick
        self._head = b""  # deflate: the first bytes, held until the header can be checked
        self._z: Any = zlib.decompressobj(16 + zlib.MAX_WBITS) if self._gzip else None
        self._members = 0  # gzip members completed
        self._member_out = False  # the current member has produced output
        self._done = False  # the stream ended: anything after it is ignored

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._z is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            wbits = zlib.MAX_WBITS if _looks_zlib_wrapped(data) else -zlib.MAX_WBITS
            self._z = zlib.decompressobj(wbits)
        yield from self._inflate(data)

    def finish(self) -> Iterator[bytes]:
        # A truncated stream gives what it has, as httpx does; pending output is drained in steps.
        if self._z is not None:
            yield from self._inflate(b"")

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        while not self._done:
            self._tick()
            try:
                out = self._z.decompress(data, STEP)
            except zlib.error as exc:
                if self._members and not self._member_out:
                    self._done = True  # not another gzip member: trailing garbage, ignored
                    return
                raise BadEncoding(f"{self._coding}: {exc}") from exc
            if out:
                self._member_out = True
                yield out
            if self._z.eof:
                if not self._gzip:
                    self._done = True
                    return
                # The next gzip member (if any) starts right after this one.
                data = self._z.unused_data
                self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._members += 1
                self._member_out = False
                if not data:
                    return
                continue
            data = self._z.unconsumed_tail
            if not data and len(out) < STEP:
                return  # input used up and no output pending


class _Brotli:
    def __init__(self, tick: Tick) -> None:
        assert _brotli_module is not None
        self._d: Any = _brotli_module.Decompressor()
        self._tick = tick

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._d.is_finished():
            return  # trailing bytes after the stream are ignored
        out = self._process(data)
        # The decoder may hold more output even when it could take more input: ask until it has none.
        while True:
            if out:
                yield out
            elif self._d.can_accept_more_data() or self._d.is_finished():
                return
            self._tick()
            out = self._process(b"")

    def finish(self) -> Iterator[bytes]:
        return iter(())  # every step drains what it can; a truncated stream gives what it has

    def _process(self, data: bytes) -> bytes:
        try:
            out: bytes = self._d.process(data, output_buffer_limit=_BROTLI_STEP)
        except _brotli_module.error as exc:
            raise BadEncoding(f"br: {exc}") from exc
        return out


def _layer(coding: str, tick: Tick) -> _Layer:
    if coding in ("gzip", "x-gzip"):
        return _Inflate("gzip", tick)
    if coding == "deflate":
        return _Inflate("deflate", tick)
    if coding == "br":
        if not BROTLI_BOUNDED:
            raise UnsupportedEncoding(coding, "the installed brotli (< 1.2) cannot limit its output")
        return _Brotli(tick)
    raise UnsupportedEncoding(coding, "it cannot be decoded in bounded memory")


def parse_codings(values: Iterable[str]) -> list[str]:
    """Content-Encoding header values → the codings in the order they were applied (identity dropped)."""
    codings = []
    for value in values:
        for token in value.split(","):
            coding = token.strip().lower()
            if coding and coding != "identity":
                codings.append(coding)
    return codings


class Decoder:
    """Undoes ``codings`` (in the order they were applied) as raw bytes arrive; see the module doc.

    ``feed`` and ``finish`` yield decoded pieces; they raise ``DecodedTooLarge`` when a stage goes
    over its cap, ``BadEncoding`` on corrupt data. The constructor raises ``UnsupportedEncoding``.
    """

    def __init__(self, codings: Iterable[str], limit: int, *, tick: Tick = _no_tick) -> None:
        names = list(codings)
        if len(names) > MAX_LAYERS:
            raise UnsupportedEncoding(", ".join(names), f"more than {MAX_LAYERS} stacked codings")
        self._layers = [_layer(name, tick) for name in reversed(names)]
        self._names = list(reversed(names))
        slack = limit + limit // 8 + STEP
        #: stage i is the input of layer i; the last stage is the decoded body
        self._limits = [slack] * len(self._layers) + [limit]
        self._sizes = [0] * (len(self._layers) + 1)

    @property
    def encoded(self) -> bool:
        """False when the body is sent as is."""
        return bool(self._layers)

    @property
    def decoded_size(self) -> int:
        return self._sizes[-1]

    def feed(self, data: bytes) -> Iterator[bytes]:
        yield from self._push(0, data)

    def finish(self) -> Iterator[bytes]:
        for i, layer in enumerate(self._layers):
            for piece in layer.finish():
                yield from self._push(i + 1, piece)

    def _push(self, stage: int, data: bytes) -> Iterator[bytes]:
        self._sizes[stage] += len(data)
        if self._sizes[stage] > self._limits[stage]:
            final = stage == len(self._layers)
            raise DecodedTooLarge(self._stage_name(stage), self._limits[stage], final=final)
        if stage == len(self._layers):
            if data:
                yield data
            return
        for piece in self._layers[stage].feed(data):
            yield from self._push(stage + 1, piece)

    def _stage_name(self, stage: int) -> str:
        if stage == len(self._layers):
            return "the decoded body"
        if stage == 0:
            return "the encoded body"
        return f"the body after undoing {', '.join(self._names[:stage])}"
