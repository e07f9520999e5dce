"""The standard agent flags (PROTOCOL.md §8), the same as the Rust agents': ``--connect``
(repeatable), ``--agent-id``, ``--auth-token-env``, ``--connections``, ``--max-concurrent`` and
``--tls-ca``/``--tls-cert``/``--tls-key``/``--tls-server-name``, plus ``--encoding`` and
``--log-level``; and ``run_agent``, which parses them, sets up logging and runs until a signal.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Callable, Sequence

from .address import AddressError, ProxyAddress, TlsSettings
from .agent import Agent
from .config import ConfigError, RunnerConfig
from .protocol import JSON, MSGPACK, supported_encodings


def _address(text: str) -> ProxyAddress:
    try:
        return ProxyAddress.parse(text)
    except AddressError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_connect_args(parser: argparse.ArgumentParser) -> None:
    """Adds the standard flags to ``parser`` (an agent adds its own next to them)."""
    group = parser.add_argument_group("connection")
    group.add_argument("--connect", metavar="ADDR", type=_address, action="append", required=True,
                       help="proxy to dial: unix:/path, tcp:host:port or tls:host:port; repeat for several proxies")
    group.add_argument("--agent-id", metavar="ID", required=True, help="the id this agent registers with")
    group.add_argument("--auth-token-env", metavar="VAR", help="environment variable holding the registration token")
    group.add_argument("--connections", metavar="N", type=_positive, default=4, help="connections kept open to each proxy (default 4)")
    group.add_argument("--max-concurrent", metavar="N", type=_positive, default=100,
                       help="events processed at once per connection (default 100)")
    group.add_argument("--tls-ca", metavar="FILE", help="PEM bundle of the CAs that may sign the proxy's certificate")
    group.add_argument("--tls-cert", metavar="FILE", help="PEM client certificate (mutual TLS, with --tls-key)")
    group.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    group.add_argument("--tls-server-name", metavar="NAME", help="name the proxy's certificate must carry")
    group.add_argument("--encoding", choices=["auto", JSON, MSGPACK], default="auto",
                       help="payload encoding to offer (default auto: msgpack when installed, then json)")
    group.add_argument("--log-level", default=os.environ.get("SENTINEL_AGENT_LOG", "info"),
                       help="debug, info, warning or error (default info, or $SENTINEL_AGENT_LOG)")


def config_from_args(args: argparse.Namespace) -> RunnerConfig:
    """The runner configuration the flags describe (reads the token variable now)."""
    config = RunnerConfig(agent_id=args.agent_id, proxies=list(args.connect))
    config.connections_per_proxy = args.connections
    config.max_concurrent_requests = args.max_concurrent
    config.tls = TlsSettings(args.tls_ca, args.tls_cert, args.tls_key, args.tls_server_name)
    if args.encoding != "auto":
        config.encodings = [args.encoding]
    else:
        config.encodings = supported_encodings()
    if args.auth_token_env:
        config.auth_token = RunnerConfig.token_from_env(args.auth_token_env)
    config.validate()
    return config


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_agent(make_agent: Callable[[argparse.Namespace], Agent], description: str,
              argv: Sequence[str] | None = None,
              extra_args: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """Parses the flags, builds the agent with ``make_agent(args)``, runs it until SIGTERM or
    ctrl-c, drains, and returns the exit status (2 for a configuration error)."""
    from .runner import Runner

    parser = argparse.ArgumentParser(description=description)
    add_connect_args(parser)
    if extra_args is not None:
        extra_args(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    try:
        runner = Runner(make_agent(args), config_from_args(args))
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    asyncio.run(runner.run_until_signal())
    return 0
