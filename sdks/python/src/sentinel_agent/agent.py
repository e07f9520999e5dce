"""The ``Agent`` base class an author subclasses, the per-request ``RequestContext``, and the
capabilities announced at registration, derived from which handlers the subclass overrides.
Every handler defaults to allow. Running handlers, concurrency and cancellation belong to
``connection.py``; this module only says what an agent is.
"""

from __future__ import annotations

from typing import Any

from .decision import Decision, allow, continue_
from .events import BodyChunk, Cancelled, RequestHeaders, ResponseHeaders

REQUEST_HEADERS = "request_headers"
REQUEST_BODY = "request_body"
RESPONSE_HEADERS = "response_headers"
RESPONSE_BODY = "response_body"

_HANDLERS = {
    REQUEST_HEADERS: "on_request_headers",
    REQUEST_BODY: "on_request_body_chunk",
    RESPONSE_HEADERS: "on_response_headers",
    RESPONSE_BODY: "on_response_body_chunk",
}


class RequestContext:
    """Lives for one request on one connection, across its events.

    ``state`` is a dict for the agent's own per-request data (e.g. a body buffer);
    ``request_headers``/``response_headers`` hold the phase's headers for the body handlers.
    """

    __slots__ = ("request_id", "connection_id", "state", "request_headers", "response_headers")

    def __init__(self, request_id: int, connection_id: str) -> None:
        self.request_id = request_id
        self.connection_id = connection_id
        self.state: dict[str, Any] = {}
        self.request_headers: RequestHeaders | None = None
        self.response_headers: ResponseHeaders | None = None


class Agent:
    """A policy agent. Override the async handlers you need; the others allow.

    Handlers run concurrently (one asyncio task per event, up to ``max_concurrent_requests``
    per connection), so shared state must tolerate interleaving at ``await`` points.

    The events the agent asks for follow from what it overrides: ``on_request_headers`` is
    always asked for; overriding a body handler asks for that body, and then the default
    headers handler of that phase answers ``continue`` so the body arrives. Set the class
    attribute ``events`` to a set of names to declare them yourself.
    """

    #: ``None``: derived from the overridden handlers.
    events: frozenset[str] | None = None

    async def on_request_headers(self, request: RequestHeaders, ctx: RequestContext) -> Decision:
        """The request's headers: the first event of the request phase."""
        if request.has_body and REQUEST_BODY in self.declared_events():
            return continue_()
        return allow()

    async def on_request_body_chunk(self, chunk: BodyChunk, ctx: RequestContext) -> Decision:
        """One chunk of the request body; answer ``continue_()`` to see the next one."""
        return allow()

    async def on_response_headers(self, response: ResponseHeaders, ctx: RequestContext) -> Decision:
        """The upstream's response headers: the first event of the response phase."""
        if response.has_body and RESPONSE_BODY in self.declared_events():
            return continue_()
        return allow()

    async def on_response_body_chunk(self, chunk: BodyChunk, ctx: RequestContext) -> Decision:
        """One chunk of the response body."""
        return allow()

    async def on_config(self, config: Any) -> None:
        """Pushed configuration (registration and ConfigUpdate); ``None`` means none.

        Called once per distinct value, never concurrently, before the connection that
        brought it serves a request. Raise to refuse it: the agent keeps what it had.
        """

    async def on_cancel(self, cancelled: Cancelled) -> None:
        """The proxy cancelled a request; its running handler has already been cancelled."""

    # -- derived declarations ------------------------------------------------------------
    def declared_events(self) -> frozenset[str]:
        """The event kinds this agent handles."""
        if self.events is not None:
            return frozenset(self.events)
        cls = type(self)
        derived = {REQUEST_HEADERS}
        for kind, name in _HANDLERS.items():
            if getattr(cls, name) is not getattr(Agent, name):
                derived.add(kind)
        if RESPONSE_BODY in derived:
            derived.add(RESPONSE_HEADERS)
        return frozenset(derived)

    def capabilities(self, max_concurrent_requests: int) -> dict[str, Any]:
        """The ``capabilities`` object of the RegistrationRequest."""
        events = self.declared_events()
        bodies = REQUEST_BODY in events or RESPONSE_BODY in events
        return {
            "handles_request_headers": REQUEST_HEADERS in events,
            "handles_request_body": REQUEST_BODY in events,
            "handles_response_headers": RESPONSE_HEADERS in events,
            "handles_response_body": RESPONSE_BODY in events,
            "supports_streaming": bodies,
            "supports_cancellation": True,
            "max_concurrent_requests": max_concurrent_requests,
        }

    def in_response_phase(self) -> bool:
        events = self.declared_events()
        return RESPONSE_HEADERS in events or RESPONSE_BODY in events
