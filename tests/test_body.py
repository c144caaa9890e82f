"""poll/body.py: Content-Encoding undone layer by layer, each layer bounded and counted."""

from __future__ import annotations

import gzip
import os
import zlib

import pytest

from poller.poll.body import STEP, BodyEncodingError, BodyTooLarge, BoundedBody

DATA = os.urandom(50_000) + b'{"id": "1"}' * 20_000  # some incompressible, some very compressible


def deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


def read(encoding: str | None, blob: bytes, limit: int = 10 ** 8, chunk: int = 65536) -> bytes:
    body = BoundedBody(encoding, limit)
    for start in range(0, len(blob), chunk):
        body.feed(blob[start:start + chunk])
    return body.finish()


def zeros_gzip(size: int) -> bytes:
    """``size`` zero bytes, gzipped without holding them all."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    parts = [c.compress(block) for _ in range(size >> 20)]
    return b"".join(parts) + c.flush()


@pytest.mark.parametrize("chunk", [1, 3, 4096, 1 << 20])
@pytest.mark.parametrize(("encoding", "blob"), [
    (None, DATA),
    ("identity", DATA),
    ("gzip", gzip.compress(DATA)),
    ("x-gzip", gzip.compress(DATA)),
    ("GZIP", gzip.compress(DATA)),
    ("deflate", zlib.compress(DATA)),  # zlib-wrapped, as the RFC says
    ("deflate", deflate_raw(DATA)),  # raw, as many servers send it
    ("gzip, gzip", gzip.compress(gzip.compress(DATA))),
    ("deflate, gzip", gzip.compress(zlib.compress(DATA))),
    ("identity, gzip", gzip.compress(DATA)),
    ("gzip", gzip.compress(DATA[:1000]) + gzip.compress(DATA[1000:])),  # two gzip members
    ("gzip", gzip.compress(DATA) + b"\0" * 5000),  # zero padding after the last member: gzip(1) takes it
], ids=["none", "identity", "gzip", "x-gzip", "upper", "deflate", "raw-deflate", "gzip-gzip", "deflate-gzip",
        "identity-gzip", "two-members", "zero-padding"])
def test_every_encoding_reads_back_exactly_whatever_the_chunks(encoding: str | None, blob: bytes, chunk: int) -> None:
    assert read(encoding, blob, chunk=chunk) == DATA


def test_a_stacked_bomb_is_refused_after_at_most_a_step_past_the_limit() -> None:
    bomb = gzip.compress(zeros_gzip(1 << 30))  # 1 GiB of zeros in about 1 KB
    assert len(bomb) < 10_000
    body = BoundedBody("gzip, gzip", 1 << 20)
    with pytest.raises(BodyTooLarge) as caught:
        body.feed(bomb)
    assert caught.value.layer == 2 and "larger than the limit of 1048576 bytes once gzip is undone" in str(caught.value)
    assert body.size <= (1 << 20) + STEP  # what was kept before the refusal
    assert all(layer.produced <= (1 << 20) + STEP for layer in body.layers)


def test_the_inner_layer_is_counted_too() -> None:
    """An outer layer within the limit cannot carry an inner one that is not."""
    blob = gzip.compress(zeros_gzip(8 << 20), compresslevel=1)
    assert len(zeros_gzip(8 << 20)) < (1 << 20)
    with pytest.raises(BodyTooLarge) as caught:
        read("gzip, gzip", blob, limit=1 << 20)
    assert caught.value.layer == 2


def test_the_raw_bytes_are_counted() -> None:
    with pytest.raises(BodyTooLarge) as caught:
        read(None, b"x" * 1001, limit=1000)
    assert caught.value.layer == 0 and str(caught.value) == "response body is larger than the limit of 1000 bytes"


@pytest.mark.parametrize(("encoding", "message"), [
    ("gzip, gzip, gzip", "Content-Encoding 'gzip, gzip, gzip' stacks 3 encodings; at most 2 are read"),
    ("br", "unsupported Content-Encoding 'br' (poller reads gzip and deflate)"),
    ("gzip, zstd", "unsupported Content-Encoding 'zstd' (poller reads gzip and deflate)"),
])
def test_what_cannot_be_read_is_refused_before_anything_is_read(encoding: str, message: str) -> None:
    with pytest.raises(BodyEncodingError) as caught:
        BoundedBody(encoding, 100)
    assert str(caught.value) == message


def test_bytes_that_are_not_what_the_header_says() -> None:
    with pytest.raises(BodyEncodingError, match="not valid gzip data"):
        read("gzip", b'{"not": "gzip"}')
    with pytest.raises(BodyEncodingError, match="not valid deflate data"):
        read("deflate", b"\xff" * 100)


@pytest.mark.parametrize("encoding, blob", [
    ("gzip", gzip.compress(DATA)[:-20]), ("gzip", gzip.compress(DATA)[:5000]), ("deflate", zlib.compress(DATA)[:-10]),
    ("deflate", deflate_raw(DATA)[:3000]), ("gzip, gzip", gzip.compress(gzip.compress(DATA))[:-8]),
])
def test_a_stream_cut_off_before_its_end_says_so(encoding: str, blob: bytes) -> None:
    """(It was read as far as it went, and the cut-off JSON reported as "expected a JSON body".)"""
    with pytest.raises(BodyEncodingError, match="data ends before its end: the body was cut off"):
        read(encoding, blob)


def test_bytes_after_zero_padding_are_refused() -> None:
    with pytest.raises(BodyEncodingError, match="not valid gzip data"):
        read("gzip", gzip.compress(DATA) + b"\0" * 10 + b"junk", chunk=4096)
    blob = gzip.compress(DATA)
    with pytest.raises(BodyEncodingError, match="not valid gzip data: bytes after its end"):
        read("gzip", blob + b"\0" * (4096 - len(blob) % 4096) + b"junk", chunk=4096)  # zeros, then junk later
