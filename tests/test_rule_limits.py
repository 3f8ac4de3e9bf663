"""Hostile rule files stay bounded: one line `file:line:col: ...`, exit 2, within seconds, no traceback.

Every limit of rules/README.md ("Limits of rule files") is met by a rule file built to pass it — deep
nesting, term lists that multiply, NEAR/1000000, thousands of OR terms, wildcards that match every
word, huge numbers, deep TOML, big files — and each goes through `tracker rules check`, `tracker
match` and `tracker poll --once`, which all load rules through ``check_rules``. The same files are
checked in process for the exact spot reported. `tracker search` refuses thousands of terms.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tracker.analysis.search import MAX_SEARCH_TERMS, check_query
from tracker.core.errors import BadQueryError, RuleError
from tracker.rules.matching import Matcher
from tracker.rules.query import (
    MAX_ATLEAST,
    MAX_DEPTH,
    MAX_NEAR,
    MAX_QUERY_CHARS,
    MAX_TERMS,
    EntityRef,
    QueryLimitError,
    QuerySyntaxError,
    Term,
    measure,
    parse_query,
)
from tracker.rules.rulefiles import MAX_FILE_BYTES
from tracker.rules.ruleset import MAX_CATALOGUE_STRINGS, MAX_ERRORS, MAX_TERMS_TOTAL, check_rules, load_rules

REPO = Path(__file__).resolve().parent.parent
GUARD = 30  #: seconds a command may take before the test fails (each answers in about one)
QUERY_LINE = 3  #: rule files below put the query's first character at line 3, column 1


def rule_file(query: str, terms: dict[str, list[str]] | None = None, rule_id: str = "hostile") -> str:
    """A rule file whose query starts at line 3, column 1."""
    body = f"id = \"{rule_id}\"\nquery = '''\n{query}\n'''\n"
    if terms:
        body += "\n[terms]\n" + "".join(
            f"{name} = [{', '.join(repr(e) for e in entries)}]\n" for name, entries in terms.items()
        )
    return body


def line_of(text: str, start: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(start))


@dataclass(frozen=True)
class Case:
    files: dict[str, str]  #: file name → content (in the rules folder)
    culprit: str  #: the file the error names
    message: str  #: a regex the message matches
    where: tuple[int, int] | None = None  #: (line, column) expected, when it is worth pinning


def deep_and_or() -> Case:
    prefix = "a AND (" * 20 + "b OR (" * (MAX_DEPTH - 20)  # the next OR is operator number MAX_DEPTH + 1
    query = "a AND (" * 20 + "b OR (" * 20 + "x" + ")" * 40
    return Case({"r.toml": rule_file(query)}, "r.toml", "nested more than 32 deep", (QUERY_LINE, len(prefix) + 1))


def doubling_lists() -> Case:
    terms = {"l0": ["alpha", "beta"]}
    for i in range(1, 40):
        terms[f"l{i}"] = [f"($l{i - 1})", f"($l{i - 1} AND x{i})"]
    text = rule_file("$l39", terms)
    # l0 has 2 terms, l(i) has 2 × l(i-1) + 1: l11, with 6,143, is the first list past 5,000.
    return Case(
        {"r.toml": text}, "r.toml", "term list 'l11' stands for more than 5,000 terms", (line_of(text, "l11 "), 1)
    )


def list_chain() -> Case:
    terms = {f"c{i}": [f"($c{i + 1})"] for i in range(2000)}
    terms["c2000"] = ["x"]
    text = rule_file("$c0", terms)
    return Case({"r.toml": text}, "r.toml", "refer to one another more than 32 deep", (line_of(text, "c32 "), 1))


def many_entity_names() -> Case:
    entities = "".join(f'[e{i}]\nnames = ["E{i}", "F{i}"]\ngroups = ["everyone"]\n' for i in range(3000))
    return Case(
        {"entities.toml": entities, "r.toml": rule_file("@everyone AND x")},
        "r.toml",
        "more than 5,000 terms",
        (QUERY_LINE, 1),
    )


def total_terms() -> Case:
    names = ", ".join(f'"N{i}"' for i in range(4000))
    files = {"entities.toml": f"[big]\nnames = [{names}]\n"}
    files.update({f"r{i}.toml": rule_file("@big", rule_id=f"r{i}") for i in range(6)})  # 6 × 4,000 > 20,000
    return Case(files, "r5.toml", "bring all rules to more than 20,000 terms", (QUERY_LINE, 1))


HUGE = "9" * 5000  #: more digits than Python converts to an int

CASES: dict[str, Callable[[], Case]] = {
    "deep AND/OR": deep_and_or,
    "deep NOT": lambda: Case(
        {"r.toml": rule_file("a AND " + "NOT " * 40 + "x")}, "r.toml", "nested more than 32", (3, 6 + 4 * 31 + 1)
    ),
    "deep fields": lambda: Case(
        {"r.toml": rule_file("title:" * 40 + "x")}, "r.toml", "nested more than 32", (3, 6 * 32 + 1)
    ),
    "NEAR chain": lambda: Case(
        {"r.toml": rule_file("a" + " NEAR/2 a" * 40)}, "r.toml", "nested more than 32", (3, 1 + 9 * 7 + 2)
    ),
    "deep and long": lambda: Case(
        {"r.toml": rule_file("NOT " * 100_000 + "x")}, "r.toml", "characters long", (3, MAX_QUERY_CHARS + 1)
    ),
    "deep term list": lambda: Case(
        {"r.toml": rule_file("$l", {"l": ["(a AND " * 40 + "x" + ")" * 40]})},
        "r.toml",
        "term list 'l': operators nested more than 32",
        (7, 1),
    ),
    "term list deep inside": lambda: Case(
        {"r.toml": rule_file("(a AND (b AND (c AND " * 10 + "$l" + ")))" * 10, {"l": ["(a OR (b OR (c AND d)))"]})},
        "r.toml",
        r"\$l nests 4 operators deep inside 30 others",
        (3, 21 * 10 + 1),
    ),
    "lists that double": doubling_lists,
    "a chain of lists": list_chain,
    "NEAR/1000000": lambda: Case(
        {"r.toml": rule_file("ford NEAR/1000000 china")}, "r.toml", "NEAR distance 1000000 is above", (3, 6)
    ),
    "NEAR with 5,000 digits": lambda: Case(
        {"r.toml": rule_file(f"ford NEAR/{HUGE} china")}, "r.toml", "5000-digit number", (3, 6)
    ),
    "atleast with 5,000 digits": lambda: Case(
        {"r.toml": rule_file(f"atleast({HUGE}, ford)")}, "r.toml", "atleast count a 5000-digit", (3, 9)
    ),
    "5,001 OR terms": lambda: Case(
        {"r.toml": rule_file(" OR ".join(f"w{i}" for i in range(5001)))},
        "r.toml",
        "more than 5,000 terms",
        (3, len(" OR ".join(f"w{i}" for i in range(5000))) + 5),
    ),
    "20,000 OR terms": lambda: Case(
        {"r.toml": rule_file(" OR ".join(f"w{i}" for i in range(20_000)))}, "r.toml", "characters long"
    ),
    "20,000 list entries": lambda: Case(
        {"r.toml": rule_file("$big", {"big": [f"w{i}" for i in range(20_000)]})},
        "r.toml",
        "term lists hold more than 5,000 entries",
        (7, 1),
    ),
    "a group of 3,000 entities": many_entity_names,
    "terms of all rules": total_terms,
    "bare wildcard": lambda: Case(
        {"r.toml": rule_file("ford AND *")}, "r.toml", "wildcard '\\*' matches too many words", (3, 10)
    ),
    "one-letter wildcard": lambda: Case(
        {"r.toml": rule_file('ford AND ("call* o*" OR a*)')}, "r.toml", "wildcard 'o\\*'", (3, 11)
    ),
    "wildcard in a term list": lambda: Case(
        {"r.toml": rule_file("$w", {"w": ["partner*", "s*"]})}, "r.toml", "term list 'w': wildcard 's\\*'", (7, 1)
    ),
    "wildcard context term": lambda: Case(
        {
            "entities.toml": '[gm]\nnames = ["GM"]\nambiguous = ["GM"]\ncontext = ["car*", "e*"]\n',
            "r.toml": rule_file("carmaker"),  # (a rule naming @gm would add "unknown entity @gm")
        },
        "entities.toml",
        "context term 'e\\*' in \\[gm\\]",
        (4, 1),
    ),
    "deep TOML": lambda: Case(
        {"r.toml": rule_file("x") + "\n[terms]\nx = " + "[" * 3000 + "]" * 3000 + "\n"},
        "r.toml",
        "nested too deeply",
        (7, 5 + 32),
    ),
    "a big file": lambda: Case(
        {"r.toml": rule_file("x") + "# " + "x" * MAX_FILE_BYTES + "\n"}, "r.toml", "larger than 500,000 bytes", (1, 1)
    ),
    "a big catalogue": lambda: Case(
        {
            "entities.toml": "".join(f'[e{i}]\nnames = ["E{i}"]\ncontext = ["ctx{i}"]\n' for i in range(10_001)),
            "r.toml": rule_file("x"),
        },
        "entities.toml",
        "catalogue holds more than 20,000",
        (30_001, 1),
    ),
}


def build(tmp_path: Path, name: str) -> tuple[Path, Path, Case]:
    """(config, rules folder, case): the case's files and a config with no feeds."""
    case = CASES[name]()
    rules = tmp_path / "rules"
    rules.mkdir()
    for file, content in case.files.items():
        (rules / file).write_text(content, encoding="utf-8")
    cfg = tmp_path / "t.toml"
    cfg.write_text(
        f'feeds = []\n[database]\nurl = "sqlite:///{tmp_path}/db/t.sqlite"\n[rules]\npaths = ["{rules}"]\n',
        encoding="utf-8",
    )
    return cfg, rules, case


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args], capture_output=True, text=True, input=stdin, timeout=GUARD
    )


