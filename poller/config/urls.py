"""URL checks for the configuration: what the HTTP clients would refuse, said before anything runs. Pure.

Providers are fetched with httpx, which parses as ``urlsplit`` does; callbacks are posted with
aiohttp, which parses with yarl and is stricter. A message never shows the URL unless the
caller passes it (masked) as ``shown``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from yarl import URL

__all__ = ["http_url_problem", "unsendable_problem"]


def http_url_problem(text: str, shown: str) -> str | None:
    """Why ``text`` is not an http(s) URL a client can reach, or None; ``shown``: how to quote it."""
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        return f"not a valid URL ({_unquoted(exc)}): {shown}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"must be an http:// or https:// URL, got {shown}"
    if not parts.hostname:
        return f"the URL has no host: {shown}"
    try:
        port = parts.port  # raises for a port that is not a number in 0..65535
    except ValueError:
        return f"the URL's port is not a number from 1 to 65535: {shown}"
    if port == 0:
        return f"the URL's port is 0, which nothing can be reached at: {shown}"
    if any(c.isspace() for c in text):
        return f"the URL contains white space: {shown}"
    return None


def unsendable_problem(url: str, *, secret: bool = False) -> str | None:
    """Why delivery (aiohttp, which parses with yarl) would refuse ``url`` although urlsplit
    takes it, or None. Without this check such a URL passes ``poller check``, and every
    notification becomes a dead letter on its first attempt. The message never shows the URL,
    nor its host when ``secret`` (a part of it came from ``${env:...}``)."""
    try:
        host = URL(url).raw_host or ""
    except (ValueError, UnicodeError) as exc:  # yarl's messages name the part, not the URL
        return f"cannot be sent to: {_unquoted(exc)}"
    # aiohttp refuses the legacy numeric forms of IPv4 (127.1, 2130706433, 0177.0.0.1), which
    # socket would map onto an address (aiohttp.helpers.is_canonical_ipv4_address)
    if ":" not in host and host.replace(".", "").isdigit() and not _DOTTED_QUAD.fullmatch(host):
        shown = "'***' (from the environment)" if secret else repr(host)
        return (f"the host {shown} is not an IPv4 address in dotted-quad form (four numbers from 0 to 255 "
                "without leading zeros, such as 127.0.0.1), which is all delivery accepts")
    return None


def _unquoted(exc: Exception) -> str:
    """A parser's message without what it quotes: urlsplit quotes the netloc ("netloc 'u:pw＃@h'
    contains invalid characters..."), which may hold a password or a value from ${env:...}."""
    return re.sub(r"'[^']*'", "(...)", str(exc))


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}", re.ASCII)
