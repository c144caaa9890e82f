"""Loading configurations: every published Cloud Elements body, every rule of DESIGN.md §2."""

from __future__ import annotations

import ast
import json
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest

from poller.config import ConfigLoadError, EngineConfig, LoadResult, load_config, load_config_text
from poller.config import values as config_values
from poller.config.schema import KEY_LISTS, SCHEMA
from poller.config.types import DEFAULT_RETRY_SCHEDULE, SecretStr
from tests.configs import BASE_URL, CALLBACK, DROP, corpus, engine_file, instance, resource, wrap_corpus
from tests.conftest import ROOT

CORPUS = corpus()
PC = 'configuration."event.poller.configuration"'
UTC = timezone.utc
SINCE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ZONE_HELP = ("is a placeholder left to fill in: replace it with the provider's time zone (an IANA id such as "
             "'America/New_York', a Java id such as 'PST', or an offset such as '-08:00')")
UNMATCHED = "unmatched '}}' at position {} (a placeholder is written ${{descriptor:format}}, a path parameter {{name}})"

# Corpus entries that are genuinely broken: index -> (elementKey, resource, reason, one exact message).
REJECTED: dict[int, tuple[str, str, str, str]] = {
    45: ("eloqua", "contacts", "a description ('10 digit integer Unix time') in place of a date format",
         f"{PC}.contacts.datesConfiguration.updatedDateFormat: unknown pattern letter 'i' at position 4"),
    56: ("icontact", "contacts", "doc typo: stray \"}'\" after the url",
         f"{PC}.contacts.url: " + UNMATCHED.format(22)),
    57: ("icontact", "message", "doc typo: stray \"}'\" after the url",
         f"{PC}.message.url: " + UNMATCHED.format(22)),
    74: ("linkedin", "companies/{id}/updates/comments", "doc typo: milliseconds' with a stray quote",
         f"{PC}.\"companies/{{id}}/updates/comments\".datesConfiguration.updatedDateFormat: "
         "unknown pattern letter 'i' at position 1 (did you mean 'milliseconds'?)"),
    75: ("linkedin", "companies/{id}/updates/likes", "doc typo: milliseconds' with a stray quote",
         f"{PC}.\"companies/{{id}}/updates/likes\".datesConfiguration.updatedDateFormat: "
         "unknown pattern letter 'i' at position 1 (did you mean 'milliseconds'?)"),
    157: ("woocommercerest", "contacts", "doc typo: a stray trailing quote in both date formats",
          f"{PC}.contacts.datesConfiguration.updatedDateFormat: unterminated quote at position 21"),
    198: ("activecampaign2", "deals", "doc typo: a stray trailing quote in createdDateFormat",
          f"{PC}.deals.datesConfiguration.createdDateFormat: unterminated quote at position 24"),
    193: ("servicetitan", "customers", "doc typo: '$yyyy...}' where '${gmtDate:...}' was meant",
          f"{PC}.customers.url: " + UNMATCHED.format(57)),
    194: ("servicetitan", "invoices", "placeholder without a descriptor: ${yyyy-MM-dd'T'HH:mm:ss'Z'}",
          f"{PC}.invoices.url: unknown placeholder ${{yyyy-MM-dd'T'HH:mm:ss'Z'}} at position 31 (did you mean "
          "${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}?); known placeholders: gmtDate, date, dateTimeZone, "
          "nowTimeZone, epoch, milliseconds, pageSize"),
    **{i: ("zohocrm", name, "the time zone is Zoho's {TimeZone} placeholder, left for the user to fill in",
           f"{PC}.{name}.datesConfiguration.updatedDateTimezone: time zone '{{TimeZone}}' {ZONE_HELP}")
       for i, name in zip(range(162, 169), ("accounts", "activities-calls", "activities-events", "campaigns",
                                             "contacts", "leads", "opportunities"))},
    202: ("freshdeskv2", "contacts", "the time zone is a Ruby %{time_zone} template the client fills in",
          f"{PC}.contacts.datesConfiguration.UpdatedDateTimezone: time zone '%{{time_zone}}' {ZONE_HELP}"),
    203: ("freshdeskv2", "accounts", "the time zone is a Ruby %{time_zone} template the client fills in",
          f"{PC}.accounts.datesConfiguration.UpdatedDateTimezone: time zone '%{{time_zone}}' {ZONE_HELP}"),
}


def load(body: object, environ: dict[str, str] | None = None, name: str = "config.json") -> LoadResult:
    return load_config_text(json.dumps(body), name, environ or {})


def errors(body: object, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigLoadError) as info:
        load(body, environ)
    return info.value.problems


# ------------------------------------------------------------------ the corpus

