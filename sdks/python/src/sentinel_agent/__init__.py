"""Sentinel agents in Python: subclass ``Agent``, override the async handlers you need, and
run it with ``Runner`` (or ``run_agent`` for the standard command-line flags).

    from sentinel_agent import Agent, allow, block, run_agent

    class NoAdmin(Agent):
        async def on_request_headers(self, request, ctx):
            return block(403) if request.path.startswith("/admin") else allow()

    raise SystemExit(run_agent(lambda args: NoAdmin(), "keeps /admin closed"))
"""

from .address import ProxyAddress, TlsSettings
from .agent import Agent, RequestContext
from .backoff import Backoff, BackoffConfig
from .cli import add_connect_args, config_from_args, run_agent
from .config import ConfigError, RunnerConfig
from .decision import Decision, allow, block, continue_, deny, error, redirect
from .events import BodyChunk, Cancelled, RequestHeaders, ResponseHeaders
from .protocol import DecodeError, ProtocolError, msgpack_available
from .register import PERMANENT_CODES, RegistrationError, Rejected
from .runner import Runner

__all__ = [
    "Agent", "RequestContext", "Runner", "RunnerConfig", "ConfigError", "ProxyAddress",
    "TlsSettings", "Backoff", "BackoffConfig", "Decision", "allow", "block", "continue_", "deny",
    "error", "redirect", "RequestHeaders", "BodyChunk", "ResponseHeaders", "Cancelled",
    "ProtocolError", "DecodeError", "msgpack_available", "RegistrationError", "Rejected",
    "PERMANENT_CODES", "run_agent", "add_connect_args", "config_from_args",
]
__version__ = "0.1.0"