# -- in process: the exact spot -----------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_each_limit_is_one_error_at_the_offending_spot(tmp_path: Path, name: str) -> None:
    _, rules, case = build(tmp_path, name)
    started = time.perf_counter()
    _, errors = check_rules([rules])
    assert time.perf_counter() - started < GUARD
    assert errors, "the hostile file was accepted"
    err = errors[0]
    assert err.path == str(rules / case.culprit)
    assert re.search(case.message, err.message), err.message
    assert err.line is not None and err.column is not None
    if case.where is not None:
        assert (err.line, err.column) == case.where, str(err)
    assert err.details() == str(err), "a limit is one line, without the (possibly huge) source line"
    with pytest.raises(RuleError) as info:
        load_rules([rules])  # what match, poll and every other command call
    assert str(info.value) == str(errors[0])


def test_parsing_never_recurses_out(tmp_path: Path) -> None:
    budget = MAX_QUERY_CHARS
    for query in (
        "NOT " * (budget // 4 - 1) + "x",
        "title:" * (budget // 6 - 1) + "x",
        "a" + " NEAR/1 a" * (budget // 9 - 1),
        "(a AND " * (budget // 8 - 1) + "x" + ")" * (budget // 8 - 1),
    ):
        assert len(query) <= budget
        with pytest.raises(QueryLimitError, match="nested more than 32 deep"):
            parse_query(query)
    # Parentheses that only group nest nothing: read with the parser's own stack, not by recursion.
    grouped = parse_query("(" * (budget // 2 - 1) + "x" + ")" * (budget // 2 - 1))
    assert isinstance(grouped, Term) and grouped.text == "x"


def test_a_limit_is_a_syntax_error_for_callers_of_parse_query() -> None:
    with pytest.raises(QuerySyntaxError):
        parse_query(f"a NEAR/{MAX_NEAR + 1} b")


def test_rules_at_the_limits_load_and_match(tmp_path: Path) -> None:
    nested = "a AND (" * (MAX_DEPTH - 1) + "b OR c" + ")" * (MAX_DEPTH - 1)
    words = " OR ".join(f"w{i}" for i in range(MAX_TERMS - 1)) + " OR EV*"
    files = {
        "nested.toml": rule_file(nested, rule_id="nested"),
        "wide.toml": rule_file(words, rule_id="wide"),
        "near.toml": rule_file(f"ford NEAR/{MAX_NEAR} china AND atleast({MAX_ATLEAST}, x) OR tie-up*", rule_id="near"),
    }
    rules = tmp_path / "rules"
    rules.mkdir()
    for file, content in files.items():
        (rules / file).write_text(content, encoding="utf-8")
    started = time.perf_counter()
    matcher = Matcher(load_rules([rules]))
    found = {m.rule for m in matcher.match("EVs and a tie-up", "w4998 " + "a " * 20 + "b")}
    assert time.perf_counter() - started < GUARD
    assert found == {"nested", "wide", "near"}


def test_the_shipped_rules_are_well_inside_the_limits() -> None:
    ruleset, errors = check_rules([REPO / "rules"])
    assert errors == [] and len(ruleset.rules) >= 5

    def weigh(ref: EntityRef) -> int:
        found = ruleset.resolve(ref.name, ref.related)
        return sum(len(e.names) + len(e.exclude) + len(e.context) + len(e.not_context) for e in found)

    sizes = [measure(ruleset.queries[r.id], entity_terms=weigh, max_terms=10**9) for r in ruleset.rules]
    assert max(s.depth for s in sizes) <= MAX_DEPTH // 2
    assert max(s.terms for s in sizes) <= MAX_TERMS // 2
    assert sum(s.terms for s in sizes) <= MAX_TERMS_TOTAL // 2
    assert len(ruleset.entities) * 20 < MAX_CATALOGUE_STRINGS


def test_check_stops_after_max_errors(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    entities = "".join(f'[e{i}]\nnames = ["E{i}"]\nrelated_to = ["nobody{i}"]\n' for i in range(5000))
    (rules / "entities.toml").write_text(entities, encoding="utf-8")
    started = time.perf_counter()
    _, errors = check_rules([rules])
    assert time.perf_counter() - started < GUARD
    assert len(errors) == MAX_ERRORS + 1
    assert "stopped after 50 errors" in str(errors[-1])


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (" ".join(f"w{i}" for i in range(5000)), "5,000 terms, more than the limit of 64"),
        (" OR ".join(f"w{i}" for i in range(MAX_SEARCH_TERMS + 1)), "65 terms"),
        ('"' + "x" * 2000 + '"', "2,002 characters long"),
        ("  ", "empty"),
    ],
)
def test_search_queries_are_bounded(query: str, message: str) -> None:
    with pytest.raises(BadQueryError, match=message):
        check_query(query)


def test_search_queries_within_the_limits_pass() -> None:
    check_query(" AND ".join(f"w{i}" for i in range(MAX_SEARCH_TERMS)))  # the operators do not count
    check_query('"joint venture" NEAR(ford china, 5) OR partner*')


# -- through the CLI: rules check, match, poll --------------------------------------------------

COMMANDS = {
    "rules check": ("rules", "check"),
    "match": ("match", "-"),
    "poll --once": ("poll", "--once"),
}
CLI_CASES = [
    "deep AND/OR",
    "deep NOT",
    "NEAR chain",
    "deep and long",
    "term list deep inside",
    "lists that double",
    "a chain of lists",
    "NEAR/1000000",
    "NEAR with 5,000 digits",
    "5,001 OR terms",
    "20,000 OR terms",
    "20,000 list entries",
    "a group of 3,000 entities",
    "terms of all rules",
    "bare wildcard",
    "one-letter wildcard",
    "wildcard context term",
    "deep TOML",
    "a big file",
]


@pytest.mark.slow
@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("name", CLI_CASES)
def test_every_command_answers_in_one_line_exit_2(tmp_path: Path, name: str, command: str) -> None:
    cfg, rules, case = build(tmp_path, name)
    doc = '{"id": 1, "title": "Ford and China", "text": "Ford and China talk."}\n'
    result = run("--config", str(cfg), *COMMANDS[command], stdin=doc)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-2000:]
    where = re.escape(str(rules / case.culprit))
    assert re.match(rf"(tracker: error: )?{where}:\d+:\d+: ", lines[0]), lines[0]
    assert re.search(case.message, lines[0]), lines[0]
    assert result.stdout == ""
    assert not (tmp_path / "db").exists(), "nothing is written"


@pytest.mark.slow
def test_the_shipped_rules_pass_the_check(tmp_path: Path) -> None:
    cfg = tmp_path / "t.toml"
    cfg.write_text(f'feeds = []\n[rules]\npaths = ["{REPO / "rules"}"]\n', encoding="utf-8")
    result = run("--config", str(cfg), "rules", "check")
    assert result.returncode == 0, result.stderr
    assert "rules and" in result.stdout and "OK" in result.stdout


@pytest.mark.slow
def test_search_with_thousands_of_terms_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "t.toml"
    cfg.write_text(
        f'feeds = []\n[database]\nurl = "sqlite:///{tmp_path}/t.sqlite"\n[rules]\npaths = ["{REPO / "rules"}"]\n',
        encoding="utf-8",
    )
    assert run("--config", str(cfg), "init").returncode == 0
    for query in (" ".join(f"w{i}" for i in range(5000)), " OR ".join(f"term{i}" for i in range(5000))):
        result = run("--config", str(cfg), "search", query)
        assert result.returncode == 2, result.stderr
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in result.stderr
        assert "5,000 terms, more than the limit of 64" in lines[0]
    ok = run("--config", str(cfg), "search", " OR ".join(f"w{i}" for i in range(MAX_SEARCH_TERMS)))
    assert ok.returncode == 0, ok.stderr
