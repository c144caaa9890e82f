"""URL templates: every placeholder of DESIGN.md §3, parsed once and rendered purely."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poller.config import templates
from poller.config.templates import Literal, TemplateError, join, parse, render

UTC = timezone.utc
SINCE = datetime(2024, 5, 1, 12, 30, 5, 123456, tzinfo=UTC)
NOW = datetime(2024, 5, 1, 13, 45, 0, tzinfo=UTC)


def r(text: str, page_size: int | None = 25, **kw: object) -> str:
    return render(parse(text, **kw), SINCE, NOW, page_size)  # type: ignore[arg-type]


def problems(text: str, **kw: object) -> tuple[str, ...]:
    with pytest.raises(TemplateError) as info:
        parse(text, **kw)  # type: ignore[arg-type]
    return info.value.problems


@pytest.mark.parametrize(("template", "expected"), [
    ("${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}", "2024-05-01T12%3A30%3A05Z"),
    ("${gmtDate:yyyy-MM-dd'T'HH:mm:ss.SSSXXX}", "2024-05-01T12%3A30%3A05.123Z"),
    ("${GMTDATE:yyyy-MM-dd}", "2024-05-01"),
    ("${gmtDate:yyyy-MM-dd'T'HH:mmz}", "2024-05-01T12%3A30GMT"),  # gmtDate is GMT, as on CE's servers
    ("${gmtDate:MM/dd/yyyy HH:mm:ss}", "05%2F01%2F2024%2012%3A30%3A05"),
    ("${gmtDate:EEE, dd MMM yyyy HH:mm:ss Z}", "Wed%2C%2001%20May%202024%2012%3A30%3A05%20%2B0000"),
    ("${gmtDate:milliseconds}", "1714566605123"),
    ("${date:yyyy-MM-dd'T'HH:mm:ssXXX}", "2024-05-01T12%3A30%3A05Z"),
    ("${date:yyyy-MM-dd'T'HH:mmz}", "2024-05-01T12%3A30UTC"),
    ("${date}", "1714566605123"),
    ("${milliseconds}", "1714566605123"),
    ("${epoch}", "1714566605123"),
    ("${epoch:ms}", "1714566605123"),
    ("${epoch:s}", "1714566605"),
    ("${epoch:us}", "1714566605123456"),
    ("${Epoch:S}", None),  # the unit is case-sensitive: S is not s
    ("${pageSize}", "25"),
    ("${PAGESIZE}", "25"),
    ("${dateTimeZone:PST:yyyy-MM-dd HH:mm:ss}", "2024-05-01%2005%3A30%3A05"),
    ("${DateTimeZone:PST:yyyy-MM-dd'T'HH:mm:ss.SSS}", "2024-05-01T05%3A30%3A05.123"),
    ("${dateTimeZone:CST:yyyy-MM-dd'T'HH:mm:ssXXX}", "2024-05-01T07%3A30%3A05-05%3A00"),
    ("${dateTimeZone:-8:00:yyyy-MM-dd HH:mm:ss}", "2024-05-01%2004%3A30%3A05"),
    ("${dateTimeZone:+05:30:HH:mm}", "18%3A00"),
    ("${dateTimeZone:GMT+5:HH:mm}", "17%3A30"),
    ("${dateTimeZone:America/Denver:yyyy-MM-dd'T'HH:mm:ss'Z'}", "2024-05-01T06%3A30%3A05Z"),
    ("${dateTimeZone:PST:yyyy-MM-dd HH:mm:ss -0800}", "2024-05-01%2005%3A30%3A05%20-0800"),
    ("${nowTimeZone:GMT:yyyy-MM-dd'T'HH:mm:ss}", "2024-05-01T13%3A45%3A00"),
    ("${nowTimeZone:-8:00:HH:mm}", "05%3A45"),
])
def test_each_placeholder_renders(template: str, expected: str | None) -> None:
    if expected is None:
        assert problems(template)
    else:
        assert r(template) == expected


def test_date_uses_the_server_time_zone() -> None:
    assert r("${date:yyyy-MM-dd HH:mm}", server_zone="America/New_York") == "2024-05-01%2008%3A30"
    assert r("${gmtDate:yyyy-MM-dd HH:mm}", server_zone="America/New_York") == "2024-05-01%2012%3A30"


def test_epoch_zero_is_the_constant_zero_with_a_warning() -> None:
    t = parse("/export?startingFrom=${epoch:0}")
    assert render(t, SINCE, NOW) == "/export?startingFrom=0"
    assert t.warnings == ("${epoch:0} at position 21 always renders 0 (fetch from the beginning; "
                          "changed records are then picked out by their dates)",)


def test_epoch_seconds_floor_before_1970() -> None:
    before = datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)
    t = parse("${epoch:s} ${epoch} ${epoch:us}")
    assert render(t, before, before) == "-1 -500 -500000"


def test_text_around_placeholders_is_kept_as_written() -> None:
    url = "/hubs/crm/contacts?where=lastUpdated>'${date:yyyy-MM-dd'T'HH:mm:ss.SSS'Z'}' and x = 'a b'"
    assert r(url) == "/hubs/crm/contacts?where=lastUpdated>'2024-05-01T12%3A30%3A05.123Z' and x = 'a b'"


def test_quoted_braces_and_colons_stay_inside_the_pattern() -> None:
    assert r("${gmtDate:yyyy'}'MM}") == "2024%7D05"
    assert r("${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}'") == "2024-05-01T12%3A30%3A05Z'"  # doc typo '' kept


def test_the_longest_zone_prefix_that_parses_wins() -> None:
    t = parse("${dateTimeZone:-8:00:mm:ss}")
    fmt = t.placeholders[0].format
    assert fmt is not None and (fmt.zone_id, fmt.pattern) == ("-8:00", "mm:ss")
    t = parse("${nowTimeZone:GMT+5:30:HH}")
    fmt = t.placeholders[0].format
    assert fmt is not None and (fmt.zone_id, fmt.pattern) == ("GMT+5:30", "HH")


def test_path_parameters_are_reported_not_substituted() -> None:
    t = parse("/companies/{id}/updates?where=timestamp>'${milliseconds}'&updateKey={updateKey}")
    assert t.path_parameters == ("id", "updateKey")
    assert render(t, SINCE, NOW).startswith("/companies/{id}/updates?")


def test_braces_that_are_not_parameters_are_text() -> None:
    t = parse('/search?q={"updated":{"$gt":"${gmtDate:yyyy-MM-dd}"}}')
    assert t.path_parameters == ()
    assert render(t, SINCE, NOW) == '/search?q={"updated":{"$gt":"2024-05-01"}}'


@pytest.mark.parametrize(("template", "expected"), [
    ("/x?a=${lastPollDate:yyyy}", "unknown placeholder ${lastPollDate:yyyy} at position 5; known placeholders: "
     "gmtDate, date, dateTimeZone, nowTimeZone, epoch, milliseconds, pageSize"),
    ("/x?a=${gmtdat:yyyy}", "unknown placeholder ${gmtdat:yyyy} at position 5 (did you mean ${gmtDate:...}?)"),
    ("/i?m='${yyyy-MM-dd'T'HH:mm:ss'Z'}'", "unknown placeholder ${yyyy-MM-dd'T'HH:mm:ss'Z'} at position 6 "
     "(did you mean ${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}?)"),
    ("/x?a=${gmtDate:yyyy-bb}", "${gmtDate:yyyy-bb} at position 5: invalid date pattern 'yyyy-bb': "
     "unknown pattern letter 'b' at position 5"),
    ("/x?a=${gmtDate:yyyy-MM-dd'T'HH:mm:ss'}'", "${gmtDate:yyyy-MM-dd'T'HH:mm:ss'} at position 5: invalid "
     "date pattern \"yyyy-MM-dd'T'HH:mm:ss'\": unterminated quote at position 21"),
    ("/x?a=${date:10 digit integer Unix time}", "unknown pattern letter 'i' at position 4"),
    ("/x?a=${gmtDate}", "${gmtDate} at position 5: needs a format: ${gmtDate:FORMAT}"),
    ("/x?a=${gmtDate:}", "${gmtDate:} at position 5: the date format is empty"),
    ("/x?a=${gmtDate:yyyy", "unterminated placeholder: '${' at position 5 has no closing '}'"),
    ("/x?a=${", "unterminated placeholder: '${' at position 5 has no closing '}'"),
    ("/x?a=${dateTimeZone:Mars/Base:yyyy}", "${dateTimeZone:Mars/Base:yyyy} at position 5: unknown time zone "
     "'Mars/Base'"),
    ("/x?a=${dateTimeZone:PST}", "${dateTimeZone:PST} at position 5: expected ${dateTimeZone:ZONE:FORMAT}"),
    ("/x?a=${dateTimeZone:{TimeZone}:yyyy-MM-dd HH:mm:ss}", "time zone '{TimeZone}' is a placeholder left to "
     "fill in: replace it with the provider's time zone"),
    ("/x?a=${epoch:min}", "${epoch:min} at position 5: unknown epoch unit 'min' (use ms, s or us)"),
    ("/x?a=${pageSize:10}", "${pageSize:10} at position 5: takes no argument: write ${pageSize}"),
    ("/x?a=${milliseconds:x}", "takes no argument: write ${milliseconds}"),
    ("/hubs/general/contacts}'", "unmatched '}' at position 22"),
    ("/customers?where=modifiedafter='$yyyy-MM-dd'T'HH:mm:ss'Z'}'", "unmatched '}' at position 57"),
    ("/a/{id/b", "unmatched '{' at position 3"),
])
def test_problems_name_their_position(template: str, expected: str) -> None:
    found = problems(template)
    assert any(expected in p for p in found), found


def test_every_problem_is_reported_at_once() -> None:
    found = problems("/x?a=${gmtDate:yyyy-bb}&b=${foo}&c=${epoch:h}}")
    assert len(found) == 4, found
    assert [re.search(r"at position (\d+)", p).group(1) for p in found] == ["5", "26", "35", "45"]  # type: ignore[union-attr]


def test_opaque_spans_are_literal_and_masked() -> None:
    secret = "s}e${gmtDate:x}"
    text = f"/a?key={secret}&since=${{epoch:s}}"
    t = parse(text, opaque=((7, 7 + len(secret)),))
    assert t.display == "/a?key=***&since=${epoch:s}"
    assert render(t, SINCE, NOW) == f"/a?key={secret}&since=1714566605"
    assert render(t, SINCE, NOW, masked=True) == "/a?key=***&since=1714566605"
    assert secret not in repr(t)


def test_join_keeps_the_base_path() -> None:
    base = parse("https://api.example.com/v1/")
    url = join(base, parse("/contacts?since=${epoch}"))
    assert render(url, SINCE, NOW) == "https://api.example.com/v1/contacts?since=1714566605123"
    assert url.display == "https://api.example.com/v1/contacts?since=${epoch}"
    assert render(join(parse("https://h/v1"), parse("x")), SINCE, NOW) == "https://h/v1/x"
    assert render(join(parse("https://h"), parse("")), SINCE, NOW) == "https://h/"


def test_join_masks_a_secret_base() -> None:
    base = parse("https://h/a/123/c", opaque=((12, 15),))
    url = join(base, parse("/contacts"))
    assert render(url, SINCE, NOW, masked=True) == "https://h/a/***/c/contacts"
    assert render(url, SINCE, NOW) == "https://h/a/123/c/contacts"


def test_render_needs_aware_datetimes_and_a_page_size_when_used() -> None:
    t = parse("${pageSize}")
    with pytest.raises(ValueError, match="needs a page size"):
        render(t, SINCE, NOW)
    with pytest.raises(ValueError, match="aware since"):
        render(parse("x"), SINCE.replace(tzinfo=None), NOW)
    with pytest.raises(ValueError, match="aware now"):
        render(parse("x"), SINCE, NOW.replace(tzinfo=None))


def test_render_is_pure_and_since_differs_from_now() -> None:
    t = parse("${gmtDate:HH:mm}|${nowTimeZone:UTC:HH:mm}")
    assert render(t, SINCE, NOW) == "12%3A30|13%3A45"
    assert render(t, SINCE, NOW) == render(t, SINCE, NOW)


def test_literal_reprs_mask_secrets() -> None:
    assert "hunter2" not in repr(Literal("hunter2", secret=True))
    assert repr(Literal("x")) == "Literal('x')"


_plain = st.text(alphabet=st.characters(blacklist_characters="${}", blacklist_categories=("Cs",)))


@given(_plain)
def test_text_without_placeholders_renders_unchanged(text: str) -> None:
    t = parse(text)
    assert render(t, SINCE, NOW) == text
    assert t.placeholders == () and t.path_parameters == ()


@given(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9998, 12, 30), timezones=st.just(UTC)))
def test_rendered_values_are_query_safe(since: datetime) -> None:
    t = parse("${gmtDate:EEE, dd MMM yyyy HH:mm:ss.SSS Z}&${epoch:s}&${epoch}&${dateTimeZone:-8:00:yyyy-MM-dd'T'HH:mm:ssXXX}")
    rendered = render(t, since, since + timedelta(hours=1))
    assert all(c.isalnum() or c in "%-._~&" for c in rendered), rendered
    seconds = rendered.split("&")[1]
    assert int(seconds) == (since - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)


def test_module_exports() -> None:
    assert set(templates.__all__) <= set(dir(templates))


@st.composite
def _text_with_a_secret(draw: st.DrawFn) -> tuple[str, tuple[int, int]]:
    text = draw(st.text(alphabet="ab/?={}$", max_size=40).filter(lambda t: "${" not in t))
    a = draw(st.integers(0, len(text)))
    b = draw(st.integers(a, len(text)))
    return text, (a, b)


@given(_text_with_a_secret())
def test_text_and_a_secret_span_render_as_written_and_mask_only_the_span(case: tuple[str, tuple[int, int]]) -> None:
    """Runs of plain characters are taken in one slice: they must still stop at braces and at
    the secret's start (where a secret of braces is never read as braces)."""
    text, (a, b) = case
    outside = text[:a] + " " * (b - a) + text[b:]
    depth, balanced = 0, True
    for c in outside:
        depth += {"{": 1, "}": -1}.get(c, 0)
        balanced = balanced and depth >= 0
    try:
        t = parse(text, opaque=((a, b),) if b > a else ())
    except TemplateError:
        assert not (balanced and depth == 0), text
        return
    assert balanced and depth == 0, text
    assert render(t, SINCE, NOW) == text
    assert render(t, SINCE, NOW, masked=True) == (text[:a] + "***" + text[b:] if b > a else text)


