"""Sending one message to one notification URL, through Apprise.

Apprise knows each service's URL syntax and API; we give it the message already rendered
in the format the service takes (``render``), so feed text is escaped by us, once, for
that format (a chat service that takes Markdown gets escaped Markdown, never bare text it
might render as Markdown). Each URL gets ``[[alerts]] timeout`` seconds to connect and to answer (its
own ``cto=`` / ``rto=`` win). Services that take HTTP headers (``json://``, ``form://``,
``xml://``, ``mailto://``) get the message's ``ref`` as ``X-Newstracker-Ref``; every
message also ends with it, so a receiver can drop a copy re-sent after a crash.

Apprise's own log lines do not reach our logs (its debug output can include a service's
token): they are kept per thread, and the reason a send failed is taken from them, with
every secret of the alert's URLs removed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tracker.alerts.render import escape, render
from tracker.core.alertconfig import AlertConfig
from tracker.core.errors import TrackerError
from tracker.core.urls import REDACTED, redact, redact_text

REF_HEADER = "X-Newstracker-Ref"


class AlertSendError(TrackerError):
    """A message could not be sent to one URL; the text is safe to show and store."""


@dataclass(frozen=True, slots=True)
class Channel:
    """One URL of one alert."""

    alert: str
    written: str = field(repr=False)  #: as in the config file (``${NAME}`` not expanded)
    url: str = field(repr=False)  #: expanded: secret
    missing: tuple[str, ...] = ()
    secrets: tuple[str, ...] = field(default=(), repr=False)
    timeout: float = 10.0

    @property
    def key(self) -> str:
        """The channel's identity in the outbox: the same URL as written, the same channel."""
        return hashlib.sha256(f"{self.alert}\n{self.written}".encode()).hexdigest()[:32]

    def usable(self) -> bool:
        """Does Apprise know this URL (its service, and what the service needs in it)?"""
        return _plugin(self.url) is not None

    def target(self) -> str:
        """The URL fit to show: Apprise's own masking of its secrets, else ours."""
        plugin = _plugin(self.url) if not self.missing else None
        shown = str(plugin.url(privacy=True)) if plugin is not None else redact(self.written)
        return scrub(shown.partition("?")[0], self.secrets)


def channels_of(alert: AlertConfig) -> list[Channel]:
    expanded = alert.expanded or alert.urls
    missing = alert.missing or tuple(() for _ in alert.urls)
    return [
        Channel(alert.name, written, url, absent, alert.secrets, alert.timeout)
        for written, url, absent in zip(alert.urls, expanded, missing, strict=True)
    ]


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` without any of ``secrets`` and without URL credentials."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 3:
            text = text.replace(secret, REDACTED)
    return redact_text(text)


def deliver(channel: Channel, title: str, content: Mapping[str, Any], ref: str) -> None:
    """Send the message (stored ``content``, shown as ``title``) to ``channel``; raises
    AlertSendError with the reason when the service did not take it."""
    if channel.missing:
        names = ", ".join(f"${{{n}}}" for n in channel.missing)
        raise AlertSendError(f"environment variable {names} is not set (used in {redact(channel.written)})")
    plugin = _plugin(channel.url)
    if plugin is None:
        raise AlertSendError(f"not a notification URL that Apprise knows: {channel.target()}")
    lowered = channel.url.lower()
    if "cto=" not in lowered:
        plugin.socket_connect_timeout = channel.timeout
    if "rto=" not in lowered:
        plugin.socket_read_timeout = channel.timeout
    from apprise import NotifyFormat, OverflowMode

    if "overflow=" not in lowered:  # a long summary goes out in pieces rather than not at all (Telegram: 4096)
        plugin.overflow_mode = OverflowMode.SPLIT

    fmt = _format(plugin, lowered)
    body = render(content, fmt, ref)
    # A service without a title field puts the title into the body as markup: escape it.
    shown = title if plugin.title_maxlen > 0 else escape(title, fmt)
    if isinstance(getattr(plugin, "headers", None), dict):
        plugin.headers[REF_HEADER] = ref
    with _captured() as lines:
        try:
            ok = plugin.notify(body=body, title=shown, body_format=NotifyFormat(fmt))
        except Exception as exc:  # noqa: BLE001 - a plugin's bug is this channel's failure
            lines.append(f"{type(exc).__name__}: {exc}")
            ok = False
    if not ok:
        reason = "; ".join(dict.fromkeys(line for line in lines if line)) or "the service did not accept it"
        raise AlertSendError(scrub(" ".join(reason.split())[:500], (*channel.secrets, channel.url)))


#: services whose "text" is shown as it is; elsewhere "text" may be read as Markdown (Discord)
_PLAIN_TEXT = ("json", "jsons", "form", "forms", "xml", "xmls")


def _format(plugin: Any, url: str) -> str:
    """The format to write for ``plugin``: its own choice (or the URL's ``format=``), except
    that a service which takes Markdown gets escaped Markdown instead of "text" — a chat
    service may render plain text as Markdown, and then only escaped text is inert."""
    from apprise import NotifyFormat

    chosen = NotifyFormat(plugin.resolve_format(None))
    formats = plugin.notify_format if isinstance(plugin.notify_format, tuple) else (plugin.notify_format,)
    generic = url.partition("://")[0] in _PLAIN_TEXT
    if chosen == NotifyFormat.TEXT and NotifyFormat.MARKDOWN in formats and not generic and "format=" not in url:
        chosen = NotifyFormat.MARKDOWN
    return str(chosen.value)


def _plugin(url: str) -> Any:
    import apprise

    return apprise.Apprise.instantiate(url, asset=_asset(), suppress_exceptions=True)


_ASSET: Any = None


def _asset() -> Any:
    """Apprise's settings: nothing written to disk (no persistent store)."""
    global _ASSET
    if _ASSET is None:
        import apprise

        _ASSET = apprise.AppriseAsset(storage_mode="memory")
        _install_capture()
    return _ASSET


class _PerThread(logging.Handler):
    """Keeps Apprise's warnings and errors for the thread that is sending."""

    local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        lines = getattr(self.local, "lines", None)
        if lines is not None and record.levelno >= logging.WARNING:
            lines.append(record.getMessage())


def _install_capture() -> None:
    log = logging.getLogger("apprise")
    if not any(isinstance(h, _PerThread) for h in log.handlers):
        log.addHandler(_PerThread())
    log.propagate = False  # its debug lines may carry a token; ours say what failed
    log.setLevel(logging.WARNING)


@contextmanager
def _captured() -> Iterator[list[str]]:
    lines: list[str] = []
    _PerThread.local.lines = lines
    try:
        yield lines
    finally:
        _PerThread.local.lines = None
