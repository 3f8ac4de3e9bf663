"""Story grouping: which earlier item, if any, reports the same event as a new one.

Pure computation, no I/O. Every item gets a :class:`Signature` once; a :class:`StoryIndex`
(``index.py``) holds the signatures of a recent time window (7 days by default) and answers,
for a new item, the story it belongs to, trying in order:

``copy`` — a near duplicate (syndicated wire copy, a trimmed or lightly edited version, a
    new headline): MinHash over 5-word shingles of the text, candidates from
    locality-sensitive hashing (datasketch), estimated Jaccard ≥ ``near_duplicate``.
``update`` — an independent report of the same event, decided by a small learned model
    (``features.py``) over views of each candidate pair: the rarity-weighted vectors of
    title and lede (first 100 words) and of the whole text, each word weighted by how rare
    it is in English (wordfreq), so names, places and figures weigh most and common news
    vocabulary little; how much of each headline the other item carries, for all its words
    and for those that say what happened rather than who (a reaction or a follow-up
    restates the event in its lede, but its headline is about the new thing; one company's
    two events share the company's name, not the verb); the quotations both carry (4-word
    runs inside quotation marks); and the verdict of the hand-set test the project used
    before (``features.hand_rule``), as one piece of evidence among the others. Names
    (capitalised runs) and figures are kept too, for features the model may use. The item
    joins the story of its most probable link if that probability reaches the model's bar.
``new`` — none of the above: the item starts a story.

Candidates come from inverted indexes over each item's most distinctive words and quoted
phrases. Each word remembers only the ``posting_limit`` latest items that carry it (any
recent member of a story is enough to find the story), and only the ``max_candidates``
items sharing the most words are scored, so the cost of an assignment does not grow with
the number of items in the window (``bench/bench_stories.py``).

The model's weights and bars are trained and chosen by ``bench/train_stories.py`` on
labelled events, cross-validated with whole events left out (``tests/data/README.md``).
They lean to precision: a missed link shows an event twice, a false merge hides a new
development.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

NUM_PERM = 128
SHINGLE = 5
MIN_COPY_WORDS = 30  #: shorter texts get no MinHash: they are never anyone's copy
LEDE_WORDS = 100
TEXT_TERMS = 80  #: the whole-text vector keeps its heaviest words only
INDEX_TERMS = 12  #: words of each vector put in the inverted index
QUOTE_GRAM = 4
FIGURE_WEIGHT = 5.0  #: the rarity given to a figure ("49,000", "6.1%")
MIN_RARITY = 0.5
NAME_TERMS = 40  #: the names vector keeps its heaviest entries only

_TOKEN = re.compile(r"\w[\w'’.,%-]*\w|\w")
_EDGE = ".,'’-"
_QUOTE = re.compile(r"[“\"]([^”\"]{8,400})[”\"]")

# Ways of writing the same thing that news copy alternates between. Only spelling and
# near-synonyms of general news vocabulary belong here, never names of a tracked topic.
_SAME_WORD = {
    "carmaker": "automaker",
    "carmakers": "automaker",
    "automakers": "automaker",
    "car-maker": "automaker",
    "car-makers": "automaker",
    "ev": "electric",
    "evs": "electric",
    "u.s": "us",
    "u.s.": "us",
    "american": "us",
    "america": "us",
    "washington": "us",
    "chinese": "china",
    "beijing": "china",
    "canadian": "canada",
    "ottawa": "canada",
    "talks": "talk",
    "venture": "jv",
    "ventures": "jv",
    "jvs": "jv",
}


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    import justext  # a trafilatura dependency: its English stop list

    return frozenset(w for w in justext.get_stoplist("English") if w.isalpha())


@lru_cache(maxsize=200_000)
def _rarity(word: str) -> float:
    if any(c.isdigit() for c in word):
        return FIGURE_WEIGHT
    from wordfreq import zipf_frequency

    return max(MIN_RARITY, 7.5 - zipf_frequency(word, "en"))


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def terms(text: str, limit: int | None = None) -> list[str]:
    """The content words of ``text`` (or of its first ``limit`` words), normalized."""
    tokens = _TOKEN.findall(text)
    return _terms(tokens[:limit] if limit else tokens)


def _terms(tokens: Iterable[str]) -> list[str]:
    return [t for t in map(_term, tokens) if t is not None]


@lru_cache(maxsize=200_000)
def _term(token: str) -> str | None:
    """One token as a content word (None: a stop word, or too short to count)."""
    bare = token.strip(_EDGE)
    word = bare.lower().removesuffix("'s").removesuffix("’s")
    # two-letter words count only as figures or acronyms ("GM", "EV", "EU")
    if not word or word in _stopwords() or (len(word) < 3 and not (word.isdigit() or bare.isupper())):
        return None
    return _stem(_SAME_WORD.get(word, word))


def weigh(words: Iterable[str], keep: int | None = None) -> dict[str, float]:
    """A unit-length vector: each word's weight grows with its count and its rarity."""
    counts = Counter(words)
    weights = {w: (1 + math.log(n)) * _rarity(w) for w, n in counts.items()}
    if keep is not None and len(weights) > keep:
        weights = dict(sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:keep])
    norm = math.sqrt(sum(x * x for x in weights.values())) or 1.0
    return {w: round(x / norm, 5) for w, x in weights.items()}