def test_a_placeholder_seen_before_is_shared_and_its_warnings_and_problems_still_given_each_time() -> None:
    a, b = parse("/a?s=${gmtDate:yyyy-MM-dd}"), parse("/bb?since=${gmtDate:yyyy-MM-dd}")
    assert a.placeholders[0] is b.placeholders[0]
    assert parse("/x?s=${date:yyyy}", server_zone="Asia/Tokyo").placeholders[0] is not \
        parse("/x?s=${date:yyyy}").placeholders[0]  # (date is in the server's zone)
    for text, position in (("/a?from=${epoch:0}", 8), ("/abc?from=${epoch:0}", 10)):
        assert parse(text).warnings == (f"${{epoch:0}} at position {position} always renders 0 (fetch from the "
                                        "beginning; changed records are then picked out by their dates)",)
    for text in ("/a?s=${gmtDate:}", "/a?s=${gmtDate:}&t=${gmtDate:}"):
        with pytest.raises(TemplateError) as failed:
            parse(text)
        assert len(failed.value.problems) == text.count("${")
    secret = parse("/a?s=${gmtDate:yyyy-MM-dd}", opaque=((15, 19),))
    assert secret.placeholders[0] is not a.placeholders[0] and "***" in secret.placeholders[0].display


def test_rendering_many_templates_with_shared_values_gives_what_each_gives_alone() -> None:
    templates = [parse("/a?s=${gmtDate:yyyy-MM-dd'T'HH:mm}&n=${pageSize}"), parse("/b?since=${gmtDate:yyyy-MM-dd'T'HH:mm}"),
                 parse("/c?n=${pageSize}&t=${nowTimeZone:UTC:HH:mm:ss}")]
    values: dict = {}
    for page_size in (10, 25, 10):
        for t in templates:
            uses = t.uses_page_size
            alone = render(t, SINCE, NOW, page_size if uses else None)
            assert render(t, SINCE, NOW, page_size if uses else None, values=values) == alone
    assert render(templates[0], SINCE, NOW, 25, values=values).endswith("&n=25")


