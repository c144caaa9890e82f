"""The HTTP client that delivery POSTs with: one pooled aiohttp ``ClientSession``.

Polling keeps httpx (DESIGN §5); delivery sends small bodies to a few endpoints as fast as it
can, and aiohttp's client (C-accelerated parsing, no per-request layering) costs about a fifth
of httpx's CPU per POST (bench/deliver.py prints both loops side by side). It is set up to
behave as the httpx client did:

* certificates are verified against certifi's bundle, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``
  when set (httpx's rule);
* ``HTTP_PROXY`` / ``HTTPS_PROXY`` and ``NO_PROXY`` are honoured, read once per
  origin (aiohttp's own ``trust_env`` would read them, and ~/.netrc, in a thread per request,
  and would send netrc credentials to a receiver: not done here);
* redirects are not followed (a 3xx is a failed attempt, as any answer that is not 2xx);
* no cookie is kept from one notification to the next: each is authenticated by its signature.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from poller import USER_AGENT

__all__ = ["delivery_session", "proxy_for", "tls_context"]

MAX_CONNECTIONS = 100  # open at once, across endpoints (each endpoint: concurrencyPerEndpoint)


def tls_context() -> ssl.SSLContext:
    """What httpx verifies with: ``SSL_CERT_FILE``, else ``SSL_CERT_DIR``, else certifi's bundle."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


@asynccontextmanager
async def delivery_session(*, tls: ssl.SSLContext | None = None) -> AsyncIterator[aiohttp.ClientSession]:
    """The session, closed (its connections too) on the way out. ``tls``: another trust (tests)."""
    proxy_for.cache_clear()  # (the environment as it is now)
    connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, ssl=tls or tls_context())
    # no timeout of the session's own: Sender bounds each whole attempt by timeoutSeconds
    session = aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT},
                                    cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                                    timeout=aiohttp.ClientTimeout(total=None), trust_env=False)
    try:
        yield session
    finally:
        await session.close()


@lru_cache(maxsize=1024)
def proxy_for(scheme: str, host: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
    """The proxy (and its credentials) the environment names for this origin, or (None, None)."""
    try:
        return get_env_proxy_for_url(URL.build(scheme=scheme, host=host))
    except LookupError:
        return None, None