@pytest.mark.parametrize("index", range(len(CORPUS)), ids=lambda i: f"{i}-{CORPUS[i]['elementKey']}")
def test_corpus_entry_loads_or_is_rejected_for_its_listed_reason(index: int) -> None:
    entry = CORPUS[index]
    if index in REJECTED:
        element, name, _reason, message = REJECTED[index]
        assert (entry["elementKey"], entry["resource"]) == (element, name)
        with pytest.raises(ConfigLoadError) as info:
            load_config_text(json.dumps(wrap_corpus(entry)), "corpus.json", {})
        assert f"corpus.json: {message}" in info.value.problems
        return
    result = load_config_text(json.dumps(wrap_corpus(entry)), "corpus.json", {})
    [(inst, res)] = list(result.config.resources())
    assert inst.polled and res.name == entry["resource"]
    url = res.url.render(SINCE, SINCE, res.page_size or 20)
    assert url.startswith(BASE_URL + "/")
    assert "${" not in url


def test_the_corpus_is_the_one_described() -> None:
    assert len(CORPUS) == 204
    assert len(REJECTED) == 18
    assert all(0 <= i < len(CORPUS) for i in REJECTED)


def test_corpus_as_a_json_string_loads_the_same() -> None:
    for index, entry in enumerate(CORPUS):
        if index in REJECTED:
            continue
        as_object = load_config_text(json.dumps(wrap_corpus(entry)), "c.json", {})
        as_string = load_config_text(json.dumps(wrap_corpus(entry, as_string=True)), "c.json", {})
        assert as_string.config == as_object.config, index
        assert as_string.warnings == as_object.warnings


def test_corpus_configs_validate_against_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for index, entry in enumerate(CORPUS):
        for as_string in (False, True):
            body = wrap_corpus(entry, as_string=as_string)
            for shape in (body, [body], {"instances": [body]}):
                errors_found = [e.message for e in validator.iter_errors(shape)]
                assert errors_found == [], (index, errors_found)


def test_corpus_quirks_are_understood() -> None:
    hubspot = load(wrap_corpus(CORPUS[55])).config.instances[0].resources[0]
    assert hubspot.created_check_tolerance_seconds == 10  # inside datesConfiguration
    pipedrive = load(wrap_corpus(CORPUS[200])).config.instances[0].resources[0]
    assert pipedrive.dates.updated_format is not None and pipedrive.dates.updated_format.zone_id == "MST"
    assert pipedrive.dates.created_format is not None and pipedrive.dates.created_format.zone_id == "MST"
    assert pipedrive.filter_by_updated_date is False and pipedrive.created_check_tolerance_seconds == 2
    demo = load(wrap_corpus(CORPUS[179])).config.instances[0].resources[0]
    assert demo.filter_by_updated_date is False  # the string "false"
    vcloud = load(wrap_corpus(CORPUS[196])).config.instances[0].resources[0]
    assert vcloud.id_path == ("@id",) and vcloud.dates.updated_format is None
    zoho_like = resource(idField="ACCOUNTID", datesConfiguration={"updatedDateField": "['Modified Time']",
                                                                  "updatedDateFormat": "yyyy-MM-dd HH:mm:ss"})
    assert load(instance({"accounts": zoho_like})).config.instances[0].resources[0].dates.updated_path == \
        ("Modified Time",)


# ------------------------------------------------------------------ shapes and values

def test_the_three_shapes_give_the_same_instances() -> None:
    body = instance()
    single, listed, full = load(body), load([body]), load(engine_file(body))
    assert single.config.instances == listed.config.instances == full.config.instances
    assert single.config.engine == EngineConfig()


def test_strings_and_natives_are_the_same() -> None:
    strings = instance({"contacts": resource(pageSize="50", pollDelay="30", filterByCurrentDate="TRUE")})
    natives = instance({"contacts": resource(pageSize=50, pollDelay=30, filterByCurrentDate=True)},
                       configuration={"event.notification.enabled": True, "event.poller.refresh_interval": 15})
    assert load(strings).config == load(natives).config


def test_defaults() -> None:
    body = instance({"contacts": {"url": "/contacts", "idField": "id"}},
                    configuration={"event.poller.refresh_interval": DROP})
    inst = load(body).config.instances[0]
    assert (inst.id, inst.name, inst.element_key, inst.tags) == ("demo", "demo", "demo", ())
    assert inst.refresh_interval_minutes == 15 and inst.refresh_interval_seconds == 900
    assert inst.signature_key is None and inst.callback_url == CALLBACK
    assert (inst.api.timeout_seconds, inst.api.verify_tls, inst.api.headers) == (30.0, True, ())
    res = inst.resources[0]
    assert (res.page_size, res.poll_delay_seconds, res.created_check_tolerance_seconds) == (None, 0.0, 10.0)
    assert (res.filter_by_updated_date, res.filter_by_current_date) == (True, False)
    assert res.dates.updated_format is None and res.dates.created_format is None
    assert res.records_path is None and res.initial_cursor is None
    assert (res.pagination.type, res.pagination.max_pages, res.pagination.page_size_param) == ("none", 1000, "pageSize")
    engine = EngineConfig()
    assert (engine.lookback_seconds, engine.server_time_zone, engine.max_concurrent_polls) == (60, "UTC", 16)
    assert (engine.shutdown_timeout_seconds, engine.listen, engine.state_path) == (10, None, None)
    assert engine.delivery.batch_size == 10 and engine.delivery.timeout_seconds == 15
    assert engine.delivery.concurrency_per_endpoint == 4 and engine.delivery.standard_webhooks is True
    assert engine.delivery.retry_schedule == DEFAULT_RETRY_SCHEDULE == (5, 300, 1800, 7200, 18000, 36000,
                                                                         50400, 72000, 86400)
    assert (engine.log.format, engine.log.level) == ("text", "INFO")


