"""poller.deliver.signing: the documented Cloud Elements vector, and Standard Webhooks checked by the
``standardwebhooks`` package exactly as a receiver would check it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from poller import USER_AGENT
from poller.deliver.signing import elements_signature, headers, standard_signature
from tests.receiver import standard_secret

VECTOR_KEY = "MySecretEventSignatureKey"
VECTOR_BODY = b"<INSERT_EVENT_NOTIFICATION_RESPONSE_BODY>"
VECTOR_SIGNATURE = "sha256=jHdbRx5EZAsOfTwAPJOGkNUzQMVVdu5VJlxcsk+G6jQ="

BODY = '{"id":"n-1","message":{"eventId":"n-1","raw":{"contacts":[{"name":"Zoë ☃"}]}}}'.encode()
NID = "6f1c1e9e-3a52-5b8e-9f0e-2c7d0a1b4c5d"
WHSEC = "whsec_" + base64.b64encode(bytes(range(32))).decode()  # a random-looking 32-byte secret


def test_the_documented_cloud_elements_vector() -> None:
    assert elements_signature(VECTOR_KEY, VECTOR_BODY) == VECTOR_SIGNATURE


def test_elements_signature_uses_the_key_utf8_even_for_whsec_keys() -> None:
    """DESIGN §9: Elements-Webhook-Signature always uses the key's UTF-8 bytes, as Cloud Elements did."""
    expected = base64.b64encode(hmac.new(WHSEC.encode(), BODY, hashlib.sha256).digest()).decode()
    assert elements_signature(WHSEC, BODY) == "sha256=" + expected
    assert elements_signature("clé", BODY) == "sha256=" + base64.b64encode(
        hmac.new("clé".encode("utf-8"), BODY, hashlib.sha256).digest()).decode()


def test_elements_signature_covers_every_byte() -> None:
    assert elements_signature(VECTOR_KEY, VECTOR_BODY + b" ") != VECTOR_SIGNATURE
    assert elements_signature(VECTOR_KEY + "x", VECTOR_BODY) != VECTOR_SIGNATURE


@pytest.mark.parametrize("key", ["MySecretEventSignatureKey", "clé ☃ with spaces", WHSEC],
                         ids=["plain", "plain-non-ascii", "whsec"])
def test_standard_webhooks_headers_verify_with_the_package(key: str) -> None:
    ts = int(time.time())
    out = headers(NID, BODY, key, ts, standard_webhooks=True, user_agent=USER_AGENT)
    assert out["webhook-id"] == NID == out["Elements-Webhook-Id"]
    assert out["webhook-timestamp"] == str(ts)
    assert out["webhook-signature"].startswith("v1,")
    assert out["Elements-Webhook-Signature"] == elements_signature(key, BODY)
    # exactly what a receiver does: the package, given the secret, over the raw body bytes
    assert Webhook(standard_secret(key)).verify(BODY, out) == {
        "id": "n-1", "message": {"eventId": "n-1", "raw": {"contacts": [{"name": "Zoë ☃"}]}}}
    # and standard_signature is what went into the header
    assert out["webhook-signature"] == standard_signature(key, NID, ts, BODY)


def test_a_whsec_key_is_base64_decoded_and_a_plain_key_is_not() -> None:
    ts = 1_700_000_000
    raw = bytes(range(32))
    signed = f"{NID}.{ts}.".encode() + BODY
    assert standard_signature(WHSEC, NID, ts, BODY) == "v1," + base64.b64encode(
        hmac.new(raw, signed, hashlib.sha256).digest()).decode()
    assert standard_signature("plain", NID, ts, BODY) == "v1," + base64.b64encode(
        hmac.new(b"plain", signed, hashlib.sha256).digest()).decode()


@pytest.mark.parametrize("tamper", ["body", "id", "timestamp", "key"])
def test_the_package_rejects_anything_tampered(tamper: str) -> None:
    ts = int(time.time())
    key = "MySecretEventSignatureKey"
    out = headers(NID, BODY, key, ts, standard_webhooks=True, user_agent=USER_AGENT)
    body, secret = BODY, standard_secret(key)
    if tamper == "body":
        body = BODY.replace(b"n-1", b"n-2", 1)
    elif tamper == "id":
        out["webhook-id"] = NID[:-1] + "e"
    elif tamper == "timestamp":
        out["webhook-timestamp"] = str(ts + 1)
    else:
        secret = standard_secret(key + "x")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, out)


def test_a_stale_timestamp_is_rejected_by_a_receiver() -> None:
    """The timestamp is per attempt: one from 10 minutes ago fails the package's 5-minute check."""
    ts = int(time.time()) - 600
    out = headers(NID, BODY, "k", ts, standard_webhooks=True, user_agent=USER_AGENT)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(standard_secret("k")).verify(BODY, out)


def test_the_signature_changes_with_the_timestamp_but_the_ids_do_not() -> None:
    a = headers(NID, BODY, "k", 1_700_000_000, standard_webhooks=True, user_agent=USER_AGENT)
    b = headers(NID, BODY, "k", 1_700_000_001, standard_webhooks=True, user_agent=USER_AGENT)
    assert a["webhook-signature"] != b["webhook-signature"]
    assert a["Elements-Webhook-Signature"] == b["Elements-Webhook-Signature"]
    assert a["webhook-id"] == b["webhook-id"] == a["Elements-Webhook-Id"] == NID


def test_always_present_headers() -> None:
    out = headers(NID, BODY, "k", 1_700_000_000, standard_webhooks=True, user_agent=USER_AGENT)
    assert out["Content-Type"] == "application/json"
    assert out["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("poller/")
    assert out["Elements-Webhook-Id"] == NID


def test_without_a_key_no_signature_header_but_the_ids_and_timestamp() -> None:
    out = headers(NID, BODY, None, 1_700_000_000, standard_webhooks=True, user_agent=USER_AGENT)
    lower = {k.lower(): v for k, v in out.items()}
    assert "elements-webhook-signature" not in lower
    assert "webhook-signature" not in lower
    assert lower["elements-webhook-id"] == NID
    assert lower["webhook-id"] == NID
    assert lower["webhook-timestamp"] == "1700000000"
    assert lower["content-type"] == "application/json"
    assert lower["user-agent"] == USER_AGENT


@pytest.mark.parametrize("key", ["k", None])
def test_standard_webhooks_off_sends_no_webhook_headers(key: str | None) -> None:
    out = headers(NID, BODY, key, 1_700_000_000, standard_webhooks=False, user_agent=USER_AGENT)
    lower = {k.lower(): v for k, v in out.items()}
    assert not [h for h in lower if h.startswith("webhook-")]
    assert lower["elements-webhook-id"] == NID
    if key:
        assert lower["elements-webhook-signature"] == elements_signature(key, BODY)
    else:
        assert "elements-webhook-signature" not in lower


def test_header_names_are_case_insensitively_unique() -> None:
    out = headers(NID, BODY, "k", 1_700_000_000, standard_webhooks=True, user_agent=USER_AGENT)
    assert len({k.lower() for k in out}) == len(out)
