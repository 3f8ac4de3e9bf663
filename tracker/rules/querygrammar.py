"""The grammar of the query language, its parser (loaded from the tables shipped in
query_tables.json, or built afresh) and the syntax errors made readable."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import lark
from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.grammar import Rule as LarkRule
from lark.lexer import TerminalDef

from tracker.rules.querylimits import QuerySyntaxError

GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr -> not_
         | near_expr
?near_expr: atom (NEAR atom)*
?atom: "(" or_expr ")"
     | FIELD ":" atom -> field
     | SCOPE "(" or_expr ")" -> scope
     | _ATLEAST "(" INT "," or_expr ")" -> atleast
     | term
term: PHRASE -> phrase
    | CASE PHRASE -> case_phrase
    | CASE WORD -> case_word
    | ENTITY -> entity
    | LIST -> listref
    | WORD -> word
    | INT -> word

_OR.3: /OR(?![^\s()",:@$#])/
_AND.3: /AND(?![^\s()",:@$#])/
_NOT.3: /NOT(?![^\s()",:@$#])/
NEAR.3: /NEAR\/[0-9]+(?![^\s()",:@$#])/
FIELD.3: /(title|text)(?=\s*:)/
SCOPE.3: /(sentence|paragraph)(?=\s*\()/
_ATLEAST.3: /atleast(?=\s*\()/
CASE.3: "case:"
PHRASE: /"[^"\n]*"/
ENTITY: /@[a-z0-9][a-z0-9-]*\+?/
LIST: /\$[a-z0-9][a-z0-9_-]*/
INT.2: /[0-9]+(?![^\s()",:@$#])/
WORD: /[^\s()",:@$#]+/
COMMENT: /#[^\n]*/
%import common.WS
%ignore WS
%ignore COMMENT
"""

# Readable names for what the parser expected.
_EXPECTED = {
    "_OR": "OR",
    "_AND": "AND",
    "_NOT": "NOT",
    "NEAR": "NEAR/n",
    "FIELD": "title: or text:",
    "SCOPE": "sentence( or paragraph(",
    "_ATLEAST": "atleast(",
    "CASE": "case:",
    "PHRASE": '"a phrase"',
    "ENTITY": "@entity",
    "LIST": "$list",
    "INT": "a number",
    "WORD": "a word",
    "LPAR": "(",
    "RPAR": ")",
    "COMMA": ",",
    "COLON": ":",
    "$END": "end of query",
}


#: The parser's tables, built from GRAMMAR once and shipped: building them costs more than
#: loading every rule (tests/test_query.py checks they are current; ``save_tables()`` rewrites them).
TABLES = Path(__file__).with_name("query_tables.json")


def _build_parser() -> Lark:
    # LALR parses with a stack of its own, not by recursion; positions let _check_depth point at an operator.
    return Lark(GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=False, propagate_positions=True)


def _tables_key() -> str:
    return hashlib.sha256(f"{lark.__version__}\n{GRAMMAR}".encode()).hexdigest()


def _int_keys(obj: dict[str, Any]) -> dict[Any, Any]:
    # JSON keys are strings; the tables number their states.
    return {int(k) if k.isdigit() else k: v for k, v in obj.items()}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    """The query parser, from the shipped tables when they were built from this grammar by this
    version of lark, else built afresh (the same parser, a tenth of a second later)."""
    try:
        saved = json.loads(TABLES.read_text(encoding="utf-8"), object_hook=_int_keys)
        if saved.get("key") == _tables_key():
            parser: Lark = Lark._load_from_dict(saved["data"], saved["memo"])  # type: ignore[no-untyped-call]
            return parser  # (what Lark.load does, without pickle)
    except Exception:  # noqa: BLE001 - missing, stale or from another lark: build instead
        pass
    return _build_parser()


def save_tables(path: Path = TABLES) -> None:
    """Write the parser's tables (after a change to GRAMMAR or an upgrade of lark)."""
    data, memo = _build_parser().memo_serialize([TerminalDef, LarkRule])
    path.write_text(json.dumps({"key": _tables_key(), "data": data, "memo": memo}) + "\n", encoding="utf-8")


def _syntax_error(exc: UnexpectedInput, text: str) -> QuerySyntaxError:
    line, column = exc.line if exc.line > 0 else 1, exc.column if exc.column > 0 else 1
    expected: set[str] = set()
    if isinstance(exc, (UnexpectedToken, UnexpectedEOF)):
        expected = {str(e) for e in exc.expected}
    elif isinstance(exc, UnexpectedCharacters):
        expected = set(exc.allowed or ())
    names = sorted({_EXPECTED.get(e, e) for e in expected if not e.startswith("__")})
    lines = text.split("\n")
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        body = text.rstrip().split("\n")  # point just past the last character written
        line, column = len(body), len(body[-1]) + 1
        message = "the query ends too early"
    elif isinstance(exc, UnexpectedToken):
        message = f"unexpected {str(exc.token)!r}"
        if exc.token.type == "WORD" and str(exc.token).upper() in ("AND", "OR", "NOT"):
            message += " (operators are upper case: AND, OR, NOT)"
        elif exc.token.type in ("WORD", "PHRASE", "ENTITY"):
            message += " (join terms with AND, OR or NEAR/n)"
    else:
        source = lines[line - 1] if line <= len(lines) else ""
        message = f"unexpected character {source[column - 1]!r}" if column <= len(source) else "unexpected input"
    return QuerySyntaxError(message, line, column, expected=", ".join(names) or None)
