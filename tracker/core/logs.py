"""Logging setup for the CLI and the service only (library modules just log)."""

from __future__ import annotations

import json
import logging
import sys

from tracker.core.urls import redact_text


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class RedactFilter(logging.Filter):
    """Every URL in a log line shown with its credentials (``user:pass@``, ``?api_key=``)
    redacted, whichever library logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def setup(level: str = "INFO", fmt: str = "plain") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactFilter())
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Third-party chatter stays quiet unless something is wrong.
    for name in ("httpx", "httpcore", "trafilatura", "htmldate", "apscheduler.executors", "alembic"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