_URL_PIECES = st.sampled_from(["/", "a", "?q=", "&", "'", "$", "{", "}", "{id}", "${epoch}", "${epoch:s}", "${pageSize}",
                               "${epoch:0}", "${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}", "${gmtDate:HH'}'mm}", "${nope}",
                               "${dateTimeZone:-8:00:yyyy}", "${date:'x}"])


def _scanned(text: str) -> templates.Template | None:
    """What the character-by-character scanner makes of ``text`` (None: a problem)."""
    scanner = templates._Scanner(text, "UTC", ())
    scanner.run()
    if scanner.problems:
        return None
    return templates.Template(text, tuple(scanner.parts), tuple(dict.fromkeys(scanner.params)),
                              tuple(scanner.warnings))


@given(st.lists(_URL_PIECES, max_size=8).map("".join))
def test_a_url_of_known_placeholders_parses_as_the_scanner_would(text: str) -> None:
    reference = _scanned(text)  # (compiles and keeps each good placeholder: the next parse may take the short way)
    known = templates._parse_known(text, "UTC")
    if reference is None:
        assert known is None
        with pytest.raises(TemplateError):
            parse(text)
        return
    assert parse(text) == reference
    if known is not None:
        assert known == reference
    else:  # only a brace outside a placeholder, a quote or a warning sends a good URL to the scanner
        assert "{" in text.replace("${", "") or "}" in re.sub(r"\$\{[^{}]*\}", "", text) or "'" in text \
            or reference.warnings, text


