"""Small text helpers: HTML fragments to plain text, whitespace, hashing."""

from __future__ import annotations

import hashlib
import html
import re

_WS = re.compile(r"[ \t\r\f\v\u00a0]+")
#: C0 and C1 control characters but tab and newline (ESC among them: no terminal escape
#: sequence from a feed survives), and the Unicode bidirectional overrides
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")
_BLANKS = re.compile(r"\n\s*\n\s*")
_BLOCK_TAGS = {
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "table",
    "tr",
    "section",
    "article",
    "header",
    "footer",
    "figure",
    "figcaption",
    "hr",
}


#: the most text stored for one item (characters); a longer text is cut at a paragraph break
MAX_TEXT_CHARS = 200_000


def truncate_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters, at the last paragraph break (else space)
    in the last tenth before the limit."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    for sep in ("\n\n", "\n", " "):
        at = head.rfind(sep, limit - limit // 10)
        if at > 0:
            return head[:at].rstrip()
    return head


def plain(text: str) -> str:
    """``text`` without control characters (tab and newline kept)."""
    return _CONTROL.sub("", text)


def normalize_space(text: str) -> str:
    """Collapse runs of spaces, drop control characters; keep paragraph breaks as one blank line."""
    text = plain(text)
    lines = [_WS.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    joined = "\n".join(lines)
    return _BLANKS.sub("\n\n", joined).strip()


#: comments and processing instructions (an unclosed comment runs to the end)
_NOT_TEXT = re.compile(r"<!--.*?(?:-->|$)|<\?[^>]*>", re.S)
#: elements whose content is never text
_HIDDEN_TAGS = frozenset({"script", "style", "noscript"})


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment, block elements becoming paragraph breaks."""
    fragment = plain(fragment)  # lxml refuses control characters (and they are not text)
    if "<" not in fragment:
        return normalize_space(html.unescape(fragment))
    import lxml.html
    from lxml import etree

    def tags_dropped() -> str:
        return normalize_space(html.unescape(re.sub(r"<[^>]+>", " ", fragment)))

    try:
        # Comments and processing instructions go before parsing (one linear pass; their
        # text is not text, what follows them is): lxml's strip_tags is quadratic in their number.
        root = lxml.html.fragment_fromstring(_NOT_TEXT.sub("", fragment), create_parent="div")
    except (etree.ParserError, ValueError):  # e.g. "&#1;" decodes to a character lxml then refuses
        return tags_dropped()
    # One walk, linear in the fragment: the text of script, style and noscript elements (and
    # of everything inside them) is skipped, their tails kept; a comment's or processing
    # instruction's text is never text (their tag is not a string), their tails are.
    parts: list[str] = []
    hidden = 0  #: depth inside skipped elements
    for event, el in etree.iterwalk(root, events=("start", "end")):
        tag = el.tag if isinstance(el.tag, str) else ""
        if event == "start":
            if tag in _HIDDEN_TAGS:
                hidden += 1
            if hidden:
                continue
            if tag in _BLOCK_TAGS:
                parts.append("\n\n" if tag != "br" else "\n")
            if el.text and tag:
                parts.append(el.text)
        else:
            if tag in _HIDDEN_TAGS:
                hidden -= 1
            elif hidden:
                continue
            elif tag in _BLOCK_TAGS:
                parts.append("\n\n")
            if el.tail and el is not root and not hidden:
                parts.append(el.tail)
    return normalize_space("".join(parts))


def text_hash(text: str) -> str:
    """Hash of the normalized text: equal for texts that differ only in spacing or case."""
    words = re.findall(r"\w+", text.lower())
    return hashlib.sha256(" ".join(words).encode()).hexdigest()
