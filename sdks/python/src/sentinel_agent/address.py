"""Proxy addresses (``unix:/path``, ``tcp:host:port``, ``tls:host:port``) and dialing them
into an asyncio stream pair, TLS through the ``ssl`` module with an explicit CA bundle and an
optional client certificate. Registration and everything after it are elsewhere.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path


class AddressError(ValueError):
    """An address that cannot be parsed."""


@dataclass(frozen=True)
class ProxyAddress:
    """Where a proxy's reverse listener is."""

    scheme: str  # "unix", "tcp" or "tls"
    path: str = ""
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, text: str) -> ProxyAddress:
        scheme, sep, rest = text.partition(":")
        if not sep:
            raise AddressError(f"{text!r}: expected unix:/path, tcp:host:port or tls:host:port")
        if scheme == "unix":
            if not rest:
                raise AddressError(f"{text!r}: empty socket path")
            return cls("unix", path=rest)
        if scheme not in ("tcp", "tls"):
            raise AddressError(f"{text!r}: unknown scheme {scheme!r} (unix, tcp or tls)")
        host, sep, port = rest.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise AddressError(f"{text!r}: expected {scheme}:host:port")
        return cls(scheme, host=host, port=int(port))

    @property
    def is_tls(self) -> bool:
        return self.scheme == "tls"

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}:{host}:{self.port}"

    async def dial(
        self, timeout: float, tls: ssl.SSLContext | None = None, server_name: str | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Connects within ``timeout`` seconds (TLS handshake included)."""
        if self.scheme == "unix":
            connect = asyncio.open_unix_connection(self.path)
        elif self.scheme == "tcp":
            connect = asyncio.open_connection(self.host, self.port)
        else:
            if tls is None:
                raise AddressError(f"{self}: a tls: address needs TLS settings (--tls-ca)")
            connect = asyncio.open_connection(
                self.host, self.port, ssl=tls, server_hostname=server_name or self.host
            )
        reader, writer = await asyncio.wait_for(connect, timeout)
        sock = writer.get_extra_info("socket")
        if self.scheme != "unix" and sock is not None:
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer


@dataclass(frozen=True)
class TlsSettings:
    """How ``tls:`` proxies are dialled."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None

    def check(self, needed: bool) -> None:
        if needed and not self.ca_file:
            raise ValueError("a tls: proxy needs --tls-ca (the CA bundle that signs its certificate)")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("--tls-cert and --tls-key go together")

    def context(self) -> ssl.SSLContext:
        """An SSL context trusting only ``ca_file``; files are read now, once."""
        for flag, path in (("--tls-ca", self.ca_file), ("--tls-cert", self.cert_file), ("--tls-key", self.key_file)):
            if path and not Path(path).is_file():
                raise ValueError(f"{flag} {path}: no such file")
        try:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_verify_locations(cafile=self.ca_file)
            if self.cert_file:
                context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as e:
            raise ValueError(f"TLS files unusable ({self.ca_file}, {self.cert_file}): {e}") from None
        return context