def test_refresh_interval_allows_fractions() -> None:
    inst = load(instance(configuration={"event.poller.refresh_interval": "0.5"})).config.instances[0]
    assert inst.refresh_interval_seconds == 30


def test_an_interval_under_a_second_loads_with_a_warning() -> None:
    """Allowed (a test or demo polls fast), but said: it is most often seconds written as minutes."""
    result = load(instance(configuration={"event.poller.refresh_interval": "0.01"}))
    assert result.config.instances[0].refresh_interval_seconds == pytest.approx(0.6)
    assert result.warnings == (f'config.json: {PC[:13]}."event.poller.refresh_interval": is 0.6 seconds (the value '
                               "is in minutes): the provider is asked more than once a second for each resource",)
    assert load(instance(configuration={"event.poller.refresh_interval": 1 / 60})).warnings == ()
    disabled = {"event.poller.refresh_interval": "0.01", "event.notification.enabled": False}
    assert load(instance(configuration=disabled)).warnings == ()  # not polled: nothing to warn of


@pytest.mark.parametrize(("overrides", "enabled", "vendor"), [
    ({"event.notification.enabled": "false"}, False, "polling"),
    ({"event.notification.enabled": DROP}, False, "polling"),
    ({"event.vendor.type": "webhook"}, True, "webhook"),
    ({"event.vendor.type": "Webhooks"}, True, "webhooks"),
])
def test_disabled_and_webhook_instances_load_but_are_not_polled(overrides: dict, enabled: bool,
                                                                vendor: str) -> None:
    inst = load(instance(configuration=overrides)).config.instances[0]
    assert (inst.polled, inst.enabled, inst.vendor_type) == (False, enabled, vendor)
    assert len(inst.resources) == 1


def test_a_disabled_instance_needs_no_callback_or_resources() -> None:
    body = instance(configuration={"event.notification.enabled": False, "event.notification.callback.url": DROP,
                                   "event.poller.configuration": DROP})
    inst = load(body).config.instances[0]
    assert not inst.polled and inst.resources == () and inst.callback_url is None


@pytest.mark.parametrize("key", ["updatedDateTimezone", "updatedDateTimeZone", "UpdatedDateTimezone",
                                 "UPDATEDDATETIMEZONE"])
@pytest.mark.parametrize("inside", [True, False])
def test_time_zone_keys_any_spelling_at_either_level(key: str, inside: bool) -> None:
    body = resource(datesConfiguration={"updatedDateField": "u", "updatedDateFormat": "yyyy-MM-dd HH:mm:ss",
                                        "createdDateField": "c", "createdDateFormat": "yyyy-MM-dd"})
    (body["datesConfiguration"] if inside else body)[key] = "PST"
    result = load(instance({"contacts": body}))
    dates = result.config.instances[0].resources[0].dates
    assert dates.updated_format is not None and dates.updated_format.zone_id == "PST"
    assert dates.created_format is not None and dates.created_format.zone_id == "PST"  # defaults to updated
    assert result.warnings == ()
    assert dates.updated_format.parse("2024-01-01 00:00:00") == datetime(2024, 1, 1, 8, tzinfo=UTC)


def test_the_zone_inside_dates_configuration_wins() -> None:
    body = resource(updatedDateTimezone="MST")
    body["datesConfiguration"]["updatedDateTimezone"] = "GMT"
    result = load(instance({"contacts": body}))
    assert result.config.instances[0].resources[0].dates.updated_format.zone_id == "GMT"  # type: ignore[union-attr]
    assert result.warnings == (f"config.json: {PC}.contacts.updatedDateTimezone: differs from "
                               "datesConfiguration.updatedDateTimezone, which is used",)


def test_created_check_tolerance_at_either_level() -> None:
    outer = resource(createdCheckTolerance="5")
    inner = resource()
    inner["datesConfiguration"]["createdCheckTolerance"] = 7
    for body, expected in ((outer, 5), (inner, 7)):
        assert load(instance({"c": body})).config.instances[0].resources[0].created_check_tolerance_seconds == expected


