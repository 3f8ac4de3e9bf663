"""Matching time on hostile, repetitive text: does every rule stay (near) linear in the text size?

Each case is a short unit of text repeated up to 50, 100, 200 and 400 KB and matched by one of
the shipped rules (``rules/``): the rule's own topic sentence repeated in one paragraph and as
thousands of one-line paragraphs, two NEAR terms alternating, an entity name inside one of its
exclusions, an ambiguous name beside paragraphs holding its ``not_context`` words, and all five
rules against the same text. Every measurement runs in a subprocess with a timeout (60 s by
default; a case that exceeds it shows ``>60`` and is not tried at larger sizes), so a
quadratic matcher does not hang the benchmark. A ``!`` after the time: the rule did not match.

By default the length cap of the matcher (``tracker.rules.matching.MAX_MATCH_CHARS``) is lifted, so
the table shows how the algorithms scale; ``--capped`` measures the matcher as shipped.

Usage: python bench/bench_match_budget.py [--timeout 60] [--capped] [--sizes 50,100,200,400]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ALL = "*"  #: the case's rule: every shipped rule (it must match at least the first listed)

#: name → (rule id, title, repeated unit)
CASES: dict[str, tuple[str, str, str]] = {
    "trump-xi sentence": ("trump-xi-meeting", "Trump will visit China", "Trump will visit China. "),
    "trump-xi paragraphs": ("trump-xi-meeting", "Trump will visit China", "Trump will visit China.\n\n"),
    "ford-jv sentence": (
        "ford-china-jv",
        "Ford weighs joint venture with BYD",
        "Ford is in joint venture talks with BYD. ",
    ),
    "ford-jv paragraphs": ("ford-china-jv", "", "Ford is in joint venture talks with BYD.\n\n"),
    "gm-opp sentence": (
        "gm-opposition",
        "",
        "GM warned that Chinese automakers must not be allowed into the U.S. car market. ",
    ),
    "gm-opp paragraphs": (
        "gm-opposition",
        "",
        "GM warned that Chinese automakers must not be allowed into the U.S. car market. Barra agreed.\n\n",
    ),
    "industry sentence": (
        "industry-opposition",
        "Unions oppose Chinese cars",
        "The UAW union warned against Chinese cars in the United States. ",
    ),
    "industry paragraphs": (
        "industry-opposition",
        "",
        "The UAW union warned against Chinese cars in the United States.\n\n",
    ),
    "entry sentence": (
        "chinese-automakers-us-entry",
        "Chinese automakers eye the US",
        "BYD plans to build a car plant in the United States. ",
    ),
    "entry paragraphs": (
        "chinese-automakers-us-entry",
        "",
        "BYD plans to build a car plant in the United States.\n\n",
    ),
    "NEAR alternating": ("trump-xi-meeting", "Trump will visit China", "visit China "),
    "excluded name": ("trump-xi-meeting", "Trump will visit China", "Trump will visit China, no Trump card. "),
    "not_context": (
        "trump-xi-meeting",
        "Trump will visit China",
        "The president will visit China with Trump.\n\nNixon went to China in 1972.\n\n",
    ),
    "all rules": (ALL + "trump-xi-meeting", "Trump will visit China", "Trump will visit China. "),
}


def text_of(unit: str, size: int, lead: str = "") -> str:
    """``unit`` repeated to ``size`` bytes (whole units), after ``lead``."""
    return lead + unit * max(1, (size - len(lead)) // len(unit.encode()))


def lead_of(case: str) -> str:
    # The alternating case names Trump once; the rest of the text is the NEAR pair over and over.
    return "Trump will visit China. " if case == "NEAR alternating" else ""


def run_one(case: str, size: int, capped: bool) -> None:
    """Child process: match one case once; print {"seconds", "matched"} as JSON."""
    from tracker.rules import matching
    from tracker.rules.ruleset import load_rules

    if not capped and hasattr(matching, "MAX_MATCH_CHARS"):
        matching.MAX_MATCH_CHARS = 10**12
    rule_id, title, unit = CASES[case]
    ruleset = load_rules([REPO / "rules"])
    if not rule_id.startswith(ALL):
        ruleset = dataclasses.replace(ruleset, rules=tuple(r for r in ruleset.rules if r.id == rule_id))
    target = rule_id.removeprefix(ALL)
    matcher = matching.Matcher(ruleset)
    text = text_of(unit, size, lead_of(case))
    t0 = time.perf_counter()
    found = matcher.match(title, text)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "matched": any(m.rule == target for m in found)}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per case (default 60)")
    ap.add_argument("--capped", action="store_true", help="keep the matcher's MAX_MATCH_CHARS cap")
    ap.add_argument("--sizes", default="50,100,200,400", help="text sizes in KB")
    ap.add_argument("--only", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        run_one(args.case, args.size, args.capped)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    cases = [c for c in CASES if not args.only or c in args.only.split(",")]
    limit = f">{args.timeout:g}"
    cap = "as shipped (MAX_MATCH_CHARS cap on)" if args.capped else "MAX_MATCH_CHARS cap lifted"
    print(f"seconds per match() call, one process per cell, timeout {args.timeout:g} s; {cap}")
    width = max(len(c) for c in cases) + 2
    header = "".join(f"{f'{s} KB':>10}" for s in sizes)
    print(f"{'case':<{width}}{'rule':<30}{header}")
    for case in cases:
        cells: list[str] = []
        slow = False
        for size in sizes:
            if slow:
                cells.append(limit)
                continue
            cmd = [sys.executable, __file__, "--case", case, "--size", str(size * 1000)]
            cmd += ["--capped"] if args.capped else []
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=True)
            except subprocess.TimeoutExpired:
                cells.append(limit)
                slow = True
                continue
            except subprocess.CalledProcessError as exc:
                cells.append("error")
                print(exc.stderr, file=sys.stderr)
                continue
            result = json.loads(done.stdout.strip().splitlines()[-1])
            cells.append(f"{result['seconds']:.3f}" + ("" if result["matched"] else "!"))
        rule = CASES[case][0].replace(ALL, "all 5, incl. ")
        print(f"{case:<{width}}{rule:<30}" + "".join(f"{c:>10}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
