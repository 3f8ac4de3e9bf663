"""One `tracker poll --once` over every feed document of ../shared/corpus/feeds, served from loopback.

Every file (wellformed, illformed and real) is a configured feed, served with the HTTP
headers its MANIFEST simulates; article links point at the real web, which this machine
cannot reach, so articles keep the feed's text. The table gives the exit code, how the
feeds ended, and the share of the real feeds' entry links (as feedparser reads them) that
the store holds afterwards.

    python bench/corpus_cycle.py [--checkout DIR]   # DIR: another checkout to measure (default: this one)
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import HTTPServer, Response  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus" / "feeds"
#: article links point at the real web, which fails fast here: no per-host waits needed
FETCH = (
    "[fetch]\nconnect_timeout = 3\nread_timeout = 5\ntotal_timeout = 10\n"
    "per_host_per_minute = 0\nper_host_concurrency = 8\n\n"
)


def manifest_headers() -> dict[str, dict[str, str]]:
    headers: dict[str, dict[str, str]] = {}
    lines = (CORPUS / "MANIFEST.tsv").read_text(encoding="utf-8").splitlines()[1:]
    for line in lines:
        cols = line.split("\t")
        simulated = cols[7].strip() if len(cols) > 7 else ""
        found = {}
        for part in filter(None, (p.strip() for p in simulated.split(";;"))):
            name, _, value = part.partition(":")
            found[name.strip()] = value.strip()
        headers[cols[0]] = found
    return headers


def feed_files() -> list[str]:
    return sorted(
        str(p.relative_to(CORPUS))
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name != "MANIFEST.tsv" and "expected" not in p.parts
    )


def real_links(files: list[str]) -> set[str]:
    """Canonical entry links of the real feeds, as feedparser reads them."""
    import feedparser

    from tracker.core.urls import canonicalize

    links = set()
    for rel in files:
        if not rel.startswith("real/"):
            continue
        parsed = feedparser.parse((CORPUS / rel).read_bytes())
        for entry in parsed.entries:
            link = (entry.get("link") or "").strip()
            if link.startswith(("http://", "https://")):
                try:
                    links.add(canonicalize(link))
                except ValueError:
                    continue
    return links


def run(checkout: Path) -> dict[str, object]:
    files = feed_files()
    headers = manifest_headers()
    server = HTTPServer().start()
    try:
        for rel in files:
            hdrs = headers.get(rel, {})
            if not any(k.lower() == "content-type" for k in hdrs):
                hdrs = {"Content-Type": "application/xml", **hdrs}
            server.routes["/" + rel] = Response(200, (CORPUS / rel).read_bytes(), hdrs)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "tracker.toml"
            feeds = "".join(f'[[feeds]]\nname = "{rel}"\nurl = "{server.url("/" + rel)}"\n\n' for rel in files)
            cfg.write_text(
                f'[database]\nurl = "sqlite:///{tmp}/corpus.sqlite"\n\n[rules]\npaths = ["{checkout / "rules"}"]\n\n'
                + FETCH
                + feeds,
                encoding="utf-8",
            )
            env = {**os.environ, "PYTHONPATH": str(checkout)}
            env.pop("TRACKER_CONFIG", None)
            t0 = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-m", "tracker", "--config", str(cfg), "poll", "--once"],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp,
                timeout=1800,
            )
            seconds = time.monotonic() - t0
            con = sqlite3.connect(Path(tmp) / "corpus.sqlite")
            stored = {u for (u,) in con.execute("SELECT url FROM items")}
            stored |= {u for (u,) in con.execute("SELECT entry_url FROM item_sources") if u}
            statuses = Counter(s for (s,) in con.execute("SELECT last_status FROM feeds"))
            con.close()
    finally:
        server.stop()
    wanted = real_links(files)
    return {
        "exit": proc.returncode,
        "seconds": seconds,
        "feeds": len(files),
        "statuses": dict(statuses),
        "real_links": len(wanted),
        "real_stored": len(wanted & stored),
        "stderr_tail": proc.stderr.strip().splitlines()[-3:] if proc.returncode else [],
        "traceback": "Traceback" in proc.stderr,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=REPO)
    args = parser.parse_args()
    if not CORPUS.is_dir():
        sys.exit(f"no corpus at {CORPUS}")
    r = run(args.checkout.resolve())
    share = r["real_stored"] / r["real_links"] if r["real_links"] else 0.0  # type: ignore[operator]
    print("| checkout | exit | feeds | outcomes | real entry links stored | seconds |")
    print("| --- | ---: | ---: | --- | ---: | ---: |")
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(r["statuses"].items()))  # type: ignore[attr-defined]
    print(
        f"| {args.checkout} | {r['exit']} | {r['feeds']} | {outcomes} | "
        f"{r['real_stored']}/{r['real_links']} ({share:.1%}) | {r['seconds']:.1f} |"
    )
    if r["stderr_tail"]:
        print("stderr:", *r["stderr_tail"], sep="\n  ")


if __name__ == "__main__":
    main()
