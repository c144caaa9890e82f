"""``Authorization: User <userSecret>, Organization <organizationSecret>[, Element <token>]``, as
Cloud Elements' clients send it; compared in constant time (the Element part is ignored)."""

from __future__ import annotations

import hmac

from poller.config.types import ManagementApiConfig

__all__ = ["authorized"]


def _parts(header: str) -> dict[str, str]:
    parts: dict[str, str] = {}
    for piece in header.split(","):
        kind, _, value = piece.strip().partition(" ")
        if kind and value.strip():
            parts.setdefault(kind.lower(), value.strip())
    return parts


def authorized(header: str | None, api: ManagementApiConfig) -> bool:
    parts = _parts(header or "")
    user = hmac.compare_digest(parts.get("user", "").encode(), str(api.user_secret).encode())
    organization = hmac.compare_digest(parts.get("organization", "").encode(), str(api.organization_secret).encode())
    return user & organization  # both compared, whatever the first gave
