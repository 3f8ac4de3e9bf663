"""The story index: the signatures of a recent window, inverted indexes over their most
distinctive words and quotes, and the decision for a new item (copy, update or new story).

See :mod:`tracker.stories.signature` for the three tests and how the thresholds were chosen.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasketch import LeanMinHash

from tracker.stories.signature import INDEX_TERMS, NUM_PERM, TEXT_TERMS, Signature, headline_agreement

VOCAB_SLACK = 100_000  #: words the index may remember beyond its items' before it compacts
VOCAB_PER_ITEM = 4 * TEXT_TERMS
FEW_CANDIDATES = 8  #: below this many, dot products are computed one by one


@dataclass(frozen=True, slots=True)
class StoryParams:
    window: timedelta = timedelta(days=7)
    near_duplicate: float = 0.45  #: estimated Jaccard similarity of 5-word shingles
    same_lede: float = 0.36
    same_text: float = 0.45
    quoted_lede: float = 0.15
    #: below ``sure_lede`` and ``sure_text``, and without a shared quote, the headlines must agree
    headline_agreement: float = 0.42
    sure_lede: float = 0.5
    sure_text: float = 0.55
    posting_limit: int = 64  #: items remembered per indexed word: the latest ones
    max_candidates: int = 100  #: items scored per assignment: those sharing the most words


@dataclass(frozen=True, slots=True)
class Assignment:
    story_id: int | None  #: None: the item starts a new story
    role: str  #: "new", "update" or "copy"
    item_id: int | None = None  #: the item it was found similar to
    similarity: float = 0.0
    reason: str = ""  #: "near-duplicate", "lede", "text" or "quote"
    #: other stories the item also belongs to: they are the same story, merged into ``story_id``
    merges: tuple[int, ...] = ()


class _Sparse:
    """A signature vector kept compactly for batch dot products: vocabulary ids (int32) and
    weights (float32), plus the words themselves (interned) for headline agreement."""

    __slots__ = ("ids", "weights", "words")

    def __init__(self, vector: dict[str, float], vocab: _Vocab) -> None:
        import numpy as np

        self.words = tuple(sys.intern(w) for w in vector)
        self.ids = np.fromiter((vocab.id(w) for w in self.words), dtype=np.int32, count=len(self.words))
        self.weights = np.fromiter(vector.values(), dtype=np.float32, count=len(self.words))


class _Vocab:
    """Word → small integer, for the words of the indexed vectors."""

    __slots__ = ("_dense", "ids")

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self._dense: Any = None

    def dense(self) -> Any:
        """A zeroed float64 array with a slot per known word (kept and grown; callers put back
        the zeros they overwrite)."""
        import numpy as np

        if self._dense is None or len(self._dense) < len(self.ids):
            self._dense = np.zeros(max(1024, 2 * len(self.ids)))
        return self._dense

    def id(self, word: str) -> int:
        found = self.ids.get(word)
        if found is None:
            found = self.ids[word] = len(self.ids)
        return found

    def query(self, vector: dict[str, float]) -> tuple[Any, Any, dict[str, float]]:
        """The known words of ``vector`` as (sorted ids, their weights, the vector); unknown
        words are in no indexed vector, so they add nothing to a dot product."""
        import numpy as np

        pairs = sorted((i, x) for w, x in vector.items() if (i := self.ids.get(w)) is not None)
        ids = np.fromiter((i for i, _ in pairs), dtype=np.int32, count=len(pairs))
        weights = np.fromiter((x for _, x in pairs), dtype=np.float64, count=len(pairs))
        return ids, weights, vector


def _dots(
    vectors: list[_Sparse], query: tuple[Any, Any, dict[str, float]], vocab: _Vocab, few: int = FEW_CANDIDATES
) -> list[float]:
    """The dot product of ``query`` (from ``vocab.query``) with each of ``vectors``, at once."""
    import numpy as np

    q_ids, q_weights, q_dict = query
    if len(vectors) < few:  # numpy's overhead outweighs a few short loops
        return [sum(x * q_dict.get(w, 0.0) for w, x in zip(v.words, v.weights.tolist(), strict=True)) for v in vectors]
    if not len(q_ids):
        return [0.0] * len(vectors)
    ids = np.concatenate([v.ids for v in vectors])
    weights = np.concatenate([v.weights for v in vectors])
    dense = vocab.dense()
    dense[q_ids] = q_weights  # the query over the whole vocabulary: a gather instead of a search
    try:
        products = dense[ids] * weights
    finally:
        dense[q_ids] = 0.0
    sizes = np.fromiter((len(v.ids) for v in vectors), dtype=np.int64, count=len(vectors))
    # np.add.reduceat misreads empty segments: sum with a cumulative total instead.
    total = np.concatenate(([0.0], np.cumsum(products)))
    ends = np.cumsum(sizes)
    return [float(x) for x in total[ends] - total[ends - sizes]]


class _Entry:
    __slots__ = ("headline", "keys", "lean", "lede", "quotes", "story_id", "text", "when")

    def __init__(self, story_id: int, when: datetime, sig: Signature, vocab: _Vocab) -> None:
        self.story_id = story_id
        self.when = when
        self.lede = _Sparse(sig.lede, vocab)
        self.text = _Sparse(sig.text, vocab)
        self.quotes = sig.quotes
        self.headline = sig.headline
        self.keys = tuple(sys.intern(k) for k in _index_keys(sig))
        self.lean = _lean(sig.minhash) if sig.minhash else None


def _index_keys(sig: Signature) -> list[str]:
    def top(vector: dict[str, float]) -> list[str]:
        return [w for w, _ in sorted(vector.items(), key=lambda kv: (-kv[1], kv[0]))[:INDEX_TERMS]]

    keys = {f"l:{w}" for w in top(sig.lede)} | {f"t:{w}" for w in top(sig.text)}
    keys |= {f"q:{g}" for g in sig.quotes}
    return sorted(keys)


@dataclass
class StoryIndex:
    """The signatures of recent items, indexed for story assignment."""

    params: StoryParams = field(default_factory=StoryParams)
    _entries: dict[int, _Entry] = field(default_factory=dict)
    _postings: dict[str, list[int]] = field(default_factory=dict)  #: word → latest items, oldest first
    _members: dict[int, set[int]] = field(default_factory=dict)  #: story → its indexed items
    _starts: dict[int, datetime] = field(default_factory=dict)  #: story → its earliest indexed item
    _lsh: Any = None
    _vocab: _Vocab = field(default_factory=_Vocab)

    def lsh(self) -> Any:
        """The MinHash LSH index, made at first use: importing datasketch takes most of a second,
        which a command or a cycle that stores nothing should not pay."""
        if self._lsh is None:
            from datasketch import MinHashLSH

            # LSH finds pairs near its threshold only half the time: look below the decision line.
            self._lsh = MinHashLSH(threshold=self.params.near_duplicate * 0.6, num_perm=NUM_PERM)
        return self._lsh

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._entries

    def assign(self, sig: Signature, when: datetime) -> Assignment:
        """The story of an item with signature ``sig`` published at ``when``."""
        p = self.params
        best: tuple[float, int] | None = None
        if sig.minhash:
            lean = _lean(sig.minhash)
            for key in self.lsh().query(lean):
                entry = self._entries.get(key)
                if entry is None or entry.lean is None or abs(entry.when - when) > p.window:
                    continue
                similarity = float(lean.jaccard(entry.lean))
                if similarity >= p.near_duplicate and (best is None or (similarity, -key) > (best[0], -best[1])):
                    best = (similarity, key)
        if best is not None:
            return Assignment(self._entries[best[1]].story_id, "copy", best[1], round(best[0], 3), "near-duplicate")
        matched: dict[int, tuple[float, int, str]] = {}  # story → best (score, item, reason)
        found = [i for i in self._candidates(sig) if abs(self._entries[i].when - when) <= p.window]
        entries = [self._entries[i] for i in found]
        ledes = _dots([e.lede for e in entries], self._vocab.query(sig.lede), self._vocab)
        texts = _dots([e.text for e in entries], self._vocab.query(sig.text), self._vocab)
        for item_id, entry, lede, text in zip(found, entries, ledes, texts, strict=True):
            if lede >= p.sure_lede:
                text = 1.0
            quoted = bool(sig.quotes & entry.quotes)
            if lede >= p.same_lede:
                score, reason = lede, "lede"
            elif text >= p.same_text:
                score, reason = text, "text"
            elif lede >= p.quoted_lede and quoted:
                score, reason = lede, "quote"
            else:
                continue
            if not (quoted or lede >= p.sure_lede or text >= p.sure_text) and (
                headline_agreement(sig.headline, sig.lede, entry.headline, entry.lede.words) < p.headline_agreement
            ):
                continue
            best_here = matched.get(entry.story_id)
            if best_here is None or (score, -item_id) > (best_here[0], -best_here[1]):
                matched[entry.story_id] = (score, item_id, reason)
        if not matched:
            return Assignment(None, "new")
        # An item that reports what two stories report makes them one: the oldest survives.
        story = min(matched, key=lambda s: (self._starts[s], s))
        score, item_id, reason = max(matched.values(), key=lambda m: (m[0], -m[1]))
        merges = tuple(sorted(s for s in matched if s != story))
        return Assignment(story, "update", item_id, round(score, 3), reason, merges)

    def merge(self, stories: Iterable[int], into: int) -> None:
        """Relabel the items of ``stories`` as members of story ``into``."""
        for story in stories:
            if story == into:
                continue
            for item_id in self._members.pop(story, ()):
                self._entries[item_id].story_id = into
                self._members.setdefault(into, set()).add(item_id)
            start = self._starts.pop(story, None)
            if start is not None:
                self._starts[into] = min(start, self._starts.get(into, start))

    def _candidates(self, sig: Signature) -> list[int]:
        """The indexed items sharing the most distinctive words (or quotes) with ``sig``."""
        shared: Counter[int] = Counter()
        for key in _index_keys(sig):
            posting = self._postings.get(key)
            if posting:
                shared.update(posting)
        # One shared word is chance; two distinctive words or a shared quotation are not.
        return [
            item
            for item, n in shared.most_common(self.params.max_candidates)
            if n >= 2 or (sig.quotes and sig.quotes & self._entries[item].quotes)
        ]

    def add(self, item_id: int, story_id: int, when: datetime, sig: Signature) -> None:
        if item_id in self._entries:
            return
        entry = _Entry(story_id, when, sig, self._vocab)
        self._entries[item_id] = entry
        self._members.setdefault(story_id, set()).add(item_id)
        self._starts[story_id] = min(when, self._starts.get(story_id, when))
        for key in entry.keys:
            posting = self._postings.setdefault(key, [])
            posting.append(item_id)
            if len(posting) > self.params.posting_limit:
                del posting[0]
        if entry.lean is not None:
            self.lsh().insert(item_id, entry.lean, check_duplication=False)

    def prune(self, before: datetime) -> int:
        """Forget the items older than ``before``; returns how many."""
        old = [i for i, e in self._entries.items() if e.when < before]
        for item_id in old:
            entry = self._entries.pop(item_id)
            members = self._members.get(entry.story_id)
            if members is not None:
                members.discard(item_id)
                if not members:
                    del self._members[entry.story_id]
                    del self._starts[entry.story_id]
            for key in entry.keys:
                posting = self._postings.get(key)
                if posting is not None:
                    with suppress(ValueError):  # already pushed out by later items
                        posting.remove(item_id)
                    if not posting:
                        del self._postings[key]
            if entry.lean is not None:
                self.lsh().remove(item_id)
        if len(self._vocab.ids) > VOCAB_SLACK + VOCAB_PER_ITEM * len(self._entries):
            self._compact_vocab()  # a long-running index forgets the words of items long gone
        return len(old)

    def _compact_vocab(self) -> None:
        import numpy as np

        vocab = _Vocab()
        for entry in self._entries.values():
            for vector in (entry.lede, entry.text):
                vector.ids = np.fromiter((vocab.id(w) for w in vector.words), dtype=np.int32, count=len(vector.words))
        self._vocab = vocab


def _lean(data: bytes) -> LeanMinHash:
    from datasketch import LeanMinHash

    return LeanMinHash.deserialize(bytearray(data))


def group(items: Iterable[tuple[int, datetime, Signature]], params: StoryParams | None = None) -> dict[int, int]:
    """Assign stories to a batch of items in time order: item id → story id (the id of the
    story's first item). For evaluation and tests; the pipeline assigns one item at a time."""
    index = StoryIndex(params or StoryParams())
    out: dict[int, int] = {}
    for item_id, when, sig in sorted(items, key=lambda x: (x[1], x[0])):
        found = index.assign(sig, when)
        story = found.story_id if found.story_id is not None else item_id
        if found.merges:
            index.merge(found.merges, story)
            for other, its_story in out.items():
                if its_story in found.merges:
                    out[other] = story
        out[item_id] = story
        index.add(item_id, story, when, sig)
    return out
