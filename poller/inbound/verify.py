"""The generic element's request signatures (``event.webhook.verify``, DESIGN §10). Pure: ``now_s`` is given.

Every comparison is constant-time (:func:`hmac.compare_digest`) and over the raw body bytes as
received. :func:`check` returns None when the request is verified, else the reason (which never
contains a secret or the signature sent).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from poller.config.types import VerifyConfig
from poller.deliver.signing import standard_key_bytes

__all__ = ["check", "SECRET_HEADERS"]

# never kept with a stored request
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
_ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


def check(verify: VerifyConfig, headers: Mapping[str, str], body: bytes, now_s: float) -> str | None:
    """``headers`` with lower-case names."""
    if verify.type == "hmac":
        return _hmac(verify, headers, body, now_s)
    if verify.type == "standardwebhooks":
        return _standard(verify, headers, body, now_s)
    if verify.type == "basic":
        return _basic(verify, headers)
    return None


def _hmac(verify: VerifyConfig, headers: Mapping[str, str], body: bytes, now_s: float) -> str | None:
    assert verify.header is not None and verify.secret is not None
    sent = headers.get(verify.header)
    if sent is None:
        return f"no {verify.header} header (event.webhook.verify.header)"
    signed = body
    if verify.timestamp_header is not None:
        stamp = headers.get(verify.timestamp_header)
        if stamp is None:
            return f"no {verify.timestamp_header} header (event.webhook.verify.timestampHeader)"
        problem = _too_old(stamp, now_s, verify.tolerance_seconds)
        if problem:
            return problem
        signed = stamp.strip().encode("ascii", "replace") + b"." + body
    digest = hmac.new(verify.secret.encode("utf-8"), signed, _ALGORITHMS[verify.algorithm]).digest()
    expected = digest.hex() if verify.encoding == "hex" else base64.b64encode(digest).decode("ascii")
    candidate = sent.strip()
    if verify.prefix:
        if not candidate.startswith(verify.prefix):
            return f"the {verify.header} header does not start with the configured prefix"
        candidate = candidate[len(verify.prefix):]
    if verify.encoding == "hex":
        candidate = candidate.lower()
    if not hmac.compare_digest(candidate.encode("utf-8", "replace"), expected.encode("ascii")):
        return f"the {verify.header} signature does not match the body"
    return None


def _standard(verify: VerifyConfig, headers: Mapping[str, str], body: bytes, now_s: float) -> str | None:
    assert verify.secret is not None
    msg_id, stamp, sent = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if msg_id is None or stamp is None or sent is None:
        return "the webhook-id, webhook-timestamp and webhook-signature headers are required (Standard Webhooks)"
    problem = _too_old(stamp, now_s, verify.tolerance_seconds)
    if problem:
        return problem
    signed = f"{msg_id}.{stamp.strip()}.".encode("utf-8", "replace") + body
    expected = base64.b64encode(hmac.new(standard_key_bytes(verify.secret), signed, hashlib.sha256).digest())
    matched = False
    for part in sent.split():
        version, _, signature = part.partition(",")
        # every candidate is compared: the time taken does not say which one matched
        matched |= version == "v1" and hmac.compare_digest(signature.encode("utf-8", "replace"), expected)
    return None if matched else "the webhook-signature does not match the body (Standard Webhooks)"


def _basic(verify: VerifyConfig, headers: Mapping[str, str]) -> str | None:
    assert verify.username is not None and verify.password is not None
    sent = headers.get("authorization", "")
    scheme, _, encoded = sent.strip().partition(" ")
    if scheme.lower() != "basic":
        return "no Basic Authorization header"
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).partition(b":")
    except (binascii.Error, ValueError):
        return "the Authorization header is not Basic base64(user:password)"
    ok = hmac.compare_digest(user, verify.username.encode("utf-8"))
    ok &= hmac.compare_digest(password, verify.password.encode("utf-8"))
    return None if ok and colon else "wrong user name or password (Basic Authorization)"


def _too_old(stamp: str, now_s: float, tolerance_s: float) -> str | None:
    try:
        value = float(stamp.strip())
    except ValueError:
        return "the signature timestamp is not a number of seconds"
    if value > 1e11:  # milliseconds
        value /= 1000.0
    if abs(now_s - value) > tolerance_s:
        return f"the signature timestamp is more than {tolerance_s:g} s from our clock"
    return None
