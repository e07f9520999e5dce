"""One registration attempt (PROTOCOL.md §3): dial, send the RegistrationRequest (always JSON),
read the RegistrationResponse, all within one timeout. Success gives a ``Registered`` connection
ready to serve; a refusal raises ``Rejected`` with its code, which says whether to give up.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any

from .address import ProxyAddress
from .protocol import (
    JSON, JSON_CODEC, MSGPACK, REGISTRATION_REQUEST, REGISTRATION_RESPONSE, DecodeError,
    ProtocolError, encode_frame, msgpack_available, read_frame,
)

#: Refusals that the same request will get again until someone changes a configuration.
PERMANENT_CODES = frozenset(
    {"invalid_request", "version_mismatch", "invalid_agent_id", "auth_failed", "not_allowed"}
)


class RegistrationError(Exception):
    """The attempt failed before the proxy answered (unreachable, timeout, bad answer)."""

    permanent = False


class Rejected(RegistrationError):
    """The proxy answered ``accepted: false``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"refused `{code}`: {message}")
        self.code = code
        self.message = message

    @property
    def permanent(self) -> bool:  # type: ignore[override]
        return self.code in PERMANENT_CODES


@dataclass
class Registered:
    """A connection the proxy accepted."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    assigned_id: str
    encoding: str
    config: Any
    heartbeat: float | None  # seconds; None when the proxy announced none


async def register(
    proxy: ProxyAddress,
    request: dict[str, Any],
    timeout: float,
    max_frame_length: int,
    tls: ssl.SSLContext | None = None,
    server_name: str | None = None,
) -> Registered:
    """Dials ``proxy`` and registers with ``request``; the whole exchange within ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        reader, writer = await proxy.dial(timeout, tls, server_name)
    except asyncio.TimeoutError:
        raise RegistrationError(f"dialing {proxy} timed out after {timeout:g} s") from None
    except (OSError, ssl.SSLError) as e:
        raise RegistrationError(f"cannot connect to {proxy}: {e}") from None
    try:
        writer.write(encode_frame(REGISTRATION_REQUEST, JSON_CODEC.encode(request)))
        remaining = max(0.0, deadline - loop.time())
        response = await asyncio.wait_for(_exchange(reader, writer, max_frame_length), remaining)
    except asyncio.TimeoutError:
        writer.close()
        raise RegistrationError(f"no registration answer from {proxy} within {timeout:g} s") from None
    except (OSError, ProtocolError, DecodeError, RegistrationError) as e:
        writer.close()
        if isinstance(e, RegistrationError):
            raise
        raise RegistrationError(f"registration with {proxy} failed: {e}") from None
    if response.get("accepted") is not True:
        writer.close()
        raise Rejected(str(response.get("error") or "unknown"), str(response.get("message") or ""))
    return _accepted(reader, writer, response)


async def _exchange(reader, writer, max_frame_length: int) -> dict[str, Any]:
    await writer.drain()
    frame = await read_frame(reader, max_frame_length)
    if frame is None:
        raise RegistrationError("the proxy closed the connection before answering the registration")
    type_byte, payload = frame
    if type_byte != REGISTRATION_RESPONSE:
        raise RegistrationError(f"expected a RegistrationResponse, got message type 0x{type_byte:02x}")
    return JSON_CODEC.decode(payload)


def _accepted(reader, writer, response: dict[str, Any]) -> Registered:
    encoding = response.get("encoding") or JSON
    if encoding not in (JSON, MSGPACK) or (encoding == MSGPACK and not msgpack_available()):
        writer.close()
        raise RegistrationError(f"the proxy chose encoding {encoding!r}, which this agent did not offer")
    heartbeat_ms = response.get("heartbeat_interval_ms")
    heartbeat = heartbeat_ms / 1000 if isinstance(heartbeat_ms, int) and heartbeat_ms > 0 else None
    return Registered(
        reader=reader,
        writer=writer,
        assigned_id=str(response.get("assigned_id") or "?"),
        encoding=encoding,
        config=response.get("config"),
        heartbeat=heartbeat,
    )
