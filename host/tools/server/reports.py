"""Vehicle reports the update server stores: strict decoding into plain JSON values.

A report is stored as the exact bytes received and served back rendered as JSON. Only what
renders faithfully is accepted (``ReportInvalid`` otherwise, with a short ``reason``):

* JSON: UTF-8, no ``NaN``/``Infinity`` (nor a number that overflows to it), no duplicate member
  names, no lone surrogates, at most ``MAX_DEPTH`` nested arrays/objects.
* CBOR (RFC 8949), decoded here (not by cbor2, which turns tags into datetimes, sets, decimals or
  shared-reference cycles): integers, byte strings (rendered as hex), UTF-8 text, arrays, maps
  with text keys (no duplicates), ``false``/``true``/``null`` and finite floats; definite or
  indefinite lengths. Tags, ``undefined``, other simple values, non-finite floats, trailing bytes
  and more than ``MAX_DEPTH`` levels are refused.

``render`` is also what the listing uses for every stored row, so a row written by an older
server that does not render becomes an error entry instead of breaking the listing.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

from pydantic import JsonValue

MAX_DEPTH = 64
JSON_TYPES = ("application/json",)
CBOR_TYPES = ("application/cbor",)


class ReportInvalid(ValueError):
    """The body cannot be stored and served faithfully; ``reason`` is a short machine value."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def render(content_type: str, body: bytes) -> Any:
    """The JSON value of a stored report (raises ``ReportInvalid``)."""
    if content_type in CBOR_TYPES:
        return decode_cbor(body)
    if content_type in JSON_TYPES:
        return decode_json(body)
    raise ReportInvalid("content_type", f"reports are JSON or CBOR, not {content_type!r}")


