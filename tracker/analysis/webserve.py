"""The Datasette server `tracker web` runs: Datasette's own command line, with newstracker's
page additions (:mod:`tracker.analysis.webcells`) registered in this process only.

``python -m tracker.analysis.webserve serve DB --metadata FILE ...`` takes Datasette's arguments.
"""

from __future__ import annotations


def main() -> None:
    from datasette.cli import cli

    from tracker.analysis.webcells import register

    register()
    cli(prog_name="datasette")


if __name__ == "__main__":
    main()
