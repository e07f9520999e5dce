"""``RunnerConfig``: everything the runner needs besides the agent (identity, token, proxies,
connection counts, timing of reconnects, heartbeats and draining, encodings, TLS) and its
validation. Durations are float seconds. The token is kept out of ``repr``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from .address import ProxyAddress, TlsSettings
from .backoff import BackoffConfig
from .protocol import DEFAULT_MAX_FRAME_LENGTH, MSGPACK, msgpack_available, supported_encodings

AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
SDK_VERSION = "0.1.0"


class ConfigError(ValueError):
    """The runner cannot start with this configuration."""


@dataclass
class RunnerConfig:
    """How the runner connects and behaves."""

    agent_id: str
    proxies: list[ProxyAddress] = field(default_factory=list)
    auth_token: str | None = field(default=None, repr=False)
    connections_per_proxy: int = 4
    max_concurrent_requests: int = 100
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    registration_timeout: float = 10.0
    drain_grace: float = 10.0
    silent_heartbeats: int = 3
    write_timeout: float = 10.0
    max_consecutive_errors: int = 3
    max_frame_length: int = DEFAULT_MAX_FRAME_LENGTH
    max_tracked_requests: int = 4096
    version: str = SDK_VERSION
    metadata: dict[str, Any] = field(default_factory=dict)
    encodings: list[str] = field(default_factory=supported_encodings)
    tls: TlsSettings = field(default_factory=TlsSettings)

    @staticmethod
    def token_from_env(name: str) -> str:
        """The token in environment variable ``name``; its name, never its value, in errors."""
        token = os.environ.get(name, "").strip()
        if not token:
            raise ConfigError(f"environment variable {name} (--auth-token-env) is unset or empty")
        return token

    def validate(self) -> None:
        if not AGENT_ID.fullmatch(self.agent_id):
            raise ConfigError(
                f"agent id {self.agent_id!r} must match ^[A-Za-z0-9][A-Za-z0-9._:-]{{0,127}}$"
            )
        if not self.proxies:
            raise ConfigError("no proxy to connect to (--connect)")
        for name in ("connections_per_proxy", "max_concurrent_requests", "silent_heartbeats",
                     "max_consecutive_errors", "max_tracked_requests"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if not 0 < self.backoff.initial <= self.backoff.maximum:
            raise ConfigError("the initial backoff must be above zero and at most the maximum")
        if not self.encodings or any(e not in ("json", MSGPACK) for e in self.encodings):
            raise ConfigError(f"encodings must be a non-empty list of json/msgpack: {self.encodings}")
        if MSGPACK in self.encodings and not msgpack_available():
            raise ConfigError("msgpack offered but the msgpack package is not installed")
        try:
            self.tls.check(any(p.is_tls for p in self.proxies))
        except ValueError as e:
            raise ConfigError(str(e)) from None
