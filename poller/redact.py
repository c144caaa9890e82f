"""Secrets out of what poller prints and logs: URLs and texts with tokens masked as ``***``. Pure.

Provider URLs may carry API keys in their query, callback URLs may carry tokens in their path
or query, and values from ``${env:...}`` are secrets wherever they appear: every URL that
reaches a log line, an error, ``status`` or ``explain`` goes through :func:`mask_url`.
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus, unquote_plus, urlsplit, urlunsplit

__all__ = ["mask_text", "mask_url"]

# query parameters whose values are masked: apiKey, api_key, access_token, client_secret, X-Amz-Signature, sig, ...
_SENSITIVE = re.compile(r"token|key|secret|passw|signature|auth|credential|^sig$", re.IGNORECASE)


# An escape that may decode to a letter: ASCII ones, and any byte of a non-ASCII character
# (with IGNORECASE, "\u212a", the Kelvin sign, matches "k").
_LETTER_ESCAPE = re.compile(r"%(?:[4-7][0-9a-fA-F]|[89a-fA-F][0-9a-fA-F])")


def _maybe_sensitive(url: str) -> bool:
    """``_SENSITIVE`` matches ``url`` unquoted. Unquoting turns an escape into one character and
    "+" into a space, so when no escape may become a letter, only letters already side by side
    can match, and the unquoting is saved (most URLs: `poller check` shows 100,000 of them)."""
    if _SENSITIVE.search(url) is None and not _LETTER_ESCAPE.search(url):
        return False
    return _SENSITIVE.search(unquote_plus(url) if "%" in url or "+" in url else url) is not None


def mask_url(url: str, secrets: tuple[str, ...] = ()) -> str:
    """``url`` with the password of its userinfo, the values of query parameters named like
    token/key/secret/password/signature, and every one of ``secrets`` replaced by ``***``."""
    if not secrets and "@" not in url and not _maybe_sensitive(url):
        return url  # nothing to mask (the common case)
    try:
        scheme, netloc, path, query, fragment = urlsplit(url)
    except ValueError:  # e.g. "http://user:pw@[::1/x": no parts to take, but its password still goes
        return mask_text(_USERINFO_PASSWORD.sub(r"\1***@", url), secrets)
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    if query:
        parts = []
        for part in query.split("&"):
            name, eq, _ = part.partition("=")
            parts.append(f"{name}=***" if eq and _SENSITIVE.search(unquote_plus(name)) else part)
        query = "&".join(parts)
    return mask_text(urlunsplit((scheme, netloc, path, query, fragment)), secrets)


# "//user:password@" up to the last "@" before the path: what urlsplit would take as userinfo
_USERINFO_PASSWORD = re.compile(r"(//[^/?#@:]*:)[^/?#]*@")


def mask_text(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret (as is, and URL-encoded) replaced by ``***``."""
    forms = {form for secret in secrets if secret
             for form in (str(secret), quote(str(secret), safe=""), quote_plus(str(secret), safe=""))}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text