@pytest.mark.parametrize("key", ["filterByUpdatedDate", "filterByUpdateDate"])
def test_filter_by_updated_date_both_spellings(key: str) -> None:
    res = load(instance({"c": resource(**{key: "false"})})).config.instances[0].resources[0]
    assert res.filter_by_updated_date is False


def test_created_format_defaults_to_the_updated_one() -> None:
    body = resource(datesConfiguration={"updatedDateField": "u", "updatedDateFormat": "milliseconds",
                                        "createdDateField": "c"})
    dates = load(instance({"c": body})).config.instances[0].resources[0].dates
    assert dates.created_format is dates.updated_format
    assert dates.created_format is not None and dates.created_format.pattern == "milliseconds"


def test_relative_urls_keep_the_base_path() -> None:
    for base, url in (("https://api.example.com/v1", "/contacts"), ("https://api.example.com/v1/", "contacts"),
                      ("https://api.example.com/v1//", "//contacts")):
        body = instance({"c": resource(url=url)}, api={"baseUrl": base})
        res = load(body).config.instances[0].resources[0]
        assert res.url.render(SINCE, SINCE) == "https://api.example.com/v1/contacts"


def test_absolute_urls_need_no_base() -> None:
    body = instance({"c": resource(url="https://other.example.com/x?since=${epoch:s}")}, api=DROP)
    res = load(body).config.instances[0].resources[0]
    assert res.url.render(SINCE, SINCE) == "https://other.example.com/x?since=1714564800"


def test_our_own_keys() -> None:
    body = instance({
        "contacts": resource(recordsPath="data.items", pageSize=100, initialCursor="2024-01-01T00:00:00Z",
                             pagination={"type": "page", "maxPages": "5", "pageSizeParam": "per_page"}),
        "tokens": resource(pagination={"type": "nextPageToken"}, initialCursor=1700000000000),
        "cursors": resource(pagination={"type": "cursor", "path": "meta.next_cursor"}),
        "offsets": resource(pagination={"type": "offset", "param": "skip"}),
        "links": resource(pagination={"type": "LINK"}, initialCursor="2024-01-01T01:00:00+01:00"),
    }, api={"baseUrl": BASE_URL, "headers": {"Authorization": "Bearer abc", "X-Version": 2},
            "timeoutSeconds": "12.5", "verifyTls": "false"}, id="crm-1", tags=["a", "b"])
    result = load(body)
    inst = result.config.instances[0]
    assert (inst.id, inst.name, inst.tags) == ("crm-1", "demo", ("a", "b"))
    assert inst.api.headers == (("Authorization", "Bearer abc"), ("X-Version", "2"))
    assert (inst.api.timeout_seconds, inst.api.verify_tls) == (12.5, False)
    contacts, tokens, cursors, offsets, links = inst.resources
    assert contacts.records_path == ("data", "items") and contacts.page_size == 100
    assert contacts.initial_cursor == datetime(2024, 1, 1, tzinfo=UTC)
    assert (contacts.pagination.type, contacts.pagination.param, contacts.pagination.start) == ("page", "page", 1)
    assert (contacts.pagination.max_pages, contacts.pagination.page_size_param) == (5, "per_page")
    assert (tokens.pagination.header, tokens.pagination.param) == ("elements-next-page-token", "nextPage")
    assert tokens.initial_cursor == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert (cursors.pagination.path, cursors.pagination.param) == (("meta", "next_cursor"), "cursor")
    assert (offsets.pagination.param, offsets.pagination.start) == ("skip", 0)
    assert links.pagination.type == "link" and links.initial_cursor == datetime(2024, 1, 1, tzinfo=UTC)
    assert result.warnings == ("config.json: api.verifyTls: is false: TLS certificates are not checked",)


def test_engine_keys() -> None:
    engine = {"statePath": "/var/lib/poller/poller.db", "lookbackSeconds": "0", "serverTimeZone": "PST",
              "maxConcurrentPolls": 4, "shutdownTimeoutSeconds": 2.5, "listen": "127.0.0.1:9100",
              "maxResponseBytes": 1000, "delivery": {"batchSize": "5", "timeoutSeconds": 3, "retrySchedule": [1, "2"],
                                                     "concurrencyPerEndpoint": 1, "standardWebhooks": "false"},
              "log": {"format": "JSON", "level": "debug"}}
    body = engine_file(instance({"c": resource(url="/c?d=${date:HH:mm}")}), engine=engine)
    config = load(body).config
    e = config.engine
    assert (e.state_path, e.lookback_seconds, e.server_time_zone, e.max_concurrent_polls) == \
        ("/var/lib/poller/poller.db", 0, "PST", 4)
    assert (e.shutdown_timeout_seconds, e.listen, e.max_response_bytes) == (2.5, ("127.0.0.1", 9100), 1000)
    assert (e.delivery.batch_size, e.delivery.timeout_seconds, e.delivery.retry_schedule) == (5, 3, (1, 2))
    assert (e.delivery.concurrency_per_endpoint, e.delivery.standard_webhooks) == (1, False)
    assert (e.log.format, e.log.level) == ("json", "DEBUG")
    res = config.instances[0].resources[0]
    assert res.url.render(SINCE, SINCE).endswith("?d=05%3A00")  # ${date:...} in serverTimeZone
    assert load(engine_file(engine={"listen": "[::1]:9100"})).config.engine.listen == ("::1", 9100)


