"""What an update adds: the sentences of a new item that carry facts no earlier item of its
story carried.

Pure computation, no I/O. When an item joins a story as an independent report (``update``),
its sentences are read against what the story already holds, a :class:`Known`:

*facts*
    ``figures`` — numbers, normalised so that ways of writing one value meet: "$1.2 billion",
    "1.2bn" and "1,200,000,000" are one figure, "12 percent" and "12%" another, "three" is 3
    (but not in "the three companies"), and two large figures within 2 % of each other are
    one rounded two ways ("1.47 million", "nearly 1.5 million"); small ones must match;
    ``names`` — runs of capitalised words (people, places, organisations), leaving out a
    common word that is capitalised for starting the sentence, titles ("Minister"), months
    and weekdays. A name is new when one of its words never occurred in the story, in any
    case ("Kovanian" is not new where "Kovania" was said); within the item a name counts
    once, in its fullest form ("Omar Vidal", not also "Vidal");
    ``quote`` — words inside double quotation marks. A quote is new when most of its
    three-word runs and of its weight in content words are unseen: a quote the story already
    reported in indirect speech is not;
    ``statement`` — a sentence of reported speech ("said", "told", "warned") with no other
    new fact, whose content words are mostly new.

*novelty*
    the share of a sentence's content words (figures by their normalised value), weighted by
    rarity (wordfreq), that the story never used. A development needs a new fact *and*
    ``min_novelty``.

A sentence that repeats a known quote is a restatement, even if it names a new speaker for
it. Boilerplate (subscriptions, copyright, "Reporting by", photo credits) never counts. The
developments are ranked by the weight of their new facts times their novelty; a fact is
reported once, by the best sentence that carries it, and a sentence left with no fact of its
own is dropped. No development: the item adds nothing new.

The rules and thresholds were set on the ``dev`` cases of ``tests/data/developments.jsonl``
and measured on its ``holdout`` and ``hard`` cases (``python -m tests.devcheck``). What it
does not see: a figure derived from known ones ("two-day" for "48-hour", "half of 800" for
"400") reads as new, and so does another outlet credited by name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

from tracker.stories.signature import terms

MIN_NOVELTY = 0.2  #: the least weighted share of unseen content words in a development
STATEMENT_NOVELTY = 0.6  #: reported speech counts as a new statement above this share...
STATEMENT_WORDS = 4  #: ...and with this many unseen content words
QUOTE_UNSEEN = 0.5  #: a quote is new when this share of its three-word runs is unseen...
QUOTE_NOVELTY = 0.34  #: ...and this weighted share of its content words
FIGURE_RARITY = 5.0
NEAR_FIGURE = 0.02  #: large figures (≥ 10,000) this close are one figure, rounded two ways
WEIGHTS = {"figure": 1.0, "name": 0.8, "quote": 1.2, "statement": 0.6}

_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][”\"’)]))\s+(?=[“\"‘(]?[A-Z0-9])|\n+")
_ABBREVIATION = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Dr|Prof|Gen|Col|Lt|Sgt|Capt|Gov|Sen|Rep|Rev|St|Jr|Sr|Inc|Ltd|Co|Corp|No|Jan|Feb|Mar|Apr|"
    r"Aug|Sept|Sep|Oct|Nov|Dec|vs|approx|est)|\b[A-Z]|\b(?:[A-Za-z]\.){1,3}[A-Za-z])\.$"
)
_WORD = re.compile(r"[^\W_][\w'’.-]*[^\W_]|[^\W_]")
_QUOTE = re.compile(r"[“\"]([^”\"]{6,600})[”\"]")
_OPEN_QUOTE = re.compile(r"[“\"]([^”\"]{6,600})$")  # a quotation that goes on in the next sentence
_CLOSE_QUOTE = re.compile(r"^([^“\"]{6,600})[”\"]")  # one that began in an earlier sentence
_SCALES = {
    "thousand": 1e3, "k": 1e3, "million": 1e6, "mn": 1e6, "m": 1e6, "mln": 1e6,
    "billion": 1e9, "bn": 1e9, "b": 1e9, "trillion": 1e12, "tn": 1e12,
}  # fmt: skip
_NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "dozen": 12,
}  # fmt: skip
_UNITS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_FIGURE = re.compile(
    r"(?P<cur>(?:US|A|C|NZ|HK)?[$€£¥]|\b(?:USD|EUR|GBP|JPY|CHF)\s?)?"
    r"(?:(?<![\w.,])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"|\b(?P<word>(?:" + "|".join(_NUMBER_WORDS) + r")(?:-(?:" + "|".join(_UNITS) + r"))?)\b)"
    r"(?:(?P<joined>bn|mn|mln|tn|[mkb])\b|\s?-?(?P<scale>thousand|million|billion|trillion)s?\b)?"
    r"(?P<pct>\s?(?:%|percent\b|per cent\b|percentage points?\b))?",
    re.IGNORECASE,
)
_DETERMINER = re.compile(r"\b(?:the|these|those|both|its|their|his|her|our|all|other)\s+$", re.IGNORECASE)
_CONNECTORS = frozenset({"of", "de", "del", "da", "van", "von", "der", "den", "al", "bin", "la", "le", "du", "&"})
#: capitalised words that do not make a name: titles, months, weekdays, pronouns
_NOT_NAME_WORDS = (
    "mr mrs ms dr prof sir madam president minister prime chief executive officer secretary spokesman "
    "spokeswoman spokesperson director chairman chairwoman chair governor mayor senator general judge "
    "deputy head commissioner ceo cfo coo inspector sergeant captain superintendent professor vice "
    "representative ambassador envoy attorney commander premier chancellor king queen prince pope "
    "monday tuesday wednesday thursday friday saturday sunday january february march april may june july "
    "august september october november december jan feb mar apr jun jul aug sep sept oct nov dec "
    "the a an i it he she they we you this that these those his her their its our"
)
_NOT_NAMES = frozenset(_NOT_NAME_WORDS.split())
_SPEECH = re.compile(
    r"\b(?:said|says|told|added|stated|announced|warned|confirmed|denied|insisted|argued|claimed|"
    r"explained|noted|wrote|tweeted|acknowledged|admitted|vowed|pledged|promised|urged|according to)\b",
    re.IGNORECASE,
)
_BOILERPLATE = re.compile(
    r"subscribe|newsletter|sign up|copyright|©|all rights reserved|reporting by|editing by|writing by|"
    r"additional reporting|contributed to this report|photo(?:graph)?:|image:|\(photo|photo credit|"
    r"getty images|\bap photo|\breuters/|read more|click here|follow us|cookies?\b|advertisement|"
    r"this article (?:was|has been)|our journalism|support us|share this",
    re.IGNORECASE,
)


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    import justext  # a trafilatura dependency: its English stop list

    return frozenset(w for w in justext.get_stoplist("English") if w.isalpha())


@lru_cache(maxsize=100_000)
def _rarity(word: str) -> float:
    if any(c.isdigit() for c in word):
        return FIGURE_RARITY
    from wordfreq import zipf_frequency

    return max(0.5, 7.5 - zipf_frequency(word, "en"))


# Facts ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    text: str  #: as written: "$1.2 billion"
    key: str  #: the normalised value: "1200000000", or "12%" for a percentage


def figures(text: str) -> list[Figure]:
    """The figures of ``text``, each with a normalised key (see the module docstring)."""
    out = []
    for m in _FIGURE.finditer(text):
        joined = (m.group("joined") or "").lower()
        if joined and not m.group("cur") and joined in {"m", "b"}:
            continue  # "5m" without a currency: five metres as likely as five million
        if m.group("word") and not m.group("scale") and _DETERMINER.search(text, max(0, m.start() - 12), m.start()):
            continue  # "the two companies": ones the story already knows
        if m.group("num"):
            value = float(m.group("num").replace(",", ""))
        else:
            tens, _, units = m.group("word").lower().partition("-")
            value = float(_NUMBER_WORDS[tens] + _UNITS.get(units, 0))
            if not (m.group("scale") or m.group("pct")) and value == 100:
                continue  # "a hundred" alone is seldom a figure
        scale = (m.group("scale") or joined).lower()
        value *= _SCALES.get(scale, 1.0)
        key = _number_key(value) + ("%" if m.group("pct") else "")
        out.append(Figure(m.group(0).strip(), key))
    return out


def _number_key(value: float) -> str:
    if value == int(value):
        return str(int(value))
    return f"{value:.6g}"


def _same_figure(key: str, known: set[str]) -> bool:
    if key in known:
        return True
    if key.endswith("%"):
        return False
    value = float(key)
    if value < 10_000:
        return False
    return any(not k.endswith("%") and abs(float(k) - value) <= NEAR_FIGURE * max(float(k), value) for k in known)


def names(sentence: str) -> list[tuple[str, tuple[str, ...]]]:
    """Runs of capitalised words: each name as written, and its distinctive words (lower case)."""
    out: list[tuple[str, tuple[str, ...]]] = []
    run: list[str] = []
    initial = False  # the run starts the sentence (or a quotation)
    end = 0
    for m in _WORD.finditer(sentence):
        if run and sentence[end : m.start()].strip():  # punctuation between: "Asia, Europe"
            _close(run, initial, out)
            run = []
        end = m.end()
        token = m.group(0)
        word = token.removesuffix("'s").removesuffix("’s").strip(".-")
        starts = m.start() == 0 or bool(re.search(r"[“\"‘(:—-]\s*$", sentence[max(0, m.start() - 2) : m.start()]))
        if word[:1].isupper() and not word.isdigit():
            if not run:
                initial = starts
            run.append(word)
            if word != token.strip(".-"):  # a possessive ends the name: "Li Shufu's Zhejiang"
                _close(run, initial, out)
                run = []
        elif run and word in _CONNECTORS:
            run.append(word)
        else:
            _close(run, initial, out)
            run = []
    _close(run, initial, out)
    return out


def _close(run: list[str], initial: bool, out: list[tuple[str, tuple[str, ...]]]) -> None:
    while run and run[-1] in _CONNECTORS:
        run.pop()
    if initial and run and (_common(run[0], 4.0) or (len(run) == 1 and _common(run[0], 2.0))):
        # capitalised for starting the sentence: a common word ("Police"), or a lone word of the
        # dictionary ("Floodwater"); a lone rare one is a name ("Halvorsen said")
        run = run[1:]
    core = tuple(w.lower() for w in run if w.lower() not in _NOT_NAMES and w not in _CONNECTORS)
    if core:
        out.append((" ".join(run), core))


@lru_cache(maxsize=50_000)
def _common(word: str, zipf: float) -> bool:
    from wordfreq import zipf_frequency

    lower = word.lower()
    return lower in _stopwords() or lower in _NOT_NAMES or zipf_frequency(lower, "en") >= zipf


def _new_name_word(word: str, known: set[str]) -> bool:
    """Whether a word of a name is new to the story: "Meridian" is not when "Meridia" is known."""
    return not any(word[: len(word) - cut] in known for cut in range(4) if len(word) - cut >= 4 or cut == 0)


def _grams(words: Sequence[str]) -> set[str]:
    return {" ".join(words[i : i + 3]) for i in range(len(words) - 2)}


def _plain_words(text: str) -> list[str]:
    return [w.lower().removesuffix("'s").removesuffix("’s").strip(".'’-") for w in _WORD.findall(text)]


def _quotes(sentence: str) -> list[str]:
    """The quotations of a sentence, with at least three words; a quotation that runs over
    several sentences is cut with them: its open end counts too."""
    found = _QUOTE.findall(sentence)
    if not found:
        found = [m.group(1) for m in (_OPEN_QUOTE.search(sentence), _CLOSE_QUOTE.search(sentence)) if m]
    return [q for q in found if len(q.split()) >= 3]


def _content(text: str, figs: Iterable[Figure]) -> list[str]:
    """Content words for novelty: figures by their key, the rest as story grouping stems them."""
    return [t for t in terms(text) if not any(c.isdigit() for c in t)] + [f.key for f in figs]


# The story's knowledge --------------------------------------------------------------------


@dataclass(slots=True)
class Known:
    """What a story's items have said so far: grows item by item (``add``) without keeping
    their texts."""

    figures: set[str] = field(default_factory=set)
    words: set[str] = field(default_factory=set)  #: every word, lower case (for names)
    content: set[str] = field(default_factory=set)  #: content words and figure keys (for novelty)
    grams: set[str] = field(default_factory=set)  #: three-word runs (for quotes)

    @classmethod
    def of(cls, texts: Iterable[str]) -> Known:
        known = cls()
        for text in texts:
            known.add(text)
        return known

    def to_json(self) -> dict[str, list[str]]:
        """For the store: the sets as sorted lists (a story of a few items: some kB)."""
        return {name: sorted(getattr(self, name)) for name in ("figures", "words", "content", "grams")}

    @classmethod
    def from_json(cls, data: dict[str, list[str]]) -> Known:
        return cls(*(set(data.get(name, ())) for name in ("figures", "words", "content", "grams")))

    def add(self, text: str) -> None:
        """What ``text`` (an item's title or text) says becomes known."""
        figs = figures(text)
        self.figures.update(f.key for f in figs)
        plain = _plain_words(text)
        self.words.update(plain)
        self.content.update(_content(text, figs))
        self.grams.update(_grams(plain))


@dataclass(frozen=True, slots=True)
class Development:
    """A sentence of the new item and what is new in it."""

    sentence: str
    figures: tuple[str, ...] = ()  #: new figures, as written
    names: tuple[str, ...] = ()  #: new names, as written
    quote: str = ""  #: a new quotation
    statement: bool = False  #: reported speech with mostly new content
    novelty: float = 0.0  #: weighted share of the sentence's content words the story never used
    score: float = 0.0

    @property
    def facts(self) -> tuple[str, ...]:
        return (*self.figures, *self.names, *((self.quote,) if self.quote else ()))


def developments(
    new_text: str,
    earlier: Sequence[str] | Known,
    *,
    title: str = "",
    limit: int = 3,
    min_novelty: float = MIN_NOVELTY,
) -> list[Development]:
    """The sentences of ``new_text`` (and its ``title``) that add to the story, best first, at
    most ``limit``; empty when the item adds nothing new. ``earlier`` is the texts of the
    story's earlier items (titles included, if they should count as known) or their
    :class:`Known`, which this does not change."""
    known = earlier if isinstance(earlier, Known) else Known.of(earlier)
    found = [c for s in sentences(title) + sentences(new_text) if (c := _judge(s, known, min_novelty))]
    entities = [set(core) for c in found for core in c.cores]
    picked: list[Development] = []
    covered: set[str] = set()
    for c in sorted(found, key=lambda c: -c.development.score):
        d = c.development
        figs = [(f, k) for f, k in zip(d.figures, c.figure_keys, strict=True) if k not in covered]
        # a name counts once, in its fullest form in the item: "Omar Vidal", not also "Vidal"
        people = [
            (n, " ".join(core))
            for n, core in zip(d.names, c.cores, strict=True)
            if " ".join(core) not in covered and not any(set(core) < e for e in entities)
        ]
        quote = d.quote if d.quote.lower() not in covered else ""
        if not (figs or people or quote or d.statement):
            continue
        covered.update(k for _, k in figs)
        covered.update(k for _, k in people)
        covered.add(quote.lower())
        picked.append(replace(d, figures=tuple(f for f, _ in figs), names=tuple(n for n, _ in people), quote=quote))
        if len(picked) == limit:
            break
    return picked


def adds_new(new_text: str, earlier: Sequence[str] | Known, *, title: str = "") -> bool:
    """Whether ``new_text`` says anything its story did not (see :func:`developments`)."""
    return bool(developments(new_text, earlier, title=title, limit=1))


def sentences(text: str) -> list[str]:
    """``text`` cut into sentences (not after "Mr.", "U.S." or an initial)."""
    out: list[str] = []
    start = 0
    for m in _SENTENCE_END.finditer(text):
        piece = text[start : m.start()].strip()
        if piece and m.group(0).strip() == "" and _ABBREVIATION.search(piece) and "\n" not in m.group(0):
            continue  # an abbreviation's full stop: the sentence goes on
        if piece:
            out.append(piece)
        start = m.end()
    rest = text[start:].strip()
    if rest:
        out.append(rest)
    return out


@dataclass(frozen=True, slots=True)
class _Candidate:
    development: Development
    figure_keys: tuple[str, ...]  #: the normalised value of each new figure
    cores: tuple[tuple[str, ...], ...]  #: the distinctive words of each new name


def _judge(sentence: str, known: Known, min_novelty: float) -> _Candidate | None:
    if len(sentence) < 12 or _BOILERPLATE.search(sentence):
        return None
    figs = figures(sentence)
    content = _content(sentence, figs)
    novelty = _novelty(content, known.content)
    if novelty < min_novelty:
        return None
    new_figs = {f.key: f.text for f in figs if not _same_figure(f.key, known.figures)}
    quotes = _quotes(sentence)
    new_quotes = [q for q in quotes if _new_quote(q, known)]
    new_names: dict[tuple[str, ...], str] = {}
    if not (quotes and not new_quotes):  # a known quote under a new name is still the known quote
        quoted = " ".join(quotes)
        for name, core in names(sentence):
            if name not in quoted and any(_new_name_word(w, known.words) for w in core):
                new_names.setdefault(core, name)
    statement = bool(  # reported speech with nothing else new to show for it
        not (new_quotes or new_figs or new_names)
        and _SPEECH.search(sentence)
        and novelty >= STATEMENT_NOVELTY
        and sum(1 for w in set(content) if w not in known.content) >= STATEMENT_WORDS
    )
    quote = max(new_quotes, key=len) if new_quotes else ""
    weight = (
        WEIGHTS["figure"] * len(new_figs)
        + WEIGHTS["name"] * len(new_names)
        + (WEIGHTS["quote"] if quote else 0.0)
        + (WEIGHTS["statement"] if statement else 0.0)
    )
    if weight == 0:
        return None
    score = round(math.log1p(weight) * novelty, 4)
    found = Development(
        sentence, tuple(new_figs.values()), tuple(new_names.values()), quote, statement, round(novelty, 3), score
    )
    return _Candidate(found, tuple(new_figs), tuple(new_names))


def _novelty(content: Sequence[str], known: set[str]) -> float:
    words = set(content)
    total = sum(_rarity(w) for w in words)
    if total == 0:
        return 0.0
    return sum(_rarity(w) for w in words if w not in known) / total


def _new_quote(quote: str, known: Known) -> bool:
    grams = _grams(_plain_words(quote))
    if grams and sum(1 for g in grams if g not in known.grams) / len(grams) < QUOTE_UNSEEN:
        return False
    return _novelty(_content(quote, figures(quote)), known.content) >= QUOTE_NOVELTY