def test_the_usual_url_is_parsed_the_short_way() -> None:
    text = "/contacts?since=${gmtDate:yyyy-MM-dd'T'HH:mm:ss'Z'}&n=${pageSize}"
    first = parse(text)
    assert templates._parse_known(text, "UTC") == first
    assert templates._parse_known("/a/{id}?n=${pageSize}", "UTC") is None  # a path parameter: scanned
    assert templates._parse_known("/a?t=${gmtDate:HH'}'mm}", "UTC") is None  # a quoted brace: scanned


_PATHS = st.lists(st.sampled_from(["/", "//", "v1", "a/", "${epoch}", "{id}", "?q=1"]), max_size=5).map("".join)


@given(_PATHS, _PATHS, st.booleans())
def test_join_is_the_rendered_texts_joined_with_one_slash(base: str, url: str, secret_base: bool) -> None:
    if secret_base and base:  # taken as written, slashes and all (a secret is never cut)
        joined = join(parse("https://h" + base, opaque=((9, 9 + len(base)),)), parse(url))
        head = "https://h" + base
    else:
        joined = join(parse("https://h" + base), parse(url))
        head = render(parse("https://h" + base), SINCE, NOW).rstrip("/")
    assert render(joined, SINCE, NOW) == head + "/" + render(parse(url), SINCE, NOW).lstrip("/")
    pairs = zip(joined.parts, joined.parts[1:])
    assert not any(isinstance(a, Literal) and isinstance(b, Literal) and a.secret == b.secret for a, b in pairs)
    assert all(p.text for p in joined.parts if isinstance(p, Literal))


@pytest.mark.parametrize(("url", "expected"), [
    ("https://API.Example.com/v1/contacts?since=${gmtDate:yyyy-MM-dd}", "https://api.example.com:443"),
    ("http://api.example.com/v1", "http://api.example.com:80"),
    ("http://127.0.0.1:8080/r1?page=${pageSize}", "http://127.0.0.1:8080"),
    ("https://user:secret@h.example:8443/a", "https://h.example:8443"),  # no credentials in the name
    ("https://h.example:${pageSize}/a", "https://h.example:443"),  # (a placeholder for the port: the host counts)
    ("http://[${pageSize}]/x", "http://["),  # (urlsplit refuses the text before it: that text, never a raise)
    ("https://u:pw@[${pageSize}]/x", "["),
])
def test_origin_names_the_provider_a_url_reaches(url: str, expected: str) -> None:
    """The daemon gives each provider host its share of the pool by this name."""
    assert templates.origin(parse(url)) == expected
