"""Each hostile source alone: outcome, wall time and peak memory of `tracker poll --once`.

The sources are those of tests/test_hostile.py (tests/hostile.py), served on 127.0.0.1
under the same limits. Run from the repository root:

    python bench/hostile_report.py
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.hostile import HostileServer, feed_urls, gzip_bomb  # noqa: E402
from tests.test_hostile import LIMITS  # noqa: E402


def poll_alone(tmp: Path, name: str, url: str) -> tuple[str, str, float, float]:
    db = tmp / f"{abs(hash(name))}.sqlite"
    cfg = tmp / f"{abs(hash(name))}.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{db}"\n{LIMITS}[[feeds]]\nname = "case"\nurl = "{url}"\n')
    env = {k: v for k, v in os.environ.items() if k != "TRACKER_CONFIG"}
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracker", "--config", str(cfg), "poll", "--once"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    _, _, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - t0
    con = sqlite3.connect(db)
    status, error = con.execute("SELECT last_status, last_error FROM feeds").fetchone()
    stored = con.execute("SELECT count(*) FROM items").fetchone()[0]
    con.close()
    outcome = f"{status}, {stored} items" if status == "ok" else status
    reason = (error or "").split(": ", 1)[-1] if error and error.startswith(url) else (error or "")
    return outcome, reason[:70], seconds, usage.ru_maxrss / 1024


def main() -> None:
    gzip_bomb()
    rows = []
    with tempfile.TemporaryDirectory() as d, HostileServer() as server:
        for name, url in feed_urls(server).items():
            rows.append((name, *poll_alone(Path(d), name, url)))
    print("| source | outcome | recorded error | wall s | peak MB |")
    print("| --- | --- | --- | ---: | ---: |")
    for name, outcome, error, seconds, mb in rows:
        print(f"| {name} | {outcome} | {error.replace('|', '/')} | {seconds:.1f} | {mb:.0f} |")


if __name__ == "__main__":
    main()
