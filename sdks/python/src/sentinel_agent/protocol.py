"""The wire format (PROTOCOL.md §1-2): frame layout, message type bytes, and the two payload
encodings (JSON always; MessagePack when the ``msgpack`` package is installed). This module owns
bytes-to-dict and dict-to-bytes; it knows nothing about sockets beyond reading one frame from an
``asyncio.StreamReader``, and nothing about what messages mean.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

try:  # optional: without it the SDK speaks JSON only
    import msgpack as _msgpack
except ImportError:  # pragma: no cover - depends on the environment
    _msgpack = None

PROTOCOL_VERSION = 2
DEFAULT_MAX_FRAME_LENGTH = 16 * 1024 * 1024
FRAME_HEADER = struct.Struct(">IB")

REGISTRATION_REQUEST = 0x01
REGISTRATION_RESPONSE = 0x02
REQUEST_HEADERS = 0x10
REQUEST_BODY_CHUNK = 0x11
RESPONSE_HEADERS = 0x12
RESPONSE_BODY_CHUNK = 0x13
DECISION = 0x20
REQUEST_ERROR = 0x22
CANCEL = 0x30
CANCEL_ALL = 0x31
CONFIG_UPDATE = 0x40
GO_AWAY = 0x41
PING = 0xF0
PONG = 0xF1

JSON = "json"
MSGPACK = "msgpack"


class ProtocolError(Exception):
    """The peer broke the framing (bad length, truncated frame): the connection must close."""


class DecodeError(Exception):
    """One payload could not be decoded or has the wrong shape; the frame can be skipped."""


def msgpack_available() -> bool:
    """Whether MessagePack can be offered (the optional ``msgpack`` package is installed)."""
    return _msgpack is not None


def supported_encodings() -> list[str]:
    """Encodings this installation speaks, preferred first."""
    return [MSGPACK, JSON] if msgpack_available() else [JSON]


def encode_frame(type_byte: int, payload: bytes) -> bytes:
    """One frame: big-endian length (type byte + payload), the type byte, the payload."""
    return FRAME_HEADER.pack(len(payload) + 1, type_byte) + payload


async def read_frame(
    reader: asyncio.StreamReader, max_length: int = DEFAULT_MAX_FRAME_LENGTH
) -> tuple[int, bytes] | None:
    """Reads one frame; ``None`` on a clean end of stream between frames.

    The length is checked before anything else is read, so a hostile length never makes us
    allocate or wait for the size it claims.
    """
    try:
        header = await reader.readexactly(4)
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            return None
        raise ProtocolError("the stream ended inside a frame header") from None
    (length,) = struct.unpack(">I", header)
    if length == 0:
        raise ProtocolError("frame length 0 (every frame has a type byte)")
    if length > max_length:
        raise ProtocolError(f"frame length {length} exceeds the maximum {max_length}")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ProtocolError(f"the stream ended inside a frame of {length} bytes") from None
    return body[0], body[1:]


class Codec:
    """Encodes and decodes payloads in one negotiated encoding."""

    def __init__(self, encoding: str) -> None:
        if encoding == MSGPACK and not msgpack_available():
            raise ValueError("msgpack encoding requested but the msgpack package is not installed")
        if encoding not in (JSON, MSGPACK):
            raise ValueError(f"unknown encoding {encoding!r}")
        self.encoding = encoding

    def encode(self, message: dict[str, Any]) -> bytes:
        if self.encoding == MSGPACK:
            return _msgpack.packb(message, use_bin_type=True)
        return json.dumps(message, separators=(",", ":")).encode("utf-8")

    def decode(self, payload: bytes) -> dict[str, Any]:
        try:
            if self.encoding == MSGPACK:
                value = _msgpack.unpackb(payload, raw=False, strict_map_key=False)
            else:
                value = json.loads(payload.decode("utf-8"))
        except Exception as e:  # the payload is untrusted: any decoder failure is one error
            raise DecodeError(f"undecodable {self.encoding} payload: {e}") from None
        if not isinstance(value, dict):
            raise DecodeError(f"expected a {self.encoding} map, got {type(value).__name__}")
        return value


JSON_CODEC = Codec(JSON)
