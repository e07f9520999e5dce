"""Typed events the proxy sends (PROTOCOL.md §4): ``RequestHeaders``, ``BodyChunk``,
``ResponseHeaders`` and ``Cancelled``, as dataclasses built from decoded payloads. Parsing checks
every field's type, because a payload is untrusted; convenience accessors (path, query, header
lookup, bearer token) live here too. Building replies is ``decision.py``'s job.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .protocol import DecodeError

Headers = list[tuple[str, str]]


def _field(message: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = ...):
    value = message.get(name, default)
    if value is ...:
        raise DecodeError(f"missing field `{name}`")
    if value is None and default is None:
        return None
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise DecodeError(f"field `{name}` has the wrong type ({type(value).__name__})")
    return value


def _request_id(message: dict[str, Any]) -> int:
    request_id = _field(message, "request_id", int)
    if not 0 <= request_id < 2**64:
        raise DecodeError("field `request_id` is not an unsigned 64-bit integer")
    return request_id


def _headers(message: dict[str, Any]) -> Headers:
    raw = _field(message, "headers", list, [])
    pairs: Headers = []
    append = pairs.append
    for pair in raw:  # on every event: one plain loop, no generator per pair
        if type(pair) not in (list, tuple) or len(pair) != 2:
            raise DecodeError("field `headers` must be a list of [name, value] strings")
        name, value = pair
        if type(name) is not str or type(value) is not str:
            raise DecodeError("field `headers` must be a list of [name, value] strings")
        append((name, value))
    return pairs


def _data(message: dict[str, Any]) -> bytes:
    value = message.get("data", b"")
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise DecodeError("field `data` is not valid base64") from None
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value)
    raise DecodeError("field `data` must be bytes or a base64 string")


class _HeaderLookup:
    headers: Headers

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        name = name.lower()
        return next((v for n, v in self.headers if n.lower() == name), None)

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        name = name.lower()
        return [v for n, v in self.headers if n.lower() == name]


@dataclass(frozen=True)
class RequestHeaders(_HeaderLookup):
    """RequestHeaders (0x10): the first event of the request phase."""

    request_id: int
    method: str
    uri: str
    version: str = "HTTP/1.1"
    headers: Headers = field(default_factory=list)
    client_addr: str = ""
    route: str = ""
    has_body: bool = False

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> RequestHeaders:
        return cls(
            request_id=_request_id(message),
            method=_field(message, "method", str),
            uri=_field(message, "uri", str),
            version=_field(message, "version", str, "HTTP/1.1"),
            headers=_headers(message),
            client_addr=_field(message, "client_addr", str, ""),
            route=_field(message, "route", str, ""),
            has_body=_field(message, "has_body", bool, False),
        )

    @property
    def path(self) -> str:
        """The URI's path, without the query."""
        return urlsplit(self.uri).path or "/"

    @property
    def query(self) -> str:
        """The raw query string (after ``?``), possibly empty."""
        return urlsplit(self.uri).query

    def query_pairs(self) -> list[tuple[str, str]]:
        """The decoded query parameters, in order."""
        return parse_qsl(self.query, keep_blank_values=True)

    @property
    def client_ip(self) -> str:
        """``client_addr`` without its port (``[::1]:80`` gives ``::1``)."""
        addr = self.client_addr
        if addr.startswith("["):
            return addr[1:].split("]", 1)[0]
        host, sep, port = addr.rpartition(":")
        return host if sep and port.isdigit() and ":" not in host else addr

    def bearer_token(self) -> str | None:
        """The token of an ``Authorization: Bearer …`` header."""
        value = self.header("authorization")
        if value and value[:7].lower() == "bearer ":
            return value[7:].strip() or None
        return None


@dataclass(frozen=True)
class BodyChunk:
    """RequestBodyChunk (0x11) or ResponseBodyChunk (0x13): one piece of a body."""

    request_id: int
    chunk_index: int
    data: bytes
    is_last: bool

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> BodyChunk:
        return cls(
            request_id=_request_id(message),
            chunk_index=_field(message, "chunk_index", int, 0),
            data=_data(message),
            is_last=_field(message, "is_last", bool, False),
        )


@dataclass(frozen=True)
class ResponseHeaders(_HeaderLookup):
    """ResponseHeaders (0x12): the upstream's status and headers."""

    request_id: int
    status: int
    headers: Headers = field(default_factory=list)
    has_body: bool = False

    @classmethod
    def from_wire(cls, message: dict[str, Any]) -> ResponseHeaders:
        return cls(
            request_id=_request_id(message),
            status=_field(message, "status", int),
            headers=_headers(message),
            has_body=_field(message, "has_body", bool, False),
        )


@dataclass(frozen=True)
class Cancelled:
    """A request the proxy cancelled (Cancel, CancelAll, or the connection closing)."""

    connection_id: str
    request_id: int
    reason: str
