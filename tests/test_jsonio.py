"""jsonio: orjson with the standard library's tolerance; gcpause: the collector comes back."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator

import pytest

from poller import jsonio
from poller.gcpause import collector_paused
from tests.test_jsonsteps import drain


@pytest.fixture(autouse=True)
def collector_enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


@pytest.mark.parametrize(("text", "value"), [
    (b'{"n": 123456789012345678901234567890}', {"n": 123456789012345678901234567890}),
    (b'[NaN, 1, Infinity, -Infinity]', [None, 1, None, None]),  # not JSON: read as null (README: what is guaranteed)
    (b'{"s": "x\\ud800y"}', {"s": "x\ud800y"}),
    (b'{"a": [1, {"b": null}]}', {"a": [1, {"b": None}]}),
])
def test_loads_reads_what_the_standard_library_reads(text: bytes, value: object) -> None:
    assert jsonio.loads(text) == value


def test_loads_still_refuses_what_is_not_json() -> None:
    with pytest.raises(ValueError):
        jsonio.loads(b"<html>")


@pytest.mark.parametrize("value", [
    {"n": 2**70}, {"s": "x\ud800y"}, {"s": "é\udc00", "n": 2**70}, ["ok", 1.5, None],
])
def test_dumps_always_writes_json_that_reads_back(value: object) -> None:
    data = jsonio.dumps(value)
    assert json.loads(data) == value


def test_dumps_escapes_a_lone_surrogate_and_nothing_else_changes() -> None:
    assert jsonio.dumps({"s": "é"}) == '{"s":"é"}'.encode()
    assert jsonio.dumps({"s": "\ud800"}) == b'{"s":"\\ud800"}'


def test_the_collector_is_paused_inside_and_back_after() -> None:
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block leaves it to the outer
    assert gc.isenabled()


def test_the_collector_comes_back_after_an_exception() -> None:
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()
    with pytest.raises(ValueError):
        jsonio.loads(b"not json")
    assert gc.isenabled()


def test_a_collector_disabled_by_the_application_stays_disabled() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()
    jsonio.loads(b"[1]")
    assert not gc.isenabled()


@pytest.mark.parametrize("number", [2**64, 2**64 + 1, -(2**63) - 1, 10**30, -(10**25)])
def test_integers_beyond_64_bits_stay_exact(number: int) -> None:
    """orjson alone would read these as floats: two ids 2**64 and 2**64 + 1 would become one."""
    for text in (f'{{"id": {number}}}', f'[1,{number}]', f'{number}', f'{{"a":"x","id":{number}, "b": 1.5}}'):
        got = jsonio.loads(text.encode())
        assert number in (got.values() if isinstance(got, dict) else got if isinstance(got, list) else [got]), text
        assert jsonio.loads(text) == got  # the same from text


@pytest.mark.parametrize(("text", "may"), [
    (b'{"id": "1234567890123456789012"}', False),  # digits in a string: orjson reads it exactly
    (b'{"x": 0.12345678901234567890123}', False),  # a long fraction: a float either way
    (b'{"id": 1234567890123456789}', True),
    (b'{"id":-1234567890123456789}', True),
    (b'[1,2,12345678901234567890]', True),
    (b'12345678901234567890', True),
    (b'{"id": 123456789012345678}', False),  # 18 digits always fit
    (b'{"note": "call 12345678901234567890"}', True),  # a false alarm: only slower
])
def test_which_documents_are_left_to_the_standard_library(text: bytes, may: bool) -> None:
    assert jsonio._may_hold_a_long_integer(text) is may
    assert jsonio._may_hold_a_long_integer(text.decode()) is may
    assert jsonio.loads(text) == json.loads(text)


# -- cut_deep: documents deeper than the decoders go -------------------------------------------------

@pytest.mark.parametrize("text", [
    b'[]', b'{"a": [1, {"b": "[{\\"]}"}], "c": "x\\\\"}', b'[[[["deep"]]], {"k": {"k": {}}}]', b"not json [",
])
def test_cut_deep_leaves_a_document_within_its_levels_unchanged(text: bytes) -> None:
    assert jsonio.cut_deep(text, keep=4) == text


def test_cut_deep_replaces_what_lies_below_its_levels_and_depth_still_counts_it() -> None:
    text = b'[{"id": "a", "t": [[["[[", {"x": [[]]}]]], "s": "]]"}, {"id": "b", "t": [[1]]}]'
    cut = jsonio.cut_deep(text, keep=4)
    value = jsonio.loads(cut)
    assert [r["id"] for r in value] == ["a", "b"] and value[0]["s"] == "]]"
    assert jsonio.depth(value[0]) == jsonio.depth(json.loads(text)[0]) == 7  # the cut levels count
    assert jsonio.depth(value[1]) == 3 and value[1]["t"] == [[1]]  # within its levels: as it was
    assert isinstance(value[0]["t"][0][0], str)  # the fifth level of the document: the marker
    assert jsonio.depth({"t": "\x00poller:cut:twelve"}) == 1  # not a marker: text


def test_cut_deep_in_steps_gives_the_same_bytes_and_pauses() -> None:
    text = b"[" + b",".join(b'{"id": "%d", "t": ' % i + b"[" * 700 + b"]" * 700 + b"}" for i in range(20)) + b"]"
    cut, pauses = drain(jsonio.cut_deep_steps(text, step=1000))
    assert pauses >= 20 and cut == jsonio.cut_deep(text)
    value = jsonio.loads(cut)
    assert [r["id"] for r in value] == [str(i) for i in range(20)]
    assert {jsonio.depth(r) for r in value} == {701}


def test_an_unclosed_string_is_one_token_to_the_end() -> None:
    """(Without the end of the body as a way to end a string, the pattern was tried from every
    quote of an unclosed string to the end: 81 KB of escaped quotes held the loop 19 s.)"""
    body = b"[" * 1100 + b'"' + b'\\"' * 2000
    token = jsonio._TOKENS.search(body, 1100)
    assert token is not None and token.span() == (1100, len(body))
    assert jsonio.cut_deep(body + b"\\") == body + b"\\"  # (nothing to cut: no container closes)


@pytest.mark.parametrize("body", [b'[{"d": 1e999, "e": -1e999}]',
                                  b'[{"big": 123456789012345678901234567890, "d": 1e999, "e": -1e999}]'],
                         ids=["alone", "beside-a-long-integer"])
def test_a_number_beyond_a_double_is_null_and_every_body_stays_json(body: bytes) -> None:
    """(Beside an integer past 64 bits, the page went to json, which read 1e999 as inf, and the
    notification body was written by json.dumps: "d": Infinity, which strict parsers refuse.)"""
    value = jsonio.loads(body)
    assert value[0]["d"] is None and value[0]["e"] is None  # type: ignore[index]
    json.loads(jsonio.dumps(value), parse_constant=lambda name: pytest.fail(f"{name} in the body"))
