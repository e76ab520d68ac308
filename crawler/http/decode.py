"""Content-Encoding undone as the body streams in (C5): gzip, deflate and br, within limits."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import brotli  # type: ignore[import-untyped]

from ..outcome import BrokenEncoding

# Each step of a decoder yields at most this many bytes.
_CHUNK = 256 * 1024
# A gzip body may be several members back to back; more than this is not a real body.
_MAX_MEMBERS = 1024


class Decoder:
    """Undoes one Content-Encoding (gzip, deflate, br) as the body streams in. Each step
    yields at most _CHUNK bytes, so a small compressed body cannot inflate in memory past
    max_bytes before it is counted (a gzip bomb fails fast), and a compressed stream that
    stops before its end marker is an error, not a silently shortened body."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._seen = False
        self._members = 1
        self._zlib: Any = None
        self._brotli: Any = None
        if encoding == "br":
            self._brotli = brotli.Decompressor()
        elif encoding == "gzip":
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)

    @classmethod
    def for_encoding(cls, header: str | None) -> Decoder | None:
        """A decoder for the header's coding; None when there is nothing crawler undoes
        (no header, identity, or a coding it did not ask for: kept as sent)."""
        name = (header or "").strip().lower()
        name = {"x-gzip": "gzip"}.get(name, name)
        if name not in ("gzip", "deflate", "br"):
            return None
        return cls(name)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not data:
            return
        try:
            if self.encoding == "br":
                yield from self._feed_brotli(data)
            else:
                yield from self._feed_zlib(data)
        except (zlib.error, brotli.error) as exc:
            raise BrokenEncoding(f"broken Content-Encoding {self.encoding}: {exc}") from exc

    def finish(self) -> None:
        """The body ended: its compressed stream must have ended too."""
        if not self._seen:
            return  # an empty body: nothing was compressed
        if self._brotli is not None:
            done = bool(self._brotli.is_finished())
        else:
            done = self._zlib is not None and bool(self._zlib.eof)
        if not done:
            raise BrokenEncoding(
                f"broken Content-Encoding {self.encoding}: the compressed stream ended early"
            )

    def _feed_zlib(self, data: bytes) -> Iterator[bytes]:
        if self._zlib is None:
            # deflate is meant to be zlib-wrapped (RFC 9110 8.4.1.2); some servers send raw
            # deflate, told apart by the first byte as browsers do.
            raw = data[0] & 0x0F != 8
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS if raw else zlib.MAX_WBITS)
        self._seen = True
        pending = data
        while pending:
            decompressor = self._zlib
            if decompressor.eof:
                # gzip allows members back to back; anything else after the end of the
                # stream (padding, a stray newline) is ignored, as curl and browsers do.
                if self.encoding != "gzip" or not pending.startswith(b"\x1f\x8b"):
                    return
                self._members += 1
                if self._members > _MAX_MEMBERS:
                    raise BrokenEncoding(f"more than {_MAX_MEMBERS} gzip members")
                decompressor = self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
            chunk = decompressor.decompress(pending, _CHUNK)
            if chunk:
                yield chunk
            pending = decompressor.unused_data if decompressor.eof else decompressor.unconsumed_tail

    def _feed_brotli(self, data: bytes) -> Iterator[bytes]:
        self._seen = True
        decompressor = self._brotli
        if not hasattr(decompressor, "can_accept_more_data"):  # Brotli < 1.2: no output limit
            yield decompressor.process(data)
            return
        chunk = decompressor.process(data, output_buffer_limit=_CHUNK)
        while True:
            if chunk:
                yield chunk
            if decompressor.can_accept_more_data():
                return
            chunk = decompressor.process(b"", output_buffer_limit=_CHUNK)