def quote_grams(text: str) -> frozenset[str]:
    """4-word runs inside quotation marks with at least two content words."""
    stop = _stopwords()
    grams = set()
    for m in _QUOTE.finditer(text):
        words = [w.strip(_EDGE).lower() for w in _TOKEN.findall(m.group(1))]
        for i in range(len(words) - QUOTE_GRAM + 1):
            gram = words[i : i + QUOTE_GRAM]
            if sum(1 for w in gram if w not in stop) >= 2:
                grams.add(" ".join(gram))
    return frozenset(grams)


def cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(b) < len(a):
        a, b = b, a
    return sum(x * b.get(w, 0.0) for w, x in a.items())


@dataclass(frozen=True, slots=True)
class Signature:
    """What story grouping keeps of an item (stored in ``item_signatures``)."""

    minhash: bytes  #: a serialized datasketch LeanMinHash of the text's 5-word shingles; b"" if too short
    lede: dict[str, float]  #: title and first 100 words
    text: dict[str, float]  #: the whole text, heaviest words
    quotes: frozenset[str] = frozenset()
    headline: dict[str, float] = field(default_factory=dict)  #: the title's words, weights summing to 1
    names: dict[str, float] = field(default_factory=dict)  #: capitalised names in the text, unit length
    figures: frozenset[str] = frozenset()  #: the figures the text reports ("49,000", "6.1%"), not years

    def to_json(self) -> dict[str, Any]:
        return {
            "lede": self.lede,
            "text": self.text,
            "quotes": sorted(self.quotes),
            "headline": self.headline,
            "names": self.names,
            "figures": sorted(self.figures),
        }

    @classmethod
    def from_json(cls, minhash: bytes, data: dict[str, Any]) -> Signature:
        """Read a stored signature; those stored before a field existed get its empty default."""
        return cls(
            minhash,
            data["lede"],
            data["text"],
            frozenset(data.get("quotes", ())),
            data.get("headline", {}),
            data.get("names", {}),
            frozenset(data.get("figures", ())),
        )


def signature(title: str, text: str) -> Signature:
    from datasketch import LeanMinHash, MinHash

    found = _TOKEN.findall(text)
    tokens = [t.lower() for t in found]
    minhash = b""  # too short to call anything a copy of it (an empty text, a one-line summary)
    if len(tokens) >= MIN_COPY_WORDS:
        permutations, scheme = _permutations()
        mh = MinHash(num_perm=NUM_PERM, seed=7, permutations=permutations, scheme=scheme)
        mh.update_batch([" ".join(tokens[i : i + SHINGLE]).encode() for i in range(len(tokens) - SHINGLE + 1)])
        lean = LeanMinHash(mh)
        buf = bytearray(lean.bytesize())
        lean.serialize(buf)
        minhash = bytes(buf)
    # Terms are per token, so the lede's are the text's first ones: each token is read once.
    headline = _terms(_TOKEN.findall(title))
    lede = _terms(found[:LEDE_WORDS])
    rest = _terms(found[LEDE_WORDS:])
    return Signature(
        minhash=minhash,
        lede=weigh(headline + lede),
        text=weigh(headline + lede + rest, keep=TEXT_TERMS),
        quotes=quote_grams(text),
        headline=_shares(headline),
        names=names(text),
        figures=figures(found),
    )


