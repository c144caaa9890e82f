"""Bad input: each malformed configuration through the real CLI, `poller check -c FILE`.

Each case checks exit status 2, the exact JSON path (and the message) on stderr, and that
nothing but the configuration file is left in its directory.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from poller.config.schema import SCHEMA
from tests.configs import BASE_URL, DROP, engine_file, instance, resource
from tests.conftest import ROOT

PC = 'instances[0].configuration."event.poller.configuration"'
CONF = "instances[0].configuration"
TEN_MB = 10 * 1024 * 1024


@dataclass
class Case:
    name: str
    body: object  # dict/list (dumped as JSON), str (written as is), bytes, or a callable returning bytes
    path: str | None  # the JSON path; None for problems of the whole file
    message: str  # the start of the message after the path
    environ: dict[str, str] = field(default_factory=dict)

    def content(self) -> bytes:
        if callable(self.body):
            return self.body()
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body, indent=2).encode("utf-8")

    @property
    def line_start(self) -> str:
        return f"config.json: {self.path}: {self.message}" if self.path else f"config.json: {self.message}"


def one(res: dict | None = None, **configuration: object) -> dict:
    """A file with one instance and one resource ("contacts")."""
    return engine_file(instance({"contacts": res or resource()}, configuration=configuration))


def garbage_bytes() -> bytes:
    return random.Random(3).randbytes(TEN_MB)


def garbage_text() -> bytes:
    rng = random.Random(4)
    alphabet = "abcdefghijklmnopqrstuvwxyz {}[]:,\"0123456789\n"
    return "".join(rng.choice(alphabet) for _ in range(TEN_MB // 64)).encode("ascii") * 64


CASES = [
    Case("missing callback URL", one(**{"event.notification.callback.url": DROP}), CONF,
         "event.notification.callback.url is missing"),
    Case("ftp callback URL", one(**{"event.notification.callback.url": "ftp://hooks.example.com/in"}),
         f'{CONF}."event.notification.callback.url"',
         "must be an http:// or https:// URL, got 'ftp://hooks.example.com/in'"),
    Case("callback URL without host", one(**{"event.notification.callback.url": "https://"}),
         f'{CONF}."event.notification.callback.url"', "the URL has no host: 'https://'"),
    # what delivery's parser (aiohttp/yarl) refuses, though urlsplit takes it: each was a dead letter at once
    *[Case(f"callback URL with host {host}", one(**{"event.notification.callback.url": f"http://{host}:8080/in"}),
           f'{CONF}."event.notification.callback.url"',
           f"the host '{host}' is not an IPv4 address in dotted-quad form (four numbers from 0 to 255 without "
           "leading zeros, such as 127.0.0.1), which is all delivery accepts")
      for host in ("127.1", "2130706433", "0177.0.0.1", "127.0.0.01", "256.1.1.1")],
    Case("callback URL whose host from the environment is not dotted-quad",
         one(**{"event.notification.callback.url": "http://${env:HOOK_HOST}:8080/in"}),
         f'{CONF}."event.notification.callback.url"', "the host '***' (from the environment) is not an IPv4 address",
         environ={"HOOK_HOST": "10.1"}),
    Case("callback URL with junk after its IPv6 host", one(**{"event.notification.callback.url": "http://[::1]x:80/in"}),
         f'{CONF}."event.notification.callback.url"', "cannot be sent to: Invalid IPv6 URL"),
    Case("callback URL with a backslash in its authority",
         one(**{"event.notification.callback.url": "http://u:S3CRET@127.0.0.1:1\\@evil/in"}),
         f'{CONF}."event.notification.callback.url"', "cannot be sent to: Invalid URL: backslash"),
    Case("callback URL on port 0", one(**{"event.notification.callback.url": "http://127.0.0.1:0/in"}),
         f'{CONF}."event.notification.callback.url"',
         "the URL's port is 0, which nothing can be reached at: 'http://127.0.0.1:0/in'"),
    Case("callback URL that does not parse, with a password", one(**{
        "event.notification.callback.url": "http://u:S3CRET@[::1:80/in"}), f'{CONF}."event.notification.callback.url"',
         "not a valid URL (Invalid IPv6 URL): 'http://u:***@[::1:80/in'"),
    Case("whsec_ key with nothing after it", one(**{"event.notification.signature.key": "whsec_"}),
         f'{CONF}."event.notification.signature.key"',
         "is whsec_ with nothing after it: webhook-signature would be made with an empty key"),
    Case("whsec_ key that is not base64", one(**{"event.notification.signature.key": "whsec_not*base64"}),
         f'{CONF}."event.notification.signature.key"', "starts with whsec_ but the rest is not base64"),
    Case("standardwebhooks verify secret whsec_ alone", engine_file({
        "id": "shop", "element": {"key": "shopify"}, "configuration": {
            "event.notification.enabled": True, "event.notification.callback.url": "http://127.0.0.1:9/cb",
            "event.webhook.verify": {"type": "standardwebhooks", "secret": "whsec_"}}}),
         'instances[0].configuration."event.webhook.verify".secret',
         "is whsec_ with nothing after it: requests signed with an empty key"),
    Case("a query string in api.baseUrl", engine_file({**instance({"contacts": resource()}),
                                                        "api": {"baseUrl": "https://api.example.com/v1?key=K"}}),
         "instances[0].api.baseUrl", "has a query string or fragment: a relative url is appended to api.baseUrl"),
    Case("interval abc", one(**{"event.poller.refresh_interval": "abc"}), f'{CONF}."event.poller.refresh_interval"',
         "expected a number of minutes, got 'abc'"),
    Case("interval 0", one(**{"event.poller.refresh_interval": 0}), f'{CONF}."event.poller.refresh_interval"',
         "must be greater than 0, got 0"),
    Case("interval -1", one(**{"event.poller.refresh_interval": "-1"}), f'{CONF}."event.poller.refresh_interval"',
         "must be greater than 0, got '-1'"),
    Case("interval of a thousand years and more", one(**{"event.poller.refresh_interval": 1e12}),
         f'{CONF}."event.poller.refresh_interval"', "must be at most 1000000000 minutes"),
    Case("enabled yes", one(**{"event.notification.enabled": "yes"}), f'{CONF}."event.notification.enabled"',
         "expected true or false, got 'yes'"),
    Case("vendor type push", one(**{"event.vendor.type": "push"}), f'{CONF}."event.vendor.type"',
         "expected polling, webhook or webhooks, got 'push'"),
    Case("unknown pattern letter", one(resource(datesConfiguration={
        "updatedDateField": "u", "updatedDateFormat": "MMM bb, yyyy"})),
        f"{PC}.contacts.datesConfiguration.updatedDateFormat", "unknown pattern letter 'b' at position 4"),
    Case("unterminated quote in a date format", one(resource(datesConfiguration={
        "updatedDateField": "u", "updatedDateFormat": "yyyy", "createdDateField": "c",
        "createdDateFormat": "yyyy-MM-dd'T'HH:mm:ssXXX'"})),
        f"{PC}.contacts.datesConfiguration.createdDateFormat", "unterminated quote at position 24"),
    Case("milliseconds with a stray quote", one(resource(datesConfiguration={
        "updatedDateField": "u", "updatedDateFormat": "milliseconds'"})),
        f"{PC}.contacts.datesConfiguration.updatedDateFormat",
        "unknown pattern letter 'i' at position 1 (did you mean 'milliseconds'?)"),
    Case("unknown zone", one(resource(datesConfiguration={
        "updatedDateField": "u", "updatedDateFormat": "yyyy", "updatedDateTimezone": "Mars/Olympus"})),
        f"{PC}.contacts.datesConfiguration.updatedDateTimezone", "unknown time zone 'Mars/Olympus'"),
    Case("unknown zone in a placeholder", one(resource(url="/c?since=${dateTimeZone:Nowhere:yyyy-MM-dd}")),
         f"{PC}.contacts.url", "${dateTimeZone:Nowhere:yyyy-MM-dd} at position 9: unknown time zone 'Nowhere'"),
    Case("unknown placeholder", one(resource(url="/c?since=${lastPollDate:yyyy-MM-dd}")), f"{PC}.contacts.url",
         "unknown placeholder ${lastPollDate:yyyy-MM-dd} at position 9; known placeholders: gmtDate"),
    Case("bad pattern in a placeholder", one(resource(url="/c?since=${gmtDate:yyyy-MM-bb}")), f"{PC}.contacts.url",
         "${gmtDate:yyyy-MM-bb} at position 9: invalid date pattern 'yyyy-MM-bb': unknown pattern letter 'b' at "
         "position 8"),
    Case("unterminated placeholder", one(resource(url="/c?since=${gmtDate:yyyy-MM-dd")), f"{PC}.contacts.url",
         "unterminated placeholder: '${' at position 9 has no closing '}'"),
    Case("stray closing brace", one(resource(url="/hubs/general/contacts}'")), f"{PC}.contacts.url",
         "unmatched '}' at position 22"),
    Case("pageSize placeholder without pageSize", one(resource(url="/c?n=${pageSize}")), f"{PC}.contacts.url",
         "uses ${pageSize} but the resource has no pageSize"),
    # (each passed `poller check`; a port past 65535 then crashed every poll with a traceback)
    *[Case(f"resource url {name}", one(resource(url=url)), f"{PC}.contacts.url", message) for name, url, message in (
        ("with port 99999", "http://127.0.0.1:99999/x?s=${gmtDate:yyyy}",
         "the URL's port is not a number from 1 to 65535: 'http://127.0.0.1:99999/x?s=${gmtDate:yyyy}'"),
        ("with port -1", "http://127.0.0.1:-1/x", "the URL's port is not a number from 1 to 65535"),
        ("with port 0", "http://127.0.0.1:0/x", "the URL's port is 0, which nothing can be reached at"),
        ("with a space in its host", "http://exa mple.com/x", "the URL contains white space: 'http://exa mple.com/x'"),
        ("with a bad IPv6 host", "http://[::1/x", "not a valid URL (Invalid IPv6 URL): 'http://[::1/x'"),
        ("with a backslash after its port", "http://127.0.0.1:18601\\x", "the URL's port is not a number"),
        ("with an empty host before its port", "http://:80/x", "the URL has no host: 'http://:80/x'"),
        ("with a tab", "/c?a=1\tb", "the URL contains the control character '\\t' at position 6: "),
        ("with CR LF", "/c\r\nX-Evil: 1", "the URL contains the control character '\\r' at position 2"),
    )],
    Case("relative url without baseUrl", engine_file(instance({"contacts": resource(url="/contacts")}, api=DROP)),
         f"{PC}.contacts.url", "is relative ('/contacts') and the instance has no api.baseUrl: set api.baseUrl"),
    Case("url with another scheme", one(resource(url="ftp://files.example.com/x")), f"{PC}.contacts.url",
         "must be an http:// or https:// URL, or a path relative to api.baseUrl"),
    Case("idField missing", one(resource(idField=DROP)), f"{PC}.contacts", "idField is missing"),
    Case("idField misspelt", one(resource(idField=DROP, idFeild="id")), f"{PC}.contacts",
         "idField is missing (did you mean idFeild?)"),
    Case("event.poller.configuration misspelt (not a webhook instance then)",
         one(**{"event.poller.configuration": DROP, "event.poller.configuraton": {"contacts": resource()}}), CONF,
         "event.poller.configuration is missing (did you mean event.poller.configuraton?)"),
    Case("idField bad JSON path", one(resource(idField="a..b")), f"{PC}.contacts.idField",
         "empty name at position 2 of the JSON path 'a..b'"),
    Case("poller configuration string not JSON", one(**{"event.poller.configuration": "{contacts: {}}"}),
         f'{CONF}."event.poller.configuration"',
         "is a string that is not valid JSON: Expecting property name enclosed in double quotes "
         "(at line 1 column 2 of the string)"),
    Case("error inside a JSON-string poller configuration",
         one(**{"event.poller.configuration": json.dumps({"contacts": resource(pageSize="ten")})}),
         f"{PC}.contacts.pageSize", "expected a whole number, got 'ten'"),
    Case("poller configuration not an object", one(**{"event.poller.configuration": ["contacts"]}),
         f'{CONF}."event.poller.configuration"', "expected an object keyed by resource name"),
    Case("duplicate resource names after normalisation",
         engine_file(instance({"contacts": resource(), " /Contacts/": resource()})), f'{PC}." /Contacts/"',
         "duplicate resource name: ' /Contacts/' and 'contacts' are the same resource"),
    Case("duplicate JSON key", '{"instances": [{"name": "a", "configuration": {}, "configuration": {}}]}',
         "instances[0]", "key 'configuration' is given more than once"),
    Case("duplicate instance ids", engine_file(instance(id="x"), instance(id="x")), "instances[1]",
         "instance id 'x' is already used by config.json: instances[0]"),
    Case("missing environment variable", engine_file(instance(api={"baseUrl": BASE_URL, "headers": {
        "Authorization": "Bearer ${env:POLLER_TEST_UNSET_TOKEN}"}})), "instances[0].api.headers.Authorization",
        "environment variable POLLER_TEST_UNSET_TOKEN is not set"),
    Case("bad environment variable name", one(**{"event.notification.callback.url": "${env:1X}"}),
         f'{CONF}."event.notification.callback.url"', "invalid environment variable name '1X'"),
    Case("instance not an object", engine_file(instance(), "contacts"), "instances[1]",
         "expected an object (an instance body with a \"configuration\"), got a string"),
    Case("instances not a list", {"instances": {"a": instance()}}, "instances",
         "expected a list of instance bodies, got an object"),
    Case("not a configuration at all", "42", None,
         "expected an instance body ({\"element\": ..., \"configuration\": ...}), a list of them"),
    Case("empty file", "", None, "the file is empty"),
    Case("white space only", " \n\t\n", None, "the file is empty"),
    Case("JSON syntax error", '{\n  "instances": [\n    {"name": "a",}\n  ]\n}\n', None,
         "line 3 column 18: not valid JSON: Expecting property name enclosed in double quotes"),
    Case("NaN", '{"name": "a", "configuration": {"event.poller.refresh_interval": NaN}}', None,
         "not valid JSON: NaN is not valid JSON"),
    Case("10 MB of binary garbage", garbage_bytes, None, "not UTF-8 text: invalid start byte at byte"),
    Case("10 MB of text garbage", garbage_text, None, "line 1 column 1: not valid JSON: Expecting value"),
    Case("deeply nested", "[" * 100_000, None, "not valid JSON: nested too deeply"),
    Case("pageSize zero", one(resource(pageSize=0)), f"{PC}.contacts.pageSize", "must be greater than 0, got 0"),
    Case("pollDelay negative", one(resource(pollDelay=-5)), f"{PC}.contacts.pollDelay",
         "must not be negative, got -5"),
    Case("unknown pagination type", one(resource(pagination={"type": "pages"})), f"{PC}.contacts.pagination.type",
         "unknown pagination type 'pages' (one of: none, link, nextPageToken, page, offset, cursor, nextUrl)"),
    Case("cursor pagination without path", one(resource(pagination={"type": "cursor"})), f"{PC}.contacts.pagination",
         "path is missing"),
    Case("initialCursor without offset", one(resource(initialCursor="2024-01-01T00:00:00")),
         f"{PC}.contacts.initialCursor", "'2024-01-01T00:00:00' has no offset: add 'Z' or '+00:00'"),
    Case("initialCursor out of range", one(resource(initialCursor=1e300)), f"{PC}.contacts.initialCursor",
         "epoch milliseconds out of range: 1e+300"),
    Case("duplicate header", '{"name": "a", "api": {"headers": {"X": "1", "X": "2"}}, "configuration": {}}',
         "api.headers.X", "this header is given more than once"),
    Case("the same header in two cases", engine_file(instance(api={"baseUrl": BASE_URL, "headers": {
        "Authorization": "Bearer OLD", "authorization": "Bearer NEW"}})), "instances[0].api.headers.authorization",
         "this header is given more than once (also as 'Authorization')"),  # (httpx sent both)
    # urlsplit quotes the netloc in its message: a password or an ${env:...} value must not show
    Case("resource url whose host from the environment does not parse",
         one(resource(url="https://svc:${env:PW}@api.example.com/x")), f"{PC}.contacts.url",
         "not a valid URL (netloc (...) contains invalid characters under NFKC normalization): '***'",
         environ={"PW": "hunter2\uff03TOPSECRET"}),
    Case("callback url with a password that does not parse",
         one(**{"event.notification.callback.url": "http://u:hunter2\uff03TOPSECRET@127.0.0.1/in"}),
         f'{CONF}."event.notification.callback.url"', "not a valid URL (netloc (...) contains invalid characters"),
    Case("bad server time zone", engine_file(engine={"serverTimeZone": "Moon"}), "engine.serverTimeZone",
         "unknown time zone 'Moon'"),
    Case("bad listen", engine_file(engine={"listen": "localhost"}), "engine.listen",
         "expected \"HOST:PORT\" such as \"127.0.0.1:9100\", got 'localhost'"),
    Case("retry wait beyond any date", engine_file(engine={"delivery": {"retrySchedule": [5, 1e300]}}),
         "engine.delivery.retrySchedule[1]", "must be at most 60000000000 seconds (about 1900 years), got 1e+300"),
    Case("retention beyond any date", engine_file(engine={"retention": {"deadDays": 1e300}}),
         "engine.retention.deadDays", "must be at most 694444 days (about 1900 years), got 1e+300"),
    Case("lookback of more than a year", engine_file(engine={"lookbackSeconds": 4e7}), "engine.lookbackSeconds",
         "must be at most 3.16224e+07 (a year: that much is read again on every poll), got 4e+07"),
    Case("pollDelay of more than a year", one(resource(pollDelay=1e300)), f"{PC}.contacts.pollDelay",
         "must be at most 60000000000 seconds (about 1900 years), got 1e+300"),
    Case("empty retry schedule", engine_file(engine={"delivery": {"retrySchedule": []}}),
         "engine.delivery.retrySchedule", "expected a non-empty list of waits in seconds"),
    Case("bad log level", engine_file(engine={"log": {"level": "LOUD"}}), "engine.log.level",
         "expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'"),
    Case("header with a line break", engine_file(instance(api={"baseUrl": BASE_URL, "headers": {"X": "a\nb"}})),
         "instances[0].api.headers.X", "a header value cannot contain a line break"),
    Case("non-ASCII header value", engine_file(instance(api={"baseUrl": BASE_URL, "headers": {"X": "Bearer café"}})),
         "instances[0].api.headers.X", "a header value must be ASCII: character 11 is U+00E9"),
    Case("control character in a header value",
         engine_file(instance(api={"baseUrl": BASE_URL, "headers": {"X": "a\x00b"}})),
         "instances[0].api.headers.X", "a header value cannot contain control characters: character 2 is U+0000"),
    Case("baseUrl with a placeholder", engine_file(instance(api={"baseUrl": BASE_URL + "/${epoch}"})),
         "instances[0].api.baseUrl", "cannot contain ${...} placeholders"),
]


def run_check(directory: Path, *args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", **(environ or {})}
    return subprocess.run([sys.executable, "-m", "poller", *args], cwd=directory, env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_malformed_configuration_is_explained(case: Case, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_bytes(case.content())
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run_check(tmp_path, "check", "-c", "config.json", environ=case.environ)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.splitlines()
    assert any(line.startswith(case.line_start) for line in lines), (case.line_start, lines[:20])
    assert lines[-1].startswith("config.json: invalid: ")
    assert "TOPSECRET" not in result.stderr  # (the cases' passwords and environment values)
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before == ["config.json"]
    assert len(result.stderr) < 20_000  # garbage is never echoed back


def test_there_are_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


def test_every_error_is_printed(tmp_path: Path) -> None:
    body = engine_file(instance({"a": resource(idField=DROP), "b": resource(pageSize=-1)},
                                configuration={"event.poller.refresh_interval": "abc"}))
    (tmp_path / "config.json").write_text(json.dumps(body), encoding="utf-8")
    result = run_check(tmp_path, "check", "-c", "config.json")
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f'config.json: {CONF}."event.poller.refresh_interval": expected a number of minutes, got \'abc\'',
        f"config.json: {PC}.a: idField is missing",
        f"config.json: {PC}.b.pageSize: must be greater than 0, got -1",
        "config.json: invalid: 3 errors",
    ]


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run_check(tmp_path, "check", "-c", "nope.json")
    assert result.returncode == 2
    assert result.stderr.startswith("nope.json: cannot read the file: No such file or directory")
    assert list(tmp_path.iterdir()) == []


def test_check_without_a_file_is_a_usage_error(tmp_path: Path) -> None:
    result = run_check(tmp_path, "check")
    assert result.returncode == 2 and "-c/--config" in result.stderr


def test_a_valid_file_prints_warnings_and_the_table(tmp_path: Path) -> None:
    body = engine_file(
        instance({"contacts": resource(url="/c/{listId}?since=${gmtDate:yyyy-MM-dd}", pageSise=5),
                  "ids": resource(url="https://other.example.com/ids?from=${epoch:s}&key=${env:KEY}")},
                 id="crm", configuration={"event.poller.refresh_interval": "2.5"}),
        instance({"x": resource()}, id="off", configuration={"event.notification.enabled": "false"}),
    )
    (tmp_path / "config.json").write_text(json.dumps(body), encoding="utf-8")
    result = run_check(tmp_path, "check", "-c", "config.json", environ={"KEY": "s3cr3t"})
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"warning: config.json: {PC}.contacts.pageSise: unknown key (did you mean pageSize?); ignored",
        f"warning: config.json: {PC}.contacts.url: unsubstituted path parameter {{listId}}: replace it with a "
        "real value (poller sends it as written)",
    ]
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["INSTANCE", "RESOURCE", "INTERVAL", "URL"]
    assert lines[1].split()[:4] == ["crm", "contacts", "2.5", "min"]
    assert lines[1].split()[4].startswith(f"{BASE_URL}/c/{{listId}}?since=20")
    assert lines[2].split()[4].startswith("https://other.example.com/ids?from=1") and "key=***" in lines[2]
    assert lines[3].split()[:3] == ["off", "x", "off"]
    assert lines[-1] == "config.json: OK: 2 instances, 3 resources"
    assert "s3cr3t" not in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_check_accepts_the_example_on_a_bare_machine(tmp_path: Path) -> None:
    result = run_check(tmp_path, "check", "-c", str(ROOT / "config.example.json"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith("OK: 2 instances, 4 resources")
    assert list(tmp_path.iterdir()) == []


def test_schema_prints_the_schema(tmp_path: Path) -> None:
    result = run_check(tmp_path, "schema")
    assert result.returncode == 0
    assert json.loads(result.stdout) == SCHEMA




def test_a_callback_url_with_a_bad_port_is_a_config_error(tmp_path: Path) -> None:
    body = {"id": "crm", "element": {"key": "crm"}, "configuration": {
        "event.notification.enabled": True, "event.notification.callback.url": "http://127.0.0.1:8o80/hook",
        "event.poller.configuration": {"contacts": {"url": "http://h/c", "idField": "id"}}}}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(body))
    out = subprocess.run([sys.executable, "-m", "poller", "check", "-c", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert 'configuration."event.notification.callback.url": the URL\'s port is not a number' in out.stderr
