"""poller.poll.jsonsteps: a large page decoded in parts gives what decoding it whole gives."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poller import jsonio
from poller.poll import jsonsteps
from poller.poll.jsonsteps import NotSteppable


def run(data: bytes, path: tuple | None) -> tuple[object, int]:
    """The document, and how many times the walk paused."""
    return drain(jsonsteps.decode(data, path))


def drain(walk: Generator[None, None, Any]) -> tuple[Any, int]:
    """A stepped walk's value, and how many times it paused."""
    pauses = 0
    try:
        while True:
            next(walk)
            pauses += 1
    except StopIteration as done:
        return done.value, pauses


@pytest.fixture
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonsteps, "STEP", 64)


RECORD = {"id": "r1", "name": 'a "quoted" name with [brackets] and {braces}, commas', "n": 12345678901234567890123,
          "f": 1.5, "neg": -0.0, "nested": {"tags": [{"k": "]}"}, [1, [2, [3]]]], "x": None}, "esc": "\\\" \\u00e9 é ☃"}


def test_records_at_a_path_in_parts(small_steps: None) -> None:
    records = [dict(RECORD, id=f"r{i}") for i in range(300)]
    body = json.dumps({"meta": {"page": 1, "items": "not these"}, "items": records, "total": 300}).encode()
    value, pauses = run(body, ("items",))
    assert value == jsonio.loads(body)
    assert pauses > 10  # in parts, not at once


def test_a_top_level_list_pretty_printed(small_steps: None) -> None:
    body = json.dumps([dict(RECORD, id=i) for i in range(100)], indent=2).encode()
    value, pauses = run(body, None)
    assert value == json.loads(body) and pauses > 5


def test_a_path_through_lists_and_objects(small_steps: None) -> None:
    body = json.dumps({"data": [{"skip": [1, 2]}, {"rows": [{"id": i} for i in range(200)]}, 7]}).encode()
    value, pauses = run(body, ("data", 1, "rows"))
    assert value == json.loads(body) and pauses > 3


def test_what_is_not_at_the_path_is_decoded_whole() -> None:
    body = json.dumps({"other": [{"id": i} for i in range(50)], "items": []}).encode()
    assert run(body, ("items",)) == (json.loads(body), 0)
    assert run(b"[]", None) == ([], 0)
    assert run(b' {"items": 5} ', ("items",)) == ({"items": 5}, 0)


def test_nan_and_long_integers_as_the_whole_body_reads_them(small_steps: None) -> None:
    body = b'[' + b",".join(b'{"v": NaN, "w": -Infinity, "big": 123456789012345678901234567890}' for _ in range(50)) + b']'
    value, _ = run(body, None)
    assert value == jsonio.loads(body)
    assert value[0] == {"v": None, "w": None, "big": 123456789012345678901234567890}  # type: ignore[index]


def test_duplicate_members_keep_the_last_value(small_steps: None) -> None:
    body = b'{"items": [1], "items": [' + b",".join(b"%d" % i for i in range(100)) + b'], "a": 1, "a": 2}'
    assert run(body, ("items",))[0] == json.loads(body)


@pytest.mark.parametrize("body", [
    b"\xef\xbb\xbf[1, 2]",  # a byte-order mark (the whole path reads it; so is it here: not at all)
    b"[1, 2,]",  # a trailing comma
    b"[1, 2] x",  # more after the document
    b'[{"a": 1} {"b": 2}]',  # no comma
    b'{"items": [1, 2}',  # not closed as opened
    b'["\xff\xfe"]',  # not UTF-8
    b"[1, , 2]",  # no value between two commas
    b'[1, "2]',  # a string never closed
    b"[1, 2",  # cut short
    b"[\x0c1]",  # \f is not JSON's whitespace
    b"",
], ids=["bom", "trailing-comma", "after", "no-comma", "mismatch", "not-utf8", "empty-item", "unclosed", "cut",
        "formfeed", "empty"])
def test_what_the_walk_does_not_expect_is_left_to_the_whole_decoder(body: bytes) -> None:
    with pytest.raises(NotSteppable):
        run(body, ("items",) if body.startswith(b"{") else None)


def nested(levels: int, leaf: object = "leaf") -> object:
    for _ in range(levels):
        leaf = [leaf]
    return leaf


def test_records_nested_deeper_than_the_expression_follows_are_decoded_in_parts(small_steps: None) -> None:
    """(They were decoded whole: 0.5 s of a 55 MB page with the loop held.) The lone bracket
    inside a string misleads the first guess, and the expression cannot follow 40 levels."""
    records = [{"id": i, "s": "]", "v": nested(40) if i % 3 else 1} for i in range(200)]
    body = json.dumps({"items": records}).encode()
    value, pauses = run(body, ("items",))
    assert value == json.loads(body) and pauses > 20
    assert run(b"[" * 20 + b"]" * 20, None) == (json.loads(b"[" * 20 + b"]" * 20), 0)


@pytest.mark.parametrize("path", [None, ("data", 0, "items")])
def test_a_record_nested_past_the_decoders_is_cut_in_its_part_as_the_whole_body_is_cut(
        small_steps: None, path: tuple | None) -> None:
    """(The whole body was decoded, failed, cut and decoded again: 1.3 s of a 44 MB page, the
    loop held 0.4 s.) The part holding it is cut the same way: the same records, the same marker."""
    deep = '{"id": "150", "v": ' + "[" * 1100 + '"leaf"' + "]" * 1100 + "}"
    records = "[" + ", ".join(deep if i == 150 else json.dumps({"id": str(i), "v": i}) for i in range(300)) + "]"
    body = (records if path is None else '{"data": [{"items": ' + records + "}]}").encode()
    value, pauses = run(body, path)
    assert value == jsonio.loads(jsonio.cut_deep(body, jsonio.CUT_LEVELS + len(path or ())))
    cut = (value if path is None else value["data"][0]["items"])[150]  # type: ignore[index]
    assert jsonio.depth(cut) == 1101 and b"poller:cut:" in jsonio.dumps(cut) and pauses > 50


_SCALARS = st.none() | st.booleans() | st.integers(min_value=-(10 ** 30), max_value=10 ** 30) \
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(alphabet=st.sampled_from('ab"\\[]{},: é☃\n'), max_size=8)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(st.text(alphabet='ab"[{,:', max_size=3), inner, max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(records=st.lists(_VALUES, max_size=30), indent=st.sampled_from([None, 1]), step=st.integers(1, 200),
       levels=st.integers(0, 2 * jsonsteps.DEPTH))
def test_any_list_of_records_decodes_as_the_whole_body_does(records: list, indent: int | None, step: int,
                                                            levels: int) -> None:
    original = jsonsteps.STEP
    jsonsteps.STEP = step
    try:
        records = [nested(levels, r) if i % 2 else r for i, r in enumerate(records)]  # (some past DEPTH)
        body = json.dumps({"x": [1, "]"], "items": records}, indent=indent, ensure_ascii=False).encode()
        value, _ = run(body, ("items",))
        assert value == jsonio.loads(body)
    finally:
        jsonsteps.STEP = original