@lru_cache(maxsize=1)
def _permutations() -> Any:
    """The MinHash permutations for seed 7, and their scheme (the same every time: drawn once
    per process rather than for every article)."""
    from datasketch import MinHash

    first = MinHash(num_perm=NUM_PERM, seed=7)
    return first.permutations, first.scheme


def _shares(words: list[str]) -> dict[str, float]:
    weights = {w: _rarity(w) for w in words}
    total = sum(weights.values()) or 1.0
    return {w: round(x / total, 4) for w, x in weights.items()}


def headline_shares(
    a: dict[str, float], a_lede: Iterable[str], b: dict[str, float], b_lede: Iterable[str]
) -> tuple[float, float]:
    """How much of each headline the other item's title and lede carry: rewrites of one
    event share their headline's words; a reaction or follow-up restates the event in its
    lede but puts something else in its headline, so one of its two shares is low."""
    a_words, b_words = set(a_lede), set(b_lede)
    return sum(w for t, w in a.items() if t in b_words), sum(w for t, w in b.items() if t in a_words)


_NAME_TOKEN = re.compile(r"\w[\w'’&.-]*\w|\w|[.!?]+|[^\w\s]")


def names(text: str, keep: int = NAME_TERMS) -> dict[str, float]:
    """The names a text mentions, as a unit-length vector weighted by count and rarity: runs
    of capitalised words that do not open a sentence ("Mary Barra", "Ledbury"), each run and
    each of its words. A stand-in for named entities that needs no model."""
    stop = _stopwords()
    found: list[str] = []
    run: list[str] = []

    def close() -> None:
        # "Mr", "St" and the like are no names; "GM", "EU" are
        words = [w.lower() for w in run if w.lower() not in stop and (len(w) > 2 or w.isupper())]
        found.extend(words)
        if len(words) > 1:
            found.append(" ".join(words))
        run.clear()

    opening = True  # the first word of the text, or of a sentence
    last = ""
    for token in _NAME_TOKEN.findall(text):
        if not token[0].isalnum() and token[0] != "_":
            close()
            # "U.S." and "Mr." end in a period too: after such a word no sentence opens
            abbreviation = "." in last or (len(last) <= 3 and last[:1].isupper())
            opening = opening or (token[0] in ".!?" and not (token == "." and abbreviation))
            continue
        if token[0].isupper() and not opening:
            run.append(token.removesuffix("'s").removesuffix("’s"))
        else:
            close()
        opening, last = False, token
    close()
    counts = Counter(found)
    weights = {n: (1 + math.log(c)) * max(_rarity(w) for w in n.split()) for n, c in counts.items()}
    if len(weights) > keep:
        weights = dict(sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:keep])
    norm = math.sqrt(sum(x * x for x in weights.values())) or 1.0
    return {n: round(x / norm, 5) for n, x in weights.items()}


_YEAR = re.compile(r"(19|20)\d\d")


def figures(tokens: list[str]) -> frozenset[str]:
    """The figures a text reports: tokens with a digit, trimmed of edge punctuation and
    currency signs, except years and one-digit numbers (they recur in unrelated reports)."""
    out = set()
    for token in tokens:
        bare = token.strip(_EDGE + "$€£")
        if len(bare) > 1 and any(c.isdigit() for c in bare) and not _YEAR.fullmatch(bare):
            out.add(bare.lower())
    return frozenset(out)