# ------------------------------------------------------------------ environment and secrets

def test_env_references_resolve_from_the_mapping_passed_in() -> None:
    body = instance({"c": resource(url="/c?key=${env:API_KEY}&since=${epoch:s}", pageSize="${env:PAGE:-20}")},
                    api={"baseUrl": "${env:BASE}", "headers": {"Authorization": "Bearer ${env:TOKEN}"}},
                    configuration={"event.notification.signature.key": "${env:SIG}"})
    environ = {"API_KEY": "k}${gmtDate:x}", "BASE": "https://api.example.com/v2", "TOKEN": "t0k", "SIG": "s3"}
    result = load(body, environ)
    inst = result.config.instances[0]
    res = inst.resources[0]
    assert res.page_size == 20
    assert res.url.render(SINCE, SINCE) == "https://api.example.com/v2/c?key=k}${gmtDate:x}&since=1714564800"
    assert res.url.render(SINCE, SINCE, masked=True) == "***/c?key=***&since=1714564800"
    assert inst.api.headers == (("Authorization", "Bearer t0k"),)
    assert inst.signature_key == "s3"
    assert result.warnings == (f"config.json: {PC}.c.pageSize: environment variable PAGE is not set; using "
                               "the default written in the file",)
    text = repr(result)
    for secret in ("t0k", "s3", "k}", "api.example.com/v2"):
        assert secret not in text, secret


def test_secrets_are_masked_in_reprs_even_without_env() -> None:
    body = instance(api={"baseUrl": BASE_URL, "headers": {"X-Api-Key": "hunter2"}},
                    configuration={"event.notification.signature.key": "whsec_c2VjcmV0"})
    result = load(body)
    assert "hunter2" not in repr(result) and "whsec_" not in repr(result)
    assert result.config.instances[0].signature_key == "whsec_c2VjcmV0"
    assert isinstance(result.config.instances[0].signature_key, SecretStr)
    assert repr(SecretStr("x")) == "'***'" and str(SecretStr("x")) == "x" and f"{SecretStr('x')}" == "x"


def test_env_default_syntax() -> None:
    body = instance(configuration={"event.notification.callback.url": "${env:CB:-http://127.0.0.1:8000/e}"})
    assert load(body).config.instances[0].callback_url == "http://127.0.0.1:8000/e"
    assert load(body, {"CB": "https://x.example/e"}).config.instances[0].callback_url == "https://x.example/e"
    assert load(body, {"CB": ""}).config.instances[0].callback_url == "http://127.0.0.1:8000/e"  # empty = unset


def test_empty_env_defaults_drop_headers_and_unsign() -> None:
    body = instance(api={"baseUrl": BASE_URL, "headers": {"Authorization": "${env:AUTH:-}", "Accept": "x"}},
                    configuration={"event.notification.signature.key": "${env:SIG:-}"})
    result = load(body)
    inst = result.config.instances[0]
    assert inst.api.headers == (("Accept", "x"),) and inst.signature_key is None
    assert f'config.json: {PC[:13]}."event.notification.signature.key": is empty: notifications will not be ' \
           "signed" in result.warnings


def test_a_missing_env_variable_names_it_and_where_it_was_used() -> None:
    body = engine_file(instance(api={"baseUrl": BASE_URL, "headers": {"Authorization": "Bearer ${env:TOKEN}"}}))
    assert errors(body) == ["config.json: instances[0].api.headers.Authorization: environment variable TOKEN "
                            "is not set"]


def test_env_in_ignored_element_keys_is_not_resolved() -> None:
    body = instance(configuration={"oauth.api.secret": "${env:NOT_SET}"})
    assert load(body).warnings == ()


# ------------------------------------------------------------------ keys and messages

def test_unknown_keys_warn_with_a_did_you_mean() -> None:
    body = instance({"contacts": resource(pageSise=10, xPath="id", hooks=[])},
                    configuration={"event.poller.urls": "contacts", "event.objects": "Contact",
                                   "event.notification.enable": "true", "oauth.api.key": "k", "subdomain": "x",
                                   "api.version": "2"},
                    providerData={"code": "x"}, apii={})
    assert set(load(body).warnings) == {
        "config.json: apii: unknown key (did you mean api?); ignored",
        'config.json: configuration."event.poller.urls": a Cloud Elements key that poller does not '
        "implement; ignored",
        'config.json: configuration."event.objects": a Cloud Elements key that poller does not implement; ignored',
        'config.json: configuration."event.notification.enable": unknown key (did you mean '
        "event.notification.enabled?); ignored",
        f"config.json: {PC}.contacts.xPath: a Cloud Elements key that poller does not implement; ignored",
        f"config.json: {PC}.contacts.hooks: a Cloud Elements key that poller does not implement; ignored",
        f"config.json: {PC}.contacts.pageSise: unknown key (did you mean pageSize?); ignored",
    }


