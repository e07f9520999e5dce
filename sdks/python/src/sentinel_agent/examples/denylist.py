"""A denylist and rate limiter by client address and header, configured by the proxy.

Pushed configuration (the proxy's ``config { … }`` block for this agent; every key optional,
a key written once in KDL arrives as a single value, several times as a list):

    deny_addresses "203.0.113.0/24" "198.51.100.7"   // client IPs or networks → 403
    deny_header "x-api-key"                         // this header …
    deny_values "leaked-key-1" "leaked-key-2"       // … with one of these values → 403
    limit 100                                       // at most this many requests …
    window_ms 1000                                  // … per window, per key → 429
    key_header "x-api-key"                          // the key: this header, else the client IP

Allowed requests go upstream with ``x-denylist: allowed``. Run it with
``python -m sentinel_agent.examples.denylist --connect unix:/run/sentinel/agents.sock
--agent-id denylist-1`` (flags as for every Sentinel agent; ``--help`` lists them).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sentinel_agent import Agent, RequestContext, RequestHeaders, allow, block, run_agent

MAX_TRACKED_KEYS = 65_536


def _one_or_many(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items):
        raise ValueError(f"`{name}` must be a string or a list of strings")
    return items


@dataclass
class Policy:
    """What the agent enforces; replaced whole on every pushed configuration."""

    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    deny_header: str | None = None
    deny_values: frozenset[str] = frozenset()
    limit: int = 0
    window: float = 1.0
    key_header: str | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Policy:
        networks = []
        for text in _one_or_many(config.get("deny_addresses"), "deny_addresses"):
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                raise ValueError(f"`deny_addresses`: {text!r} is not an IP address or network") from None
        limit = config.get("limit", 0)
        window_ms = config.get("window_ms", 1000)
        for name, value in (("limit", limit), ("window_ms", window_ms)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"`{name}` must be a non-negative integer")
        if window_ms == 0:
            raise ValueError("`window_ms` must be above 0")
        headers = {}
        for name in ("deny_header", "key_header"):
            value = config.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"`{name}` must be a header name")
            headers[name] = value.lower() if value else None
        return cls(
            networks=networks,
            deny_header=headers["deny_header"],
            deny_values=frozenset(_one_or_many(config.get("deny_values"), "deny_values")),
            limit=limit,
            window=window_ms / 1000,
            key_header=headers["key_header"],
        )


class Windows:
    """Fixed-window request counters per key, bounded to ``MAX_TRACKED_KEYS`` keys."""

    def __init__(self) -> None:
        self.counters: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def hit(self, key: str, limit: int, window: float, now: float) -> float | None:
        """Counts one request; the seconds until the window ends if it is over ``limit``."""
        start, count = self.counters.get(key, (now, 0))
        if now - start >= window:
            start, count = now, 0
        count += 1
        self.counters[key] = (start, count)
        self.counters.move_to_end(key)
        while len(self.counters) > MAX_TRACKED_KEYS:
            self.counters.popitem(last=False)
        return start + window - now if count > limit else None


class DenylistAgent(Agent):
    """Blocks denied addresses and header values, and rate-limits per key."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.default_policy = policy or Policy()
        self.policy = self.default_policy
        self.windows = Windows()

    async def on_config(self, config: Any) -> None:
        if config is None:
            self.policy = self.default_policy
        elif not isinstance(config, dict):
            raise ValueError("the configuration must be an object")
        else:
            self.policy = Policy.from_config(config)
        self.windows = Windows()

    async def on_request_headers(self, request: RequestHeaders, ctx: RequestContext):
        policy = self.policy
        ip = request.client_ip
        if policy.networks and _in_networks(ip, policy.networks):
            return block(403, "denied\n").rule("denylist-address").reason(f"client {ip} is denied")
        if policy.deny_header and request.header(policy.deny_header) in policy.deny_values:
            return block(403, "denied\n").rule("denylist-header").reason(f"{policy.deny_header} is denied")
        if policy.limit:
            key = (policy.key_header and request.header(policy.key_header)) or ip
            wait = self.windows.hit(key, policy.limit, policy.window, time.monotonic())
            if wait is not None:
                return (block(429, "too many requests\n", {"retry-after": str(max(1, math.ceil(wait)))})
                        .rule("rate-limit").reason(f"more than {policy.limit} requests per {policy.window:g} s"))
        return allow().set_request_header("x-denylist", "allowed")


def _in_networks(ip: str, networks) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


def _flags(parser) -> None:
    group = parser.add_argument_group("policy (until the proxy pushes a configuration)")
    group.add_argument("--deny-address", action="append", default=[], metavar="IP_OR_NET")
    group.add_argument("--limit", type=int, default=0, metavar="N", help="requests per window per key (0: none)")
    group.add_argument("--window-ms", type=int, default=1000, metavar="MS")


def _make(args) -> DenylistAgent:
    return DenylistAgent(Policy.from_config(
        {"deny_addresses": args.deny_address, "limit": args.limit, "window_ms": args.window_ms}))


def main(argv=None) -> int:
    return run_agent(_make, "Sentinel denylist and rate-limit agent", argv, _flags)


if __name__ == "__main__":
    raise SystemExit(main())
