"""Evaluating a compiled query over a document: the evaluator of every query node (terms and
references looked up in the document's hits, AND, OR, NOT, NEAR, ``title:``/``text:``, sentence and
paragraph scopes, ``atleast``), each over a range of words, returning whether it is true there and
the hits that make it so."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from operator import itemgetter

from tracker.rules.textindex import Doc

Hit = tuple[int, int, str]  #: (first word, end word exclusive, label)
_FALSE: tuple[bool, list[Hit]] = (False, [])
_NO_GAP = 1 << 62  #: "no partner" in gap computations
_NO_HIT: Hit = (-1, -1, "")  #: equal to no real hit
_NearFound = tuple[list[Hit], list[Hit], int, int]  #: see ``_Ctx.near``


class _Ctx:
    __slots__ = ("doc", "hits", "n", "near", "title_end")

    def __init__(self, doc: Doc, hits: dict[str, list[Hit]], title_end: int | None = None) -> None:
        self.doc = doc
        self.hits = hits
        self.n = len(doc.orig)
        #: ``title:`` means the tokens before this (in a section of a roundup: its heading).
        self.title_end = doc.title_end if title_end is None else title_end
        #: Every NEAR evaluation that found pairs: (left hits with a partner, right hits with a partner, distance,
        #: gap of the closest pair). The pairs themselves are not listed (there can be quadratically many); the
        #: score recovers the closest pair among the kept evidence from these lists (``_best_closeness``).
        self.near: list[_NearFound] = []


class _Eval:
    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        raise NotImplementedError


class _Lit(_Eval):
    def __init__(self, label: str) -> None:
        self.label = label

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        found = ctx.hits.get(self.label)
        if not found:
            return _FALSE
        if lo == 0 and hi >= ctx.n:
            return True, found
        a = bisect.bisect_left(found, (lo,))
        b = bisect.bisect_left(found, (hi,))
        inside = [h for h in found[a:b] if h[1] <= hi]
        return bool(inside), inside


class _And(_Eval):
    def __init__(self, children: Sequence[_Eval]) -> None:
        # Cheap literal checks first: they fail fastest.
        self.children = sorted(children, key=lambda c: not isinstance(c, _Lit))

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        acc: list[Hit] = []
        for child in self.children:
            ok, found = child.eval(ctx, lo, hi)
            if not ok:
                return _FALSE
            acc.extend(found)
        return True, acc


class _Or(_Eval):
    def __init__(self, children: Sequence[_Eval]) -> None:
        self.children = list(children)

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        acc: list[Hit] = []
        ok = False
        for child in self.children:
            c_ok, found = child.eval(ctx, lo, hi)
            if c_ok:
                ok = True
                acc.extend(found)
        return ok, acc


class _Not(_Eval):
    def __init__(self, child: _Eval) -> None:
        self.child = child

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        return (not self.child.eval(ctx, lo, hi)[0]), []


class _Near(_Eval):
    def __init__(self, left: _Eval, right: _Eval, distance: int) -> None:
        self.left, self.right, self.distance = left, right, distance

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        l_ok, left = self.left.eval(ctx, lo, hi)
        if not l_ok:
            return _FALSE
        r_ok, right = self.right.eval(ctx, lo, hi)
        if not r_ok:
            return _FALSE
        d = self.distance
        if len(left) * len(right) <= 16:  # a handful (one sentence or paragraph): comparing all pairs is quicker
            pairs = [(a, b) for a in left for b in right if max(b[0] - a[1], a[0] - b[1], 0) <= d and a != b]
            if not pairs:
                return _FALSE
            near_left, near_right = [a for a, _ in pairs], [b for _, b in pairs]
            closest = min(max(b[0] - a[1], a[0] - b[1], 0) for a, b in pairs)
        else:  # sorted sweeps: O((L + R) log(L + R)), where all pairs would be O(L × R)
            gaps = _nearest_gaps(left, right)
            near_left = [a for a, gap in zip(left, gaps, strict=True) if gap <= d]
            if not near_left:
                return _FALSE
            near_right = [b for b, gap in zip(right, _nearest_gaps(right, left), strict=True) if gap <= d]
            closest = min(gaps)
        ctx.near.append((near_left, near_right, d, closest))
        return True, sorted(set(near_left).union(near_right))


def _nearest_gaps(hits: Sequence[Hit], others: Sequence[Hit]) -> list[int]:
    """For each hit, the fewest words between it and a hit of ``others`` other than itself (``_NO_GAP``: none).

    O((n + m) log m): ``others`` sorted by start and by end answer, for a hit [s, e), "the first
    other starting at or after e", "the last other ending at or before s" and "does an other
    overlap [s, e)" by binary search. The last needs, for every prefix of ``others`` by start,
    the furthest end, and the furthest end of a hit that is not that one (the hit itself may be
    among the others, and a hit is never its own partner).
    """
    if not hits or not others:
        return [_NO_GAP] * len(hits)
    if len(hits) * len(others) <= 16:  # a handful (one sentence or paragraph): comparing all pairs is quicker
        return [min([max(b[0] - a[1], a[0] - b[1], 0) for b in others if b != a] or [_NO_GAP]) for a in hits]
    by_start = sorted(others, key=itemgetter(0))
    starts = [b[0] for b in by_start]
    ends = sorted(b[1] for b in others)
    # Prefix i (the first i others by start): furthest end, its hit, furthest end among the other hits.
    t_end, t_hit, s_end = -1, _NO_HIT, -1
    top_end, top_hit, second_end = [t_end], [t_hit], [s_end]
    for b in by_start:
        if b != t_hit:
            if b[1] > t_end:
                t_end, t_hit, s_end = b[1], b, t_end
            elif b[1] > s_end:
                s_end = b[1]
        top_end.append(t_end)
        top_hit.append(t_hit)
        second_end.append(s_end)
    out = []
    for a in hits:
        s, e = a[0], a[1]
        i = bisect.bisect_left(starts, e)  # others[:i] start before e; others[i] is the first at or after
        reach = second_end[i] if top_hit[i] == a else top_end[i]
        if reach > s:  # one of them also ends after s: it overlaps
            out.append(0)
            continue
        best = starts[i] - e if i < len(starts) else _NO_GAP
        j = bisect.bisect_right(ends, s)  # ends[:j] end at or before s
        if j and s - ends[j - 1] < best:
            best = s - ends[j - 1]
        out.append(best)
    return out


def _best_closeness(near: Iterable[_NearFound], kept: set[Hit]) -> float:
    """Closeness (1 − gap / (distance + 1)) of the closest NEAR pair whose two hits are both kept evidence."""
    best = 0.0
    for left, right, d, closest in near:
        if 1 - closest / (d + 1) <= best:
            continue  # not even its closest pair would do better
        k_left = [a for a in left if a in kept]
        k_right = [b for b in right if b in kept]
        if len(k_left) == len(left) and len(k_right) == len(right):
            gap = closest  # all kept: its closest pair counts
        else:
            gap = min(_nearest_gaps(k_left, k_right), default=_NO_GAP)
        if gap <= d:
            best = max(best, 1 - gap / (d + 1))
    return best


class _Field(_Eval):
    def __init__(self, field: str, child: _Eval) -> None:
        self.title = field == "title"
        self.child = child

    def bounds(self, ctx: _Ctx, lo: int, hi: int) -> tuple[int, int]:
        split = ctx.title_end
        return (lo, min(hi, split)) if self.title else (max(lo, split), hi)

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        lo, hi = self.bounds(ctx, lo, hi)
        if lo >= hi:
            return _FALSE
        return self.child.eval(ctx, lo, hi)


class _Scope(_Eval):
    def __init__(self, scope: str, child: _Eval, anchor: frozenset[str] | None) -> None:
        self.sentence = scope == "sentence"
        self.child = child
        self.anchor = anchor

    def windows(self, ctx: _Ctx, lo: int, hi: int) -> list[list[Hit]]:
        """Evidence of every window (within [lo, hi)) in which the child is true."""
        spans = ctx.doc.sentences if self.sentence else ctx.doc.paragraphs
        starts = ctx.doc.sent_starts if self.sentence else ctx.doc.para_starts
        if self.anchor is None:
            candidates: Iterable[int] = _windows_in(starts, spans, lo, hi)
        else:
            # Only windows holding an anchor term (one starting in [lo, hi)) can satisfy the child.
            candidates = sorted(
                {
                    bisect.bisect_right(starts, h[0]) - 1
                    for label in self.anchor
                    for h in _starting_in(ctx.hits.get(label, []), lo, hi)
                }
            )
        out = []
        for n in candidates:
            w_lo, w_hi = spans[n]
            a, b = max(lo, w_lo), min(hi, w_hi)
            if a < b:
                ok, found = self.child.eval(ctx, a, b)
                if ok:
                    out.append(found)
        return out

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        wins = self.windows(ctx, lo, hi)
        return (True, [h for w in wins for h in w]) if wins else _FALSE


def _windows_in(starts: Sequence[int], spans: Sequence[tuple[int, int]], lo: int, hi: int) -> range:
    """Numbers of the windows (sentences or paragraphs) that share a word with [lo, hi)."""
    first = max(bisect.bisect_right(starts, lo) - 1, 0)
    while first < len(spans) and spans[first][1] <= lo:  # lo falls after the window it starts in
        first += 1
    return range(first, bisect.bisect_left(starts, hi))


def _starting_in(hits: Sequence[Hit], lo: int, hi: int) -> Sequence[Hit]:
    """The hits (sorted) that start in [lo, hi)."""
    if lo <= 0 and (not hits or hits[-1][0] < hi):
        return hits
    return hits[bisect.bisect_left(hits, (lo,)) : bisect.bisect_left(hits, (hi,))]


class _AtLeast(_Eval):
    def __init__(self, count: int, child: _Eval) -> None:
        self.count, self.child = count, child

    def eval(self, ctx: _Ctx, lo: int, hi: int) -> tuple[bool, list[Hit]]:
        child = self.child
        if isinstance(child, _Field) and isinstance(child.child, _Scope):  # atleast(n, text:paragraph(...))
            lo, hi = child.bounds(ctx, lo, hi)
            child = child.child
        if isinstance(child, _Scope):
            wins = child.windows(ctx, lo, hi)
            if len(wins) < self.count:
                return _FALSE
            return True, [h for w in wins for h in w]
        ok, found = self.child.eval(ctx, lo, hi)
        if not ok or len({(h[0], h[1]) for h in found}) < self.count:
            return _FALSE
        return True, found