# ---- JSON ------------------------------------------------------------------------------------
def _no_constant(name: str) -> Any:
    raise ReportInvalid("non_finite_number", f"{name} is not standard JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ReportInvalid("non_finite_number", f"{text[:40]} overflows a double")
    return value


def _unique(pairs: list[tuple[str, JsonValue]]) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {}
    for key, value in pairs:
        if key in out:
            raise ReportInvalid("duplicate_key", f"member {key[:40]!r} appears twice")
        out[key] = value
    return out


def decode_json(body: bytes) -> Any:
    """Strict JSON (see the module docstring)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportInvalid("invalid_utf8", f"JSON must be UTF-8: {exc.reason}") from None
    try:
        value = json.loads(
            text, parse_constant=_no_constant, parse_float=_finite, object_pairs_hook=_unique
        )
    except ReportInvalid:
        raise
    except RecursionError:
        raise ReportInvalid("too_deep", f"nested deeper than {MAX_DEPTH}") from None
    except ValueError as exc:  # JSONDecodeError, and integers past the 4300-digit limit
        raise ReportInvalid("malformed", f"not JSON: {str(exc)[:120]}") from None
    _check_tree(value, 0)
    return value


def _check_tree(value: Any, depth: int) -> None:
    """Depth limit and well-formed text (no lone surrogates) of a decoded JSON value."""
    if depth > MAX_DEPTH:
        raise ReportInvalid("too_deep", f"nested deeper than {MAX_DEPTH}")
    if isinstance(value, str):
        _text_ok(value)
    elif isinstance(value, list):
        for item in value:
            _check_tree(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _text_ok(key)
            _check_tree(item, depth + 1)


def _text_ok(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ReportInvalid("lone_surrogate", "text with a lone surrogate") from None


# ---- CBOR ------------------------------------------------------------------------------------
_SIMPLE = {20: False, 21: True, 22: None}
_BREAK = object()


class _Cbor:
    """A strict recursive decoder of one CBOR data item into JSON values."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise ReportInvalid("truncated", f"CBOR ends inside an item at offset {self.pos}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def _head(self) -> tuple[int, int, int | None]:
        """(major type, additional info, argument or None for indefinite length)."""
        ib = self._take(1)[0]
        major, info = ib >> 5, ib & 0x1F
        if info < 24:
            return major, info, info
        if info <= 27:
            return major, info, int.from_bytes(self._take(1 << (info - 24)), "big")
        if info == 31 and major in (2, 3, 4, 5, 7):
            return major, info, None
        raise ReportInvalid("malformed", f"reserved additional info {info} at {self.pos - 1}")

    def _string(self, major: int, n: int | None) -> bytes:
        if n is not None:
            return self._take(n)
        parts: list[bytes] = []
        while True:
            m, _info, arg = self._head()
            if m == 7 and arg is None:
                return b"".join(parts)
            if m != major or arg is None:
                raise ReportInvalid("malformed", "bad chunk in an indefinite-length string")
            parts.append(self._take(arg) if major == 2 else self._text(arg).encode())

    def _text(self, n: int) -> str:
        try:
            return self._take(n).decode("utf-8")
        except UnicodeDecodeError:
            raise ReportInvalid(
                "invalid_utf8", f"text is not UTF-8 near offset {self.pos}"
            ) from None

    def item(self, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ReportInvalid("too_deep", f"nested deeper than {MAX_DEPTH}")
        start = self.pos
        major, info, arg = self._head()
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg  # type: ignore[operator]
        if major == 2:
            return self._string(2, arg).hex()
        if major == 3:
            if arg is not None:
                return self._text(arg)
            return self._string(3, None).decode("utf-8")
        if major == 4:
            return self._array(arg, depth)
        if major == 5:
            return self._map(arg, depth)
        if major == 6:
            raise ReportInvalid("tag", f"CBOR tag {arg} at offset {start}: tags are not stored")
        return self._simple(info, arg, start)

    def _count(self, n: int, per_item: int) -> None:
        # every item takes at least one byte: refuse absurd counts before looping
        if n * per_item > len(self.data) - self.pos:
            raise ReportInvalid("truncated", f"{n} items cannot fit in the rest of the body")

    def _array(self, n: int | None, depth: int) -> list[Any]:
        out: list[Any] = []
        if n is not None:
            self._count(n, 1)
            for _ in range(n):
                out.append(self.item(depth + 1))
            return out
        while (value := self._item_or_break(depth)) is not _BREAK:
            out.append(value)
        return out

    def _map(self, n: int | None, depth: int) -> dict[str, JsonValue]:
        out: dict[str, JsonValue] = {}
        i = 0
        if n is not None:
            self._count(n, 2)
        while n is None or i < n:
            key_at = self.pos
            key = self._item_or_break(depth) if n is None else self.item(depth + 1)
            if key is _BREAK:
                break
            if not isinstance(key, str) or self.data[key_at] >> 5 != 3:
                raise ReportInvalid("non_text_key", f"map key at offset {key_at} is not text")
            if key in out:
                raise ReportInvalid("duplicate_key", f"map key {key[:40]!r} appears twice")
            out[key] = self.item(depth + 1)
            i += 1
        return out

    def _item_or_break(self, depth: int) -> Any:
        if self.pos < len(self.data) and self.data[self.pos] == 0xFF:
            self.pos += 1
            return _BREAK
        return self.item(depth + 1)

    def _simple(self, info: int, arg: int | None, start: int) -> Any:
        if arg is None:
            raise ReportInvalid("malformed", f"unexpected break at offset {start}")
        if info in (25, 26, 27):
            fmt = {25: ">e", 26: ">f", 27: ">d"}[info]
            value = float(struct.unpack(fmt, arg.to_bytes(1 << (info - 24), "big"))[0])
            if not math.isfinite(value):
                raise ReportInvalid("non_finite_number", f"NaN or infinity at offset {start}")
            return value
        if info < 24 and arg in _SIMPLE:
            return _SIMPLE[arg]
        name = "undefined" if arg == 23 and info < 24 else f"simple value {arg}"
        reason = "undefined" if name == "undefined" else "simple_value"
        raise ReportInvalid(reason, f"{name} at offset {start} is not stored")


def decode_cbor(body: bytes) -> Any:
    """Strict CBOR (see the module docstring) as a JSON value, byte strings in hex."""
    dec = _Cbor(body)
    try:
        value = dec.item()
    except RecursionError:
        raise ReportInvalid("too_deep", f"nested deeper than {MAX_DEPTH}") from None
    if dec.pos != len(body):
        raise ReportInvalid("trailing_bytes", f"{len(body) - dec.pos} bytes after the report")
    return value
