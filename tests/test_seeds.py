"""The instance bodies of the documents poller was made from (tests/data/seeds/, copied from
../shared/reference/seeds/ as published): each loads, with only its <PLACEHOLDERS> filled in
(and api.baseUrl for iContact, whose URLs pointed at Cloud Elements' hubs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poller.config import ConfigLoadError, load_config_text

SEEDS = Path(__file__).parent / "data" / "seeds"
FILLED = {"<CALLBACK_URL>": "https://app.example.com/events", "<LIST_IDS>": "L1,L2",
          "<INSTANCE_NAME>": "my instance", "{{page.elementKey}}": "sfdc"}


def filled(name: str, **extra: object) -> str:
    text = (SEEDS / name).read_text(encoding="utf-8")
    for placeholder, value in FILLED.items():
        text = text.replace(placeholder, value)
    body = json.loads(text)
    body.update(extra)
    return json.dumps(body)


@pytest.mark.parametrize("name, kind, lists", [
    ("000_campaignmonitor.json", "campaignmonitor", ("L1", "L2")),
    ("002_mailchimpv3.json", "mailchimp", ()),
    ("003_element_template.json", "generic", ()),
])
def test_the_webhook_seeds_load_as_webhook_instances(name: str, kind: str, lists: tuple) -> None:
    loaded = load_config_text(filled(name), name, {})
    [instance] = loaded.config.instances
    assert instance.webhook is not None and instance.receives_webhooks and not instance.polled
    assert (instance.webhook.kind, instance.webhook.list_ids) == (kind, lists)
    assert instance.callback_url == "https://app.example.com/events"
    assert [w for w in loaded.warnings if "ignored" in w] == []  # oauth.* keys belong to the element


def test_the_sap_version_with_its_empty_values_says_what_is_missing() -> None:
    with pytest.raises(ConfigLoadError) as caught:
        load_config_text((SEEDS / "001_campaignmonitor_sap.json").read_text(encoding="utf-8"), "sap.json", {})
    assert caught.value.problems == [
        "sap.json: name: is empty",
        "sap.json: configuration.\"event.notification.callback.url\": must be an http:// or https:// URL, got ''"]


def test_the_icontact_seed_is_polled_once_it_has_a_base_url() -> None:
    with pytest.raises(ConfigLoadError) as caught:
        load_config_text(filled("004_icontact.json"), "icontact.json", {})
    [problem] = caught.value.problems
    assert "contacts.url: is relative ('/hubs/general/contacts') and the instance has no api.baseUrl" in problem
    loaded = load_config_text(filled("004_icontact.json", api={"baseUrl": "https://app.icontact.com/icp/a/1/c/2"}),
                              "icontact.json", {})
    [instance] = loaded.config.instances
    assert instance.polled and [r.name for r in instance.resources] == ["contacts"]
    assert instance.refresh_interval_minutes == 15  # the string "15"


def test_a_published_body_with_a_missing_comma_says_where_it_goes() -> None:
    with pytest.raises(ConfigLoadError) as caught:
        load_config_text((SEEDS / "000_campaignmonitor_curl.txt").read_text(encoding="utf-8"), "cm.json", {})
    assert caught.value.problems == ["cm.json: line 12 column 5: not valid JSON: Expecting ',' delimiter "
                                     "(is a comma missing at the end of line 11?)"]
