"""The exception tree. Everything the tracker raises on purpose derives from TrackerError::

    TrackerError
    ├── ConfigError (ValueError)      bad config file: names the file and the key
    ├── RuleError (ValueError)        bad rule file: names the file, line and what was expected
    ├── FetchError                    a URL could not be fetched (carries .status: FetchStatus)
    ├── ParseError                    bytes that are not a usable feed
    ├── StorageError                  the database failed or is incompatible
    │   └── SchemaVersionError        the database is newer than this code
    ├── MailError                     the SMTP server refused or could not be reached
    └── AlreadyRunning                another `tracker run` uses the same SQLite database

Per-feed failures are recorded as data on the feed row; only unexpected errors propagate.
"""

from __future__ import annotations

from tracker.core.text import plain
from tracker.core.types import FetchStatus
from tracker.core.urls import redact, redact_text


class TrackerError(Exception):
    """Base class of every error the tracker raises deliberately."""


class ConfigError(TrackerError, ValueError):
    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        self.path = path
        self.key = key
        where = ": ".join(p for p in (path, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


class RuleError(TrackerError, ValueError):
    """A problem in a rule or entity file: ``path:line:column: message (expected ...)``.

    ``details()`` adds the offending line with a caret under the spot.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        expected: str | None = None,
        source_line: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.expected = expected
        self.source_line = source_line
        self.message = message
        where = ":".join(str(p) for p in (path, line, column) if p is not None)
        text = f"{where}: {message}" if where else message
        if expected:
            text += f" (expected {expected})"
        super().__init__(text)

    def details(self) -> str:
        out = [str(self)]
        if self.source_line is not None:
            out.append("    " + self.source_line)
            if self.column:
                out.append("    " + " " * (self.column - 1) + "^")
        return "\n".join(out)


class FetchError(TrackerError):
    def __init__(
        self,
        url: str,
        message: str,
        status: FetchStatus = FetchStatus.ERROR,
        *,
        http_status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.url = url
        self.status = status
        self.http_status = http_status  #: the HTTP status of an error response
        self.headers = headers or {}  #: its headers, lower-cased (Retry-After is read from here)
        # The message may carry what a server said (a reason phrase): no control characters.
        # Credentials in the URL (user:pass@, ?api_key=) never reach a record, a log or a digest.
        super().__init__(plain(f"{redact(url)}: {redact_text(message)}"))


class BadQueryError(TrackerError, ValueError):
    """A search query that the database cannot read (exit 2)."""


class ParseError(TrackerError):
    pass


class StorageError(TrackerError):
    pass


class SchemaVersionError(StorageError):
    pass


class CorruptDatabase(StorageError):
    """A SQLite file (the store or a backup) fails ``PRAGMA quick_check`` or cannot be read as
    a database at all. ``problems``: what the check reported (SQLite's message, when it could
    not even open the file)."""

    def __init__(self, message: str, *, path: str | None = None, problems: list[str] | tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.path = path  #: the file that failed
        self.problems = tuple(problems)


class MailError(TrackerError):
    """The message could not be handed to the SMTP server."""

    def __init__(self, message: str, *, attempts: int = 0, transient: bool = False) -> None:
        super().__init__(message)
        self.attempts = attempts  #: tries made
        self.transient = transient  #: a later try might succeed


class AlreadyRunning(TrackerError):
    """Another `tracker run` holds the SQLite database."""


def describe_os_error(exc: OSError) -> tuple[str, int]:
    """One line for a file the user named that cannot be read or written, and the exit code
    (2: the path is wrong, 1: anything else)."""
    import errno

    where = str(exc.filename) if exc.filename is not None else ""
    what = exc.strerror or type(exc).__name__
    if exc.errno == errno.EEXIST:
        what = "cannot make a directory here: a file of that name is in the way"
    bad_path = exc.errno in (
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.EEXIST,
        errno.ENAMETOOLONG,
    )
    return (f"{where}: {what}" if where else what), 2 if bad_path else 1
