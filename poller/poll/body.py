"""Reading a response body within bounds: ``Content-Encoding`` undone layer by layer, every layer
counted, none allowed to grow past the limit before it is counted. Pure: bytes in, bytes out.

    body = BoundedBody(headers.get("content-encoding"), limit)
    for chunk in raw_chunks:         # the bytes as they came off the wire
        body.feed(chunk)             # raises BodyTooLarge, BodyEncodingError
    data = body.finish()

A general-purpose decoder inflates each network chunk through every layer at once: 6,778 bytes
of ``gzip, gzip`` become gigabytes before anything is counted. Here each layer inflates at most
:data:`STEP` bytes at a time (zlib's ``max_length``) and hands them to the next, so memory stays
within the limit plus a few steps, whatever the ratio. ``gzip`` (also ``x-gzip``, with several
members), ``deflate`` (zlib-wrapped or raw, as browsers accept) and ``identity`` are read; more
than :data:`MAX_LAYERS` encodings, or any other one, are refused.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

__all__ = ["ACCEPT_ENCODING", "MAX_LAYERS", "STEP", "BodyEncodingError", "BodyTooLarge", "BoundedBody"]

ACCEPT_ENCODING = "gzip, deflate"  # what we can read; sent with every request
MAX_LAYERS = 2
STEP = 64 * 1024


class BodyTooLarge(Exception):
    """More than the limit, raw or after one of the layers (``layer``: 0 for the raw bytes)."""

    def __init__(self, limit: int, layer: int, encoding: str, *, status: int | None = None,
                 size: int | None = None) -> None:
        self.limit = limit
        self.layer = layer
        self.status = status  # set by the reader, which knows the response
        where = "" if layer == 0 else f" once {encoding} is undone"
        what = f"response body of {size} bytes" if size is not None else "response body"
        super().__init__(f"{what} is larger than the limit of {limit} bytes{where}")


class BodyEncodingError(Exception):
    """A Content-Encoding that cannot be read, or bytes that are not what it says."""


class _Layer:
    """One encoding being undone: its decompressor and how many bytes it has produced."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.produced = 0
        if encoding == "deflate":
            self.z = zlib.decompressobj(zlib.MAX_WBITS)
            self.kept: bytes | None = b""  # input kept until the zlib wrapper is known to be there
        else:
            self.z = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding in ("gzip", "x-gzip") else None
            self.kept = None
        self.padding = False  # after the last gzip member: only NUL bytes may follow

    def pieces(self, data: bytes) -> Iterator[bytes]:
        """Undo this layer for ``data``, one piece of at most STEP bytes at a time: the caller
        hands each piece on (and counts it) before the next one is inflated."""
        if self.z is None:  # identity
            for start in range(0, len(data), STEP):
                yield data[start:start + STEP]
            return
        while data:
            if self.padding:
                if data.strip(b"\0"):
                    raise BodyEncodingError(f"the body is not valid {self.encoding} data: bytes after its end")
                return
            piece = self._inflate(data)
            if piece:
                yield piece
            if self.z.eof and self.z.unused_data and self.encoding != "deflate":
                data = self.z.unused_data
                if not data.strip(b"\0"):
                    self.padding = True  # zeros after the last member: gzip(1) ignores them too
                    return
                self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)  # another gzip member follows
            else:
                data = self.z.unconsumed_tail

    def _inflate(self, data: bytes) -> bytes:
        if self.kept is not None:
            self.kept += data
        try:
            piece = self.z.decompress(data, STEP)
        except zlib.error as exc:
            if self.kept is None:
                raise BodyEncodingError(f"the body is not valid {self.encoding} data: {exc}") from None
            # "deflate" is sent raw (no zlib header) as often as wrapped: start again, raw
            kept, self.kept = self.kept, None
            self.z = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._inflate(kept)
        if self.kept is not None and (piece or len(self.kept) > STEP):
            self.kept = None  # the wrapper was there: no going back
        return piece

    def flush(self) -> bytes:
        if self.z is None:
            return b""
        try:
            rest = self.z.flush()
        except zlib.error as exc:
            raise BodyEncodingError(f"the body is not valid {self.encoding} data: {exc}") from None
        if not self.z.eof and (self.produced or rest or self.kept):
            # what zlib read so far was valid, but the stream stops before its end: without this,
            # the cut-off JSON was reported as "expected a JSON body"
            raise BodyEncodingError(f"the {self.encoding} data ends before its end: the body was cut off")
        return rest


class BoundedBody:
    """The decoded body, built chunk by chunk; see the module docstring."""

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        encodings = [e.strip().lower() for e in (content_encoding or "").split(",") if e.strip()]
        encodings = [e for e in encodings if e != "identity"]
        for encoding in encodings:
            if encoding not in ("gzip", "x-gzip", "deflate"):
                raise BodyEncodingError(f"unsupported Content-Encoding {encoding!r} (poller reads gzip and deflate)")
        if len(encodings) > MAX_LAYERS:
            raise BodyEncodingError(f"Content-Encoding {content_encoding!r} stacks {len(encodings)} encodings; "
                                    f"at most {MAX_LAYERS} are read")
        # the encoding applied last is undone first
        self.layers = [_Layer(e) for e in reversed(encodings)]
        self.limit = limit
        self.raw = 0
        self._chunks: list[bytes] = []
        self.size = 0

    def feed(self, data: bytes) -> None:
        self.raw += len(data)
        if self.raw > self.limit:
            raise BodyTooLarge(self.limit, 0, "")
        self._push(0, data)

    def finish(self) -> bytes:
        for i, layer in enumerate(self.layers):
            rest = layer.flush()
            if rest:
                self._count(layer, len(rest), i + 1)
                self._push(i + 1, rest)
        body = b"".join(self._chunks)
        self._chunks = []
        return body

    def so_far(self) -> bytes:
        """What was decoded before a failure (to quote an error response)."""
        return b"".join(self._chunks)

    def _push(self, i: int, data: bytes) -> None:
        if i == len(self.layers):
            if data:
                self.size += len(data)
                self._chunks.append(data)
            return
        layer = self.layers[i]
        for piece in layer.pieces(data):
            self._count(layer, len(piece), i + 1)
            self._push(i + 1, piece)

    def _count(self, layer: _Layer, n: int, depth: int) -> None:
        layer.produced += n
        if layer.produced > self.limit:
            raise BodyTooLarge(self.limit, depth, layer.encoding)
