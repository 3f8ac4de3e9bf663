"""The story index: the signatures of a recent window, inverted indexes over their most
distinctive words and quotes, and the decision for a new item (copy, update or new story).

See :mod:`tracker.stories.signature` for the three outcomes and :mod:`tracker.stories.features`
for the learned decision. Each candidate of the window is scored by the model; the item
joins the story holding its most probable link when that reaches the join bar.

Two stories become one only on strong evidence for both: when the item's best link into
each of them reaches the model's merge bar, and the two items it links to look alike
themselves (their ledes' cosine at least ``merge_affinity``). An item that merely shares
words with two stories (a round-up, a briefing) joins the closer one and merges nothing. A merge comes with
its evidence (:class:`MergeLink`: the item it linked to, the probability, the feature that
weighed most) so the caller can record why two stories were made one.

The window's word counts (how many items carry each lede word, name and figure) are kept
too, for features that weigh a word by how rare it is in the window rather than in English.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasketch import LeanMinHash

from tracker.stories.features import PairModel, Similarities, default_model, local_rarity, values
from tracker.stories.signature import INDEX_TERMS, NUM_PERM, TEXT_TERMS, Signature, _term, cosine, headline_shares

VOCAB_SLACK = 100_000  #: words the index may remember beyond its items' before it compacts
VOCAB_PER_ITEM = 4 * TEXT_TERMS
FEW_CANDIDATES = 8  #: below this many, dot products are computed one by one


@dataclass(frozen=True, slots=True)
class StoryParams:
    window: timedelta = timedelta(days=7)
    near_duplicate: float = 0.45  #: estimated Jaccard similarity of 5-word shingles
    #: the probabilities an update needs (None: the bars shipped with the model)
    join: float | None = None
    merge: float | None = None
    posting_limit: int = 64  #: items remembered per indexed word: the latest ones
    max_candidates: int = 100  #: items scored per assignment: those sharing the most words
    #: a merge also needs the two stories' linked items to be this alike (cosine of their ledes)
    merge_affinity: float = 0.15


@dataclass(frozen=True, slots=True)
class MergeLink:
    """Why a story was merged into another: the item of it the new item matched, and how well."""

    story_id: int  #: the story merged away
    item_id: int  #: its item the new item links to most strongly
    probability: float  #: the model's probability for that link
    links: int  #: how many of its items the new item links to at the join bar
    reason: str  #: the feature that weighed most for that link ("headline", "text", …)


@dataclass(frozen=True, slots=True)
class Assignment:
    story_id: int | None  #: None: the item starts a new story
    role: str  #: "new", "update" or "copy"
    item_id: int | None = None  #: the item it was found similar to
    similarity: float = 0.0  #: copy: estimated Jaccard; update: the model's probability
    reason: str = ""  #: "near-duplicate", or for an update the feature that weighed most ("lede", "names", …)
    #: other stories the item also belongs to: they are the same story, merged into ``story_id``
    merges: tuple[int, ...] = ()
    merge_links: tuple[MergeLink, ...] = ()  #: the evidence for each of ``merges``, in the same order


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
    __slots__ = (
        "figures",
        "head_event",
        "head_names",
        "headline",
        "keys",
        "lean",
        "lede",
        "names",
        "quotes",
        "story_id",
        "text",
        "vocabulary",
        "when",
    )

    def __init__(self, story_id: int, when: datetime, sig: Signature, vocab: _Vocab) -> None:
        self.story_id = story_id
        self.when = when
        self.lede = _Sparse(sig.lede, vocab)
        self.text = _Sparse(sig.text, vocab)
        self.quotes = sig.quotes
        self.headline = sig.headline
        self.names = sig.names
        self.figures = sig.figures
        self.head_names, self.vocabulary = _name_view(sig)
        self.head_event = _event_words(sig.headline, self.head_names)
        self.keys = tuple(sys.intern(k) for k in _index_keys(sig))
        self.lean = _lean(sig.minhash) if sig.minhash else None


def _overlap(a: _Sparse, b: _Sparse) -> float:
    """The cosine of two indexed vectors."""
    weights: dict[str, float] = dict(zip(a.words, a.weights.tolist(), strict=True))
    other: list[float] = b.weights.tolist()
    return float(sum(x * weights.get(w, 0.0) for w, x in zip(b.words, other, strict=True)))


def _reweigh(shares: dict[str, float], rarity: Callable[[str], float]) -> dict[str, float]:
    """Headline shares with each word weighed by ``rarity`` too, summing to 1 again."""
    weights = {w: x * rarity(w) for w, x in shares.items()}
    total = sum(weights.values()) or 1.0
    return {w: x / total for w, x in weights.items()}


def _reason(model: PairModel, x: list[float]) -> str:
    """The feature that weighed most for a link."""
    contributions = model.contributions(x)
    return max(contributions, key=lambda k: contributions[k])


def _event_words(headline: dict[str, float], names: dict[str, float]) -> dict[str, float]:
    """What the headline says happened: its words that are not names, shares summing to 1."""
    rest = {t: w for t, w in headline.items() if t not in names}
    total = sum(rest.values()) or 1.0
    return {t: w / total for t, w in rest.items()}


def _name_view(sig: Signature) -> tuple[dict[str, float], frozenset[str]]:
    """The headline's words that are names in the text (with their headline shares), and
    every word the item uses (title, lede, heaviest text words, names)."""
    named = {t for n in sig.names if " " not in n and (t := _term(n)) is not None}
    vocabulary = frozenset(sig.lede) | frozenset(sig.text) | named
    return {t: w for t, w in sig.headline.items() if t in named}, vocabulary


def _new_name(a: tuple[dict[str, float], frozenset[str]], b: tuple[dict[str, float], frozenset[str]]) -> float:
    """The larger of the two headline shares taken by names the other item never uses: a
    reaction puts its new actor ("union condemns …") in the headline."""
    return max(
        sum(w for t, w in a[0].items() if t not in b[1]),
        sum(w for t, w in b[0].items() if t not in a[1]),
    )


def _df_keys(entry: _Entry) -> list[str]:
    return [*entry.lede.words, *(f"n:{k}" for k in entry.names), *(f"f:{f}" for f in entry.figures)]


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
    model: PairModel = field(default_factory=default_model)
    _df: Counter[str] = field(default_factory=Counter)  #: lede word, "n:" name or "f:" figure → items with it

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
        model = self.model
        join = model.join if p.join is None else p.join
        bar = model.merge if p.merge is None else p.merge
        links: dict[int, list[tuple[float, int, list[float]]]] = {}  # story → (probability, item, features)
        for item_id, x in self.evidence(sig, when):
            probability = model.probability(x)
            if probability >= join:
                links.setdefault(self._entries[item_id].story_id, []).append((probability, item_id, x))
        if not links:
            return Assignment(None, "new")
        top = {s: max(found, key=lambda f: (f[0], -f[1])) for s, found in links.items()}
        target = max(top, key=lambda s: (top[s][0], -top[s][1]))
        probability, item_id, x = top[target]
        reason = _reason(model, x)
        # Two stories become one only on strong evidence for each, and when they look alike
        # themselves: an item that shares words with two stories (a round-up, a briefing)
        # joins the closer one and leaves the other alone.
        lead = self._entries[item_id].lede
        merged = (
            [
                s
                for s in top
                if s != target
                and top[s][0] >= bar
                and _overlap(lead, self._entries[top[s][1]].lede) >= p.merge_affinity
            ]
            if probability >= bar
            else []
        )
        if not merged:
            return Assignment(target, "update", item_id, round(probability, 3), reason)
        # The story that started first survives.
        story = min([target, *merged], key=lambda s: (self._starts[s], s))
        others = tuple(sorted(s for s in (target, *merged) if s != story))
        evidence = tuple(
            MergeLink(s, top[s][1], round(top[s][0], 3), len(links[s]), _reason(model, top[s][2])) for s in others
        )
        return Assignment(story, "update", item_id, round(probability, 3), reason, others, evidence)

    def evidence(self, sig: Signature, when: datetime) -> list[tuple[int, list[float]]]:
        """The candidate items within the window of an item with ``sig`` at ``when``, each
        with the values of the model's features for the pair (see ``features.FEATURES``)."""
        found = [i for i in self._candidates(sig) if abs(self._entries[i].when - when) <= self.params.window]
        if not found:
            return []
        entries = [self._entries[i] for i in found]
        n = len(self._entries) + 1  # the window's items and this one
        df = self._df

        def rarity(key: str) -> float:
            return local_rarity(df[key] + 1, n)

        local = {w: x * rarity(w) for w, x in sig.lede.items()}
        names = {k: x * rarity(f"n:{k}") for k, x in sig.names.items()}
        figures = {f: rarity(f"f:{f}") for f in sig.figures}
        ledes = _dots([e.lede for e in entries], self._vocab.query(sig.lede), self._vocab)
        texts = _dots([e.text for e in entries], self._vocab.query(sig.text), self._vocab)
        locals_ = _dots([e.lede for e in entries], self._vocab.query(local), self._vocab)
        view = _name_view(sig)
        event = _event_words(sig.headline, view[0])
        headline = _reweigh(sig.headline, rarity)
        out = []
        for item_id, entry, lede, text, near in zip(found, entries, ledes, texts, locals_, strict=True):
            shared = sig.figures & entry.figures
            similarities = Similarities(
                lede=lede,
                text=text,
                headlines=headline_shares(sig.headline, sig.lede, entry.headline, entry.lede.words),
                names=cosine(sig.names, entry.names),
                names_local=cosine(names, entry.names),
                figures=len(shared),
                figures_local=sum(figures[f] for f in shared),
                quotes=len(sig.quotes & entry.quotes),
                hours=(when - entry.when).total_seconds() / 3600,
                lede_local=near,
                new_name=_new_name(view, (entry.head_names, entry.vocabulary)),
                events=headline_shares(event, sig.lede, entry.head_event, entry.lede.words),
                headlines_local=headline_shares(headline, sig.lede, _reweigh(entry.headline, rarity), entry.lede.words),
            )
            out.append((item_id, values(similarities)))
        return out

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
        self._df.update(_df_keys(entry))
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
            for key in _df_keys(entry):
                self._df[key] -= 1
                if self._df[key] <= 0:
                    del self._df[key]
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


def group(
    items: Iterable[tuple[int, datetime, Signature]], params: StoryParams | None = None, model: PairModel | None = None
) -> dict[int, int]:
    """Assign stories to a batch of items in time order: item id → story id (the id of the
    story's first item). For evaluation and tests; the pipeline assigns one item at a time."""
    index = StoryIndex(params or StoryParams(), model=model or default_model())
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