def test_pagination_keys_written_beside_the_resource_point_into_pagination() -> None:
    body = instance({"contacts": resource(pageSizeParam="limit", maxPages=5, morePath="next")})
    assert set(load(body).warnings) == {
        f"config.json: {PC}.contacts.{key}: unknown key (did you mean pagination.{key}?); ignored"
        for key in ("pageSizeParam", "maxPages", "morePath")}


def test_next_url_and_more_path_pagination_load() -> None:
    body = instance({"a": resource(pagination={"type": "nextUrl", "path": "links.next"}),
                     "b": resource(pagination={"type": "page", "morePath": "next"}),
                     "c": resource(pagination={"type": "nextUrl"})})
    assert errors(body) == [f"config.json: {PC}.c.pagination: path is missing"]
    body["configuration"]["event.poller.configuration"].pop("c")
    [a, b] = load(body).config.instances[0].resources
    assert (a.pagination.type, a.pagination.path) == ("nextUrl", ("links", "next"))
    assert (b.pagination.type, b.pagination.more_path) == ("page", ("next",))


def test_a_misspelt_required_key_is_an_error() -> None:
    body = instance({"contacts": resource(idField=DROP, idFeild="id")})
    assert errors(body) == [f"config.json: {PC}.contacts: idField is missing (did you mean idFeild?)"]


def test_a_date_format_without_its_field_is_an_error() -> None:
    body = resource(datesConfiguration={"updatedDateFeild": "u", "updatedDateFormat": "yyyy"})
    assert errors(instance({"c": body})) == [f"config.json: {PC}.c.datesConfiguration: updatedDateField is "
                                             "missing (did you mean updatedDateFeild?)"]


def test_instance_id_is_id_then_name_then_element_key() -> None:
    assert load(instance(id="i-1", name="N")).config.instances[0].id == "i-1"
    assert load(instance(id=42)).config.instances[0].id == "42"
    assert load(instance(name="N")).config.instances[0].id == "N"
    assert load(instance(name=DROP)).config.instances[0].id == "demo"  # the element key


def test_duplicates_are_errors() -> None:
    body = instance({"contacts": resource(), "/Contacts ": resource()})
    assert errors(body) == [f'config.json: {PC}."/Contacts ": duplicate resource name: \'/Contacts \' and '
                            "'contacts' are the same resource (names are compared ignoring case, white space "
                            "and slashes)"]
    problems = errors([instance(), instance()])
    assert problems == ["config.json: [1]: instance id 'demo' is already used by config.json: [0]"]
    text = '{"name": "a", "configuration": {}, "name": "b"}'
    with pytest.raises(ConfigLoadError) as info:
        load_config_text(text, "config.json", {})
    assert info.value.problems == ["config.json: key 'name' is given more than once"]


def test_every_problem_is_gathered() -> None:
    body = engine_file(
        instance({"a": resource(idField=DROP), "b": resource(url="/b?x=${nope}")}, id="one",
                 configuration={"event.poller.refresh_interval": "abc"}),
        "not an instance",
        instance(id="three", configuration={"event.notification.callback.url": "ftp://x"}),
        engine={"serverTimeZone": "Mars/Olympus"},
    )
    problems = errors(body)
    assert [p.split(": ")[1] for p in problems] == [
        "engine.serverTimeZone",
        'instances[0].configuration."event.poller.refresh_interval"',
        'instances[0].configuration."event.poller.configuration".a',
        'instances[0].configuration."event.poller.configuration".b.url',
        "instances[1]",
        'instances[2].configuration."event.notification.callback.url"',
    ]


def test_format_path() -> None:
    assert config_values.format_path(("instances", 0, "configuration", "event.poller.configuration", "contacts",
                                      "datesConfiguration", "updatedDateFormat")) == \
        'instances[0].configuration."event.poller.configuration".contacts.datesConfiguration.updatedDateFormat'
    assert config_values.format_path((0, "a b", "x-y", "")) == '[0]."a b".x-y.""'


# ------------------------------------------------------------------ the example, the schema, purity

