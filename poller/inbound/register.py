"""``poller webhooks register``: the provider-side webhooks of a webhook instance, created (or
removed) through the instance's ``api`` as Cloud Elements did when an instance was created
(DESIGN §10, ../shared/reference/webhooks.md).

Campaign Monitor: one webhook per list of ``events.list.ids`` at
``{baseUrl}/lists/{listId}/webhooks.json`` (baseUrl default ``https://api.createsend.com/api/v3.3``).
Mailchimp: one per audience at ``{baseUrl}/lists/{listId}/webhooks`` (baseUrl
``https://<dc>.api.mailchimp.com/3.0``, required). The list is read first, so a webhook with our
URL is never created twice, and ``remove`` deletes only the webhooks with our URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from poller import USER_AGENT
from poller.config.types import InstanceConfig
from poller.errors import PollerError

__all__ = ["Change", "RegisterError", "register", "CAMPAIGN_MONITOR_BASE"]

CAMPAIGN_MONITOR_BASE = "https://api.createsend.com/api/v3.3"
CM_EVENTS = ["Subscribe", "Update", "Deactivate"]
MC_EVENTS = {"subscribe": True, "unsubscribe": True, "profile": True, "cleaned": True, "upemail": True,
             "campaign": True}
MC_SOURCES = {"user": True, "admin": True, "api": True}


@dataclass(frozen=True, slots=True)
class Change:
    list_id: str
    action: str  # created | exists | removed | absent
    webhook_id: str | None = None


class RegisterError(PollerError):
    """The provider refused, or could not be reached; the message says which call and why."""


class _Provider:
    """The calls of one provider's webhook API; ``list`` gives (webhook id, url) pairs."""

    def __init__(self, instance: InstanceConfig, client: httpx.Client, base: str) -> None:
        self.instance, self.client, self.base = instance, client, base.rstrip("/")

    def call(self, method: str, path: str, list_id: str, json: Any = None) -> Any:
        url = self.base + path
        try:
            response = self.client.request(method, url, json=json)
        except httpx.HTTPError as exc:
            host = urlsplit(url).netloc
            raise RegisterError(f"{self.instance.id}: list {list_id}: {method} {path}: cannot reach {host}: "
                                f"{type(exc).__name__}: {exc}") from None
        if response.status_code >= 300:
            raise RegisterError(f"{self.instance.id}: list {list_id}: {method} {path}: HTTP {response.status_code}"
                                f"{_provider_message(response)}")
        return response.json() if response.content else None


def _provider_message(response: httpx.Response) -> str:
    """The provider's own words: Campaign Monitor {"Code", "Message"}, Mailchimp {"title", "detail"}."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()[:200]
        return f": {text}" if text else ""
    if isinstance(body, dict):
        if "Message" in body:
            return f": {body.get('Message')} (code {body.get('Code')})"
        if "title" in body or "detail" in body:
            return ": " + " - ".join(str(body[k]) for k in ("title", "detail") if body.get(k))
    return f": {str(body)[:200]}"


class _CampaignMonitor(_Provider):
    def list(self, list_id: str) -> list[tuple[str, str]]:
        found = self.call("GET", f"/lists/{quote(list_id, safe='')}/webhooks.json", list_id) or []
        return [(str(w.get("WebhookID")), str(w.get("Url"))) for w in found if isinstance(w, dict)]

    def create(self, list_id: str, url: str) -> str:
        made = self.call("POST", f"/lists/{quote(list_id, safe='')}/webhooks.json", list_id,
                         {"Events": CM_EVENTS, "Url": url, "PayloadFormat": "json"})
        return str(made)  # the new id, as a bare JSON string

    def delete(self, list_id: str, webhook_id: str) -> None:
        self.call("DELETE", f"/lists/{quote(list_id, safe='')}/webhooks/{quote(webhook_id, safe='')}.json", list_id)


class _Mailchimp(_Provider):
    def list(self, list_id: str) -> list[tuple[str, str]]:
        found = self.call("GET", f"/lists/{quote(list_id, safe='')}/webhooks", list_id) or {}
        hooks = found.get("webhooks", []) if isinstance(found, dict) else []
        return [(str(w.get("id")), str(w.get("url"))) for w in hooks if isinstance(w, dict)]

    def create(self, list_id: str, url: str) -> str:
        made = self.call("POST", f"/lists/{quote(list_id, safe='')}/webhooks", list_id,
                         {"url": url, "events": MC_EVENTS, "sources": MC_SOURCES})
        return str(made.get("id")) if isinstance(made, dict) else str(made)

    def delete(self, list_id: str, webhook_id: str) -> None:
        self.call("DELETE", f"/lists/{quote(list_id, safe='')}/webhooks/{quote(webhook_id, safe='')}", list_id)


def _provider(instance: InstanceConfig, client: httpx.Client) -> _CampaignMonitor | _Mailchimp:
    assert instance.webhook is not None
    kind = instance.webhook.kind
    if kind == "generic":
        raise RegisterError(f"{instance.id}: the generic element has no registration API: paste the URL that "
                            "`poller webhooks` prints into the provider's webhook settings")
    if not instance.webhook.list_ids:
        raise RegisterError(f"{instance.id}: set events.list.ids to the list ids to register the webhook on")
    if kind == "campaignmonitor":
        return _CampaignMonitor(instance, client, instance.api.base_url or CAMPAIGN_MONITOR_BASE)
    if not instance.api.base_url:
        raise RegisterError(f"{instance.id}: set api.baseUrl to https://<dc>.api.mailchimp.com/3.0 (<dc>: the "
                            "suffix of the API key, e.g. us6) to register with Mailchimp")
    return _Mailchimp(instance, client, instance.api.base_url)


def register(instance: InstanceConfig, url: str, *, remove: bool = False,
             transport: httpx.BaseTransport | None = None) -> list[Change]:
    """Create (or, with ``remove``, delete) the instance's webhook on each of its lists."""
    if instance.webhook is None:
        raise RegisterError(f"{instance.id}: not a webhook instance")
    headers = {"User-Agent": USER_AGENT, **{name: str(value) for name, value in instance.api.headers}}
    with httpx.Client(headers=headers, timeout=instance.api.timeout_seconds, verify=instance.api.verify_tls,
                        transport=transport) as client:
        provider = _provider(instance, client)
        changes = []
        for list_id in instance.webhook.list_ids:
            ours = [hook_id for hook_id, hook_url in provider.list(list_id) if hook_url == url]
            if remove:
                for hook_id in ours:
                    provider.delete(list_id, hook_id)
                changes += [Change(list_id, "removed", h) for h in ours] or [Change(list_id, "absent")]
            elif ours:
                changes.append(Change(list_id, "exists", ours[0]))
            else:
                changes.append(Change(list_id, "created", provider.create(list_id, url)))
        return changes
