"""A document as the matcher sees it: words with positions, sentences and paragraphs.

The title is paragraph 0 (and one sentence of its own); the text's paragraphs follow.
Words are runs of letters and digits: punctuation, apostrophes and hyphens separate words,
so "Ford's" is "ford" + "s" and "joint-venture" is "joint" + "venture". Between two
paragraphs stands a separator token that no term matches, so a phrase never runs from the
title into the text or from one paragraph into the next. ``norm`` is the lower-cased
tokens joined by single spaces, with a space at both ends, for the automaton. Character
offsets of words are computed only when asked for (for evidence and snippets).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from itertools import accumulate

WORD = re.compile(r"[^\W_]+")
SEPARATOR = "\x1f"  #: the paragraph-break token (not a word character: no term can match it)
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n|\n(?=\S)")
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"”’')]))\s+(?=[\"“‘'(\[]?[A-Z0-9])")


def words(text: str) -> list[str]:
    return WORD.findall(text)


@dataclass
class Doc:
    title: str
    text: str
    full: str = ""  #: title + "\n\n" + text: evidence offsets refer to it
    orig: list[str] = field(default_factory=list)  #: tokens as written (separators included)
    lower: list[str] = field(default_factory=list)  #: tokens lower-cased
    paragraphs: list[tuple[int, int]] = field(default_factory=list)  #: token ranges [lo, hi), title first
    sentences: list[tuple[int, int]] = field(default_factory=list)
    sentence_chars: list[tuple[int, int]] = field(default_factory=list)  #: character range of each sentence
    paragraph_chars: list[tuple[int, int]] = field(default_factory=list)
    para_starts: list[int] = field(default_factory=list)  #: first token of each paragraph
    sent_starts: list[int] = field(default_factory=list)  #: first token of each sentence
    title_end: int = 0  #: tokens before this are the title's
    norm: str = ""
    #: Sections of a roundup, newsletter or Q&A: (first token, end token, end of its heading), the lead
    #: (under the document's title) first; empty for a document without headings.
    sections: list[tuple[int, int, int]] = field(default_factory=list)

    norm_starts: list[int] = field(default_factory=list)  #: offset of each token in ``norm``

    def word_at(self, norm_offset: int) -> int:
        """Index of the token that starts right after the space at ``norm_offset`` in ``norm``."""
        return bisect.bisect_left(self.norm_starts, norm_offset + 1)

    def paragraph_of(self, word: int) -> int:
        """Paragraph number of a token (0 = the title)."""
        return bisect.bisect_right(self.para_starts, word) - 1

    def span(self, token: int) -> tuple[int, int]:
        """Character range of a token in ``full`` (offsets are found one paragraph at a time)."""
        n = self.paragraph_of(token)
        starts, ends = self._paragraph_spans(n)
        i = token - self.paragraphs[n][0]
        return starts[i], ends[i]

    def _paragraph_spans(self, n: int) -> tuple[list[int], list[int]]:
        cache: dict[int, tuple[list[int], list[int]]] = self.__dict__.setdefault("_span_cache", {})
        if n not in cache:
            a, b = self.paragraph_chars[n]
            found = list(WORD.finditer(self.full, a, b))
            cache[n] = [m.start() for m in found], [m.end() for m in found]
        return cache[n]


def index(title: str, text: str) -> Doc:
    doc = Doc(title=title, text=text, full=title + "\n\n" + text)
    offset = len(title) + 2
    chars = [(0, len(title))]
    pos = 0
    for m in _PARAGRAPH_BREAK.finditer(text):
        if m.start() > pos:
            chars.append((offset + pos, offset + m.start()))
        pos = m.end()
    if len(text) > pos:
        chars.append((offset + pos, offset + len(text)))
    doc.paragraph_chars = chars
    full = doc.full
    orig: list[str] = []
    for number, (start, end) in enumerate(chars):
        if number:
            orig.append(SEPARATOR)
        para_lo = len(orig)
        cuts = list(_SENTENCE_END.finditer(full, start, end)) if number else []
        sentence_starts = [start] + [c.end() for c in cuts]
        sentence_ends = [c.start() for c in cuts] + [end]
        for a, b in zip(sentence_starts, sentence_ends, strict=True):
            lo = len(orig)
            orig.extend(WORD.findall(full, a, b))
            if len(orig) > lo or number == 0:
                doc.sentences.append((lo, len(orig)))
                doc.sentence_chars.append((a, b))
        doc.paragraphs.append((para_lo, len(orig)))
        if number == 0:
            doc.title_end = len(orig)
    doc.orig = orig
    lowered = " ".join(orig).lower().split(" ")
    doc.lower = lowered if len(lowered) == len(orig) else [w.lower() for w in orig]
    doc.norm = " " + " ".join(doc.lower) + " "
    # Token i starts after the leading space and each earlier token plus its space (all in C).
    doc.norm_starts = list(accumulate(map((1).__add__, map(len, doc.lower)), initial=1))[:-1]
    doc.para_starts = [lo for lo, _ in doc.paragraphs]
    doc.sent_starts = [lo for lo, _ in doc.sentences]
    doc.sections = _sections(doc)
    return doc


#: A heading: a short line that does not end a sentence, or a question that opens an answer.
HEADING_WORDS = 14
QUESTION_WORDS = 30
MIN_HEADINGS = 2
_NOT_A_HEADING_END = tuple(".!:;,\"”’')…-—–")
_QUESTION = re.compile(r"^(?:Q\s*[:.)\-–—]|Question\s*[:.\-–—])", re.IGNORECASE)


def _is_heading(doc: Doc, n: int) -> bool:
    lo, hi = doc.paragraphs[n]
    size = hi - lo
    if size == 0:
        return False
    a, b = doc.paragraph_chars[n]
    line = doc.full[a:b].strip()
    if _QUESTION.match(line):
        return size <= QUESTION_WORDS
    if line.endswith("?"):
        return size <= QUESTION_WORDS and not line[:1].islower()
    return size <= HEADING_WORDS and not line.endswith(_NOT_A_HEADING_END) and not line[:1].islower()


def _sections(doc: Doc) -> list[tuple[int, int, int]]:
    """Where a document with at least MIN_HEADINGS headings (each followed by text) divides."""
    last = len(doc.paragraphs) - 1
    heads = [n for n in range(1, last) if _is_heading(doc, n) and not _is_heading(doc, n + 1)]
    if len(heads) < MIN_HEADINGS:
        return []
    end = len(doc.orig)
    starts = [doc.paragraphs[n][0] for n in heads]
    out = [(0, starts[0], doc.title_end)]
    for i, n in enumerate(heads):
        out.append((starts[i], starts[i + 1] if i + 1 < len(starts) else end, doc.paragraphs[n][1]))
    return out