def test_config_example_loads_on_a_machine_without_environment_variables() -> None:
    result = load_config(ROOT / "config.example.json", {})
    config = result.config
    assert [i.id for i in config.instances] == ["icontact", "github-cpython"]
    assert all(i.polled for i in config.instances)
    icontact, github = config.instances
    contacts = icontact.resources[0]
    assert contacts.records_path == ("contacts",) and contacts.url.placeholders == ()
    assert contacts.dates.updated_format is not None and contacts.dates.updated_format.pattern == "yyyy-MM-dd HH:mm:ss"
    issues = github.resources[0]
    assert issues.pagination.type == "link" and "XXX" in issues.url.display
    assert any(p.format is not None and p.display.startswith("${gmtDate:") for p in issues.url.placeholders)
    assert all("environment variable" in w or "is empty" in w for w in result.warnings)


def test_config_example_uses_the_environment_when_set() -> None:
    environ = {"ICONTACT_ACCOUNT_ID": "123", "ICONTACT_FOLDER_ID": "456", "ICONTACT_APP_ID": "app",
               "ICONTACT_USERNAME": "me", "ICONTACT_PASSWORD": "pw", "POLLER_CALLBACK_URL": "https://me.example/e",
               "POLLER_SIGNATURE_KEY": "sig", "GITHUB_AUTHORIZATION": "Bearer ghp_x"}
    result = load_config(ROOT / "config.example.json", environ)
    assert result.warnings == ()
    icontact, github = result.config.instances
    assert icontact.resources[0].url.render(SINCE, SINCE).startswith("https://app.icontact.com/icp/a/123/c/456/")
    assert dict(github.api.headers)["Authorization"] == "Bearer ghp_x"
    assert "ghp_x" not in repr(result) and "pw" not in repr(icontact.api)


