"""Signatures of notifications. Pure: HMAC-SHA256 over the exact body bytes.

* Cloud Elements: ``Elements-Webhook-Signature: sha256=<base64 HMAC-SHA256(key UTF-8, body)>``.
* Standard Webhooks (https://www.standardwebhooks.com): ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}." + body)>``, where the key
  is the base64-decoded part after ``whsec_`` when it starts so, else its UTF-8 bytes.

Without a key no signature header is sent; the id and timestamp headers still are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["elements_signature", "headers", "standard_key_bytes", "standard_signature"]


def elements_signature(key: str, body: bytes) -> str:
    digest = hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode("ascii")


def standard_key_bytes(key: str) -> bytes:
    if key.startswith("whsec_"):
        try:
            return base64.b64decode(key[len("whsec_"):], validate=True)
        except (binascii.Error, ValueError):
            pass  # not base64 after all: use the text, as for any other key
    return key.encode("utf-8")


def standard_signature(key: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_key_bytes(key), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(notification_id: str, body: bytes, key: str | None, timestamp: int, *, standard_webhooks: bool = True,
            user_agent: str) -> dict[str, str]:
    """The headers of one delivery attempt (the timestamp, and so its signature, is per attempt)."""
    out = {"Content-Type": "application/json", "User-Agent": user_agent, "Elements-Webhook-Id": notification_id}
    if key:
        out["Elements-Webhook-Signature"] = elements_signature(key, body)
    if standard_webhooks:
        out["webhook-id"] = notification_id
        out["webhook-timestamp"] = str(timestamp)
        if key:
            out["webhook-signature"] = standard_signature(key, notification_id, timestamp, body)
    return out
