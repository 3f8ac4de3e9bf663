"""URL identity and address checks.

``canonicalize`` decides when two links are the same article: lower-case scheme and host,
default ports, fragments and tracking parameters dropped, the remaining query sorted
(``www.`` is kept: it can be another site). ``is_private_address`` is the building block
of the guard against server-side request forgery.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

#: query parameters that only track the reader, never select the content
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "oly_anon_id",
        "oly_enc_id",
        "ncid",
        "cmpid",
        "ito",
        "smid",
        "sr_share",
        "taid",
        "guccounter",
        "guce_referrer",
        "guce_referrer_sig",
        "ref_src",
        "spm",
        "s_cid",
        "soc_src",
        "soc_trk",
        "ocid",
        "cvid",
    }
)
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "at_", "vero_", "__twitter")

_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonicalize(url: str, base: str | None = None) -> str:
    """Return the canonical form of ``url`` (resolved against ``base`` when relative)."""
    if base:
        url = urljoin(base, url.strip())
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    with contextlib.suppress(UnicodeError):
        host = host.encode("idna").decode("ascii") if host and not host.isascii() else host
    port = parts.port if parts.port and parts.port != _DEFAULT_PORTS.get(scheme) else None
    netloc = f"[{host}]" if ":" in host else host
    if port:
        netloc += f":{port}"
    path = parts.path or "/"
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in TRACKING_PARAMS and not k.lower().startswith(TRACKING_PREFIXES)
    ]
    query.sort()
    return urlunsplit((scheme, netloc, path, urlencode(query, doseq=True), ""))


#: whitespace, control characters and lone surrogates: never part of a URL we poll
_UNSENDABLE = re.compile(r"[\x00-\x20\x7f-\x9f\ud800-\udfff]")
MAX_URL = 2048  #: the store's url columns hold this many characters


def validate_feed_url(url: str) -> str | None:
    """None when ``url`` can be polled, else what is wrong with it."""
    if _UNSENDABLE.search(url):  # urlsplit would silently drop a tab or newline
        return "a URL cannot contain spaces or control characters"
    if len(url) > MAX_URL:
        return f"longer than {MAX_URL:,} characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "expected an http:// or https:// URL"
    if not parts.hostname:
        return "URL has no host"
    return None


#: query parameters that carry a credential; their values never leave the fetcher
SECRET_PARAMS = re.compile(
    r"(?:api[_-]?key|apikey|key|token|access[_-]?token|auth|authorization|secret|client[_-]?secret|password|passwd"
    r"|pwd|sig|signature|session|sessionid|sid|credential|credentials|private[_-]?token|x[_-]?api[_-]?key)",
    re.I,
)
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
REDACTED = "REDACTED"


def redact(url: str) -> str:
    """``url`` fit to show: a password in it (``user:pass@``) and the values of query
    parameters that carry credentials (``api_key=``, ``token=``, ...) replaced by REDACTED.
    Anything that does not parse as a URL is returned as is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"  # a user name alone can be a token
    query = parts.query
    if query:
        pairs = []
        for piece in query.split("&"):
            name, eq, _value = piece.partition("=")
            pairs.append(f"{name}={REDACTED}" if eq and SECRET_PARAMS.fullmatch(name.strip()) else piece)
        query = "&".join(pairs)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Every URL inside ``text`` (a log line, an error message) redacted."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact(m.group(0)), text)


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def outlet_host(url: str) -> str | None:
    """The host that names an outlet: ``https://www.example.com/x`` → ``example.com``."""
    return host_of(url).removeprefix("www.") or None


def same_site(a: str, b: str) -> bool:
    """True when two URLs are on the same host, ignoring a leading ``www.``."""
    ha, hb = host_of(a), host_of(b)
    return ha.removeprefix("www.") == hb.removeprefix("www.")


_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def is_private_address(ip: str) -> bool:
    """Loopback, private, link-local, multicast, reserved or unspecified."""
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address reach that address: judge it instead.
        if addr.ipv4_mapped:
            addr = addr.ipv4_mapped
        elif addr.sixtofour:
            addr = addr.sixtofour
        elif any(addr in net for net in _NAT64) or (int(addr) >> 32 == 0 and int(addr) > 1):
            addr = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)  # NAT64, or IPv4-compatible ::a.b.c.d
    return not addr.is_global or addr.is_multicast