def test_config_example_validates_against_the_schema() -> None:
    example = json.loads((ROOT / "config.example.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.Draft202012Validator(SCHEMA).validate(example)


def test_the_schema_rejects_what_the_loader_rejects_structurally() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert list(validator.iter_errors(instance(configuration={"event.notification.callback.url": DROP})))
    assert list(validator.iter_errors(instance({"c": resource(idField=DROP)})))
    assert list(validator.iter_errors(instance(configuration={"event.poller.refresh_interval": 0})))
    assert list(validator.iter_errors(instance({"c": resource(pagination={"type": "cursor"})})))
    # a webhook instance needs no event.poller.configuration, but an enabled one needs its callback URL
    assert not list(validator.iter_errors(instance(configuration={"event.poller.configuration": DROP})))
    assert list(validator.iter_errors(instance(configuration={"event.vendor.type": "webhook",
                                                              "event.notification.callback.url": DROP})))


def test_the_schema_is_in_step_with_the_loader() -> None:
    defs = SCHEMA["$defs"]
    engine = defs["engine"]["properties"]
    assert set(engine) == set(KEY_LISTS["engine"])
    assert set(engine["delivery"]["properties"]) == set(KEY_LISTS["delivery"])
    assert set(engine["log"]["properties"]) == set(KEY_LISTS["log"])
    assert set(engine["retention"]["properties"]) == set(KEY_LISTS["retention"])
    assert set(defs["instance"]["properties"]) == set(KEY_LISTS["instance"])
    assert set(defs["configuration"]["properties"]) == set(KEY_LISTS["configuration"])
    assert set(defs["api"]["properties"]) == set(KEY_LISTS["api"])
    assert set(defs["resource"]["properties"]) == set(KEY_LISTS["resource"])
    assert set(defs["resource"]["properties"]["datesConfiguration"]["properties"]) == set(KEY_LISTS["dates"])
    assert set(defs["resource"]["properties"]["pagination"]["properties"]) == set(KEY_LISTS["pagination"])
    assert set(SCHEMA["anyOf"][0]["properties"]) == set(KEY_LISTS["top"])
    assert set(engine["webhooks"]["properties"]) == set(KEY_LISTS["webhooks"])
    assert set(engine["api"]["properties"]) == set(KEY_LISTS["managementApi"])
    conf = defs["configuration"]["properties"]
    assert set(conf["event.webhook.events"]["properties"]) == set(KEY_LISTS["webhookEvents"])
    assert set(conf["event.webhook.verify"]["properties"]) == set(KEY_LISTS["webhookVerify"])


PURE_MODULES = ["config/__init__", "config/load", "config/types", "config/values", "config/resource", "config/urls",
                "config/instance", "config/templates", "config/placeholders", "jsonpath", "config/schema",
                "config/webhook"]
ALLOWED_IMPORTS = {"__future__", "base64", "collections", "dataclasses", "datetime", "difflib", "functools", "json", "math",
                   "orjson", "pathlib", "re", "typing", "urllib", "poller",
                   "yarl"}  # (pure: the URL parser delivery uses, to refuse what it would refuse)
ALLOWED_POLLER = {"poller.errors", "poller.javadate", "poller.javadate.zone", "poller.jsonpath",
                  "poller.config.templates", "poller.config.placeholders", "poller.config", "poller.config.load",
                  "poller.config.types", "poller.config.values", "poller.config.resource", "poller.config.instance",
                  "poller.config.webhook", "poller.config.urls", "poller.redact",
                  "poller.gcpause"}  # (pure: pauses the cyclic collector around the load)


@pytest.mark.parametrize("module", PURE_MODULES)
def test_config_modules_import_nothing_that_does_io(module: str) -> None:
    tree = ast.parse((ROOT / "poller" / f"{module}.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        for name in names:
            assert name.split(".")[0] in ALLOWED_IMPORTS, (module, name)
            assert not name.startswith("poller.") or name in ALLOWED_POLLER, (module, name)
            if name in ("poller", "poller.config") and isinstance(node, ast.ImportFrom):
                assert {a.name for a in node.names} <= {"javadate", "jsonpath", "templates"}, module


@pytest.mark.parametrize("module", ["config/__init__", "config/load", "config/types", "config/values",
                                    "config/resource", "config/instance", "config/templates",
                                    "config/placeholders", "jsonpath"])
def test_config_modules_read_no_clock_and_no_os_environ(module: str) -> None:
    source = (ROOT / "poller" / f"{module}.py").read_text(encoding="utf-8")
    for forbidden in ("os.environ", "getenv", ".now(", "utcnow", "time.time", "import os"):
        assert forbidden not in source, (module, forbidden)
    assert len(source.splitlines()) <= 400


def test_load_config_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("\ufeff" + json.dumps(instance()), encoding="utf-8")
    assert load_config(path, {}).config.source == str(path)


def test_repeated_blocks_are_checked_once_and_their_problems_still_named_for_each_resource() -> None:
    good = {f"r{i}": resource(url=f"/r{i}") for i in range(3)}
    config = load(instance(good)).config
    dates = [r.dates for r in config.instances[0].resources]
    assert dates[0] is dates[1] is dates[2]  # one object for the three identical blocks
    bad = resource(datesConfiguration={"updatedDateField": "u", "updatedDateFormat": "yyyy-MM-dd'T'HH:mm:ssQ"})
    found = errors(instance({"a": bad, "b": bad}))
    on_a = [e for e in found if ".a." in e]
    on_b = [e for e in found if ".b." in e]
    assert on_a and [e.replace(".a.", ".b.") for e in on_a] == on_b, found  # each one, with its own path
    env = resource(datesConfiguration={"updatedDateField": "u", "updatedDateFormat": "${env:FMT:-yyyy-MM-dd}"})
    warnings = load(instance({"a": env, "b": env})).warnings
    assert any("FMT" in w and "1 other place" in w for w in warnings), warnings


def test_a_block_with_a_key_twice_is_not_taken_for_the_same_block_seen_before(monkeypatch: pytest.MonkeyPatch) -> None:
    # {"f": "u", "f": "u"} encodes as {"f": "u"}: the memo must not hand b the result a's clean block got
    monkeypatch.setattr(config_values, "_duplicates_read", False)  # as in a process that has read no such file
    clean = '{"updatedDateField": "u", "updatedDateFormat": "yyyy-MM-dd"}'
    twice = '{"updatedDateField": "u", "updatedDateField": "u", "updatedDateFormat": "yyyy-MM-dd"}'
    text = json.dumps(instance({"a": resource(datesConfiguration="A"), "b": resource(datesConfiguration="B")}))
    text = text.replace('"A"', clean).replace('"B"', twice)
    with pytest.raises(ConfigLoadError) as info:
        load_config_text(text, "config.json", {})
    assert info.value.problems == [f"config.json: {PC}.b.datesConfiguration: key 'updatedDateField' is given "
                                   "more than once"]


def test_loading_makes_no_reference_cycles() -> None:
    """The load runs with the cyclic collector paused: a cycle made per resource would stay
    until the load ends (a recursive closure per resource once cost 50 MB at 100,000)."""
    import gc

    body = instance({f"r{i}": resource(url=f"/r{i}", pageSize=10, pagination={"type": "page"}) for i in range(50)})
    gc.collect()
    gc.disable()
    try:
        load(body)
        assert gc.collect() == 0
    finally:
        gc.enable()



def test_engine_api_needs_both_secrets_and_long_ones() -> None:
    def engine(api: object, **environ: str) -> str:
        text = json.dumps({"engine": {"listen": "127.0.0.1:0", "api": api}, "instances": []})
        try:
            loaded = load_config_text(text, "c.json", environ)
        except ConfigLoadError as exc:
            return "; ".join(exc.problems)
        assert loaded.config.engine.api is not None
        return str(loaded.config.engine.api.user_secret)

    good = "u" * 16
    assert engine({"userSecret": "${env:U}", "organizationSecret": "o" * 20}, U=good) == good
    assert engine({"userSecret": good}) == 'c.json: engine.api: organizationSecret is missing'
    assert engine({"userSecret": "short", "organizationSecret": "o" * 20}) == (
        "c.json: engine.api.userSecret: is 5 characters long: a secret of fewer than 16 is easy to guess "
        "(use ${env:...})")
