"""Sending a message over SMTP: plain, STARTTLS or implicit TLS, optional login, timeouts,
and retries with backoff on transient failures (connection trouble, 4xx replies).
A permanent refusal (5xx) is not retried."""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
import time
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any

from tracker.core.config import SmtpConfig
from tracker.core.errors import MailError

logger = logging.getLogger(__name__)


def send(
    smtp: SmtpConfig,
    msg: EmailMessage | bytes,
    *,
    sender: str,
    recipients: Sequence[str],
    attempts: int = 3,
    backoff: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Deliver ``msg`` (an EmailMessage, or the bytes of one) to ``recipients``; returns the
    number of attempts it took. Raises MailError after the last failed attempt."""
    if smtp.username and not smtp.password:
        raise MailError(
            f"smtp.username is set but no password: set smtp.password_env to an environment variable"
            f"{f' (${smtp.password_env} is empty)' if smtp.password_env else ''}",
            attempts=0,
            transient=False,
        )
    data = msg.as_bytes(policy=SMTP_POLICY) if isinstance(msg, EmailMessage) else _crlf(msg)
    attempts = max(1, attempts)
    for attempt in range(1, attempts + 1):
        try:
            refused = _send_once(smtp, data, sender, recipients)
            if refused:
                logger.warning("SMTP %s:%s refused some recipients: %s", smtp.host, smtp.port, ", ".join(refused))
            return attempt
        except smtplib.SMTPResponseException as exc:
            transient = 400 <= exc.smtp_code < 500
            error = f"SMTP {smtp.host}:{smtp.port} replied {exc.smtp_code} {_text(exc.smtp_error)}"
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            transient = all(400 <= c < 500 for c in codes)
            error = f"SMTP {smtp.host}:{smtp.port} refused recipients: {', '.join(exc.recipients)}"
        except (OSError, smtplib.SMTPException) as exc:
            transient = True
            error = f"SMTP {smtp.host}:{smtp.port}: {exc or type(exc).__name__}"
        if not transient or attempt == attempts:
            raise MailError(error, attempts=attempt, transient=transient)
        wait = backoff * 2 ** (attempt - 1)
        logger.warning("mail attempt %d failed (%s); retrying in %.1fs", attempt, error, wait)
        sleep(wait)
    raise AssertionError("unreachable")


def _send_once(smtp: SmtpConfig, data: bytes, sender: str, recipients: Sequence[str]) -> dict[str, Any]:
    """One delivery; returns the recipients the server refused (when it took the others)."""
    context = ssl.create_default_context(cafile=smtp.ca_file or None)
    client: smtplib.SMTP
    if smtp.ssl:
        client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout, context=context)
    else:
        client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout)
    try:
        client.ehlo()
        if smtp.starttls and not smtp.ssl:
            client.starttls(context=context)
            client.ehlo()
        if smtp.username and smtp.password:
            client.login(smtp.username, smtp.password)
        refused: dict[str, Any] = client.sendmail(sender, list(recipients), data)
    except BaseException:
        client.close()
        raise
    # The server has the message: whatever QUIT answers must not make us send it again.
    try:
        client.quit()
    except (OSError, smtplib.SMTPException):
        client.close()
    return refused


def _crlf(data: bytes) -> bytes:
    """Bare LF line ends (an .eml written with ``\n``) as CRLF: smtplib sends bytes as they are."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
