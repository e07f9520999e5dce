"""What an agent answers (PROTOCOL.md §4): a ``Decision`` built with the helpers ``allow()``,
``block()``, ``deny()``, ``redirect()``, ``continue_()`` and ``error()``, chained with header
operations, chunk replacement and the audit record. This module turns a decision into the wire
dict of a Decision (0x20) or RequestError (0x22); it does not send anything.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from .protocol import DECISION, JSON, REQUEST_ERROR

ALLOW = "allow"
BLOCK = "block"
REDIRECT = "redirect"
CONTINUE = "continue"
ERROR = "error"  # not an action on the wire: becomes a RequestError


@dataclass
class Decision:
    """One verdict. Build it with the module's helpers; every method returns ``self``."""

    action: str = ALLOW
    status: int | None = None
    location: str | None = None
    block_body: str | None = None
    block_headers: list[tuple[str, str]] = field(default_factory=list)
    request_headers: list[dict[str, str]] = field(default_factory=list)
    response_headers: list[dict[str, str]] = field(default_factory=list)
    replacement: bytes | None = None
    tags: list[str] = field(default_factory=list)
    rule_ids: list[str] = field(default_factory=list)
    audit_reason: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def is_final(self) -> bool:
        """Anything but ``continue`` ends the current phase."""
        return self.action != CONTINUE

    # -- header operations -------------------------------------------------------------
    def set_request_header(self, name: str, value: str) -> Decision:
        self.request_headers.append({"op": "set", "name": name, "value": value})
        return self

    def add_request_header(self, name: str, value: str) -> Decision:
        self.request_headers.append({"op": "add", "name": name, "value": value})
        return self

    def remove_request_header(self, name: str) -> Decision:
        self.request_headers.append({"op": "remove", "name": name})
        return self

    def set_response_header(self, name: str, value: str) -> Decision:
        self.response_headers.append({"op": "set", "name": name, "value": value})
        return self

    def add_response_header(self, name: str, value: str) -> Decision:
        self.response_headers.append({"op": "add", "name": name, "value": value})
        return self

    def remove_response_header(self, name: str) -> Decision:
        self.response_headers.append({"op": "remove", "name": name})
        return self

    # -- block details, bodies, audit ----------------------------------------------------
    def with_body(self, text: str) -> Decision:
        """The response text of a block."""
        self.block_body = text
        return self

    def with_block_header(self, name: str, value: str) -> Decision:
        """A header on the response of a block (e.g. ``retry-after``)."""
        self.block_headers.append((name, value))
        return self

    def replace_chunk(self, data: bytes) -> Decision:
        """On an allow/continue answer to a body chunk: forward ``data`` instead."""
        self.replacement = bytes(data)
        return self

    def rule(self, rule_id: str) -> Decision:
        self.rule_ids.append(rule_id)
        return self

    def tag(self, tag: str) -> Decision:
        self.tags.append(tag)
        return self

    def reason(self, text: str) -> Decision:
        self.audit_reason = text
        return self

    # -- wire ------------------------------------------------------------------------------
    def to_wire(self, request_id: int, encoding: str = JSON) -> tuple[int, dict[str, Any]]:
        """The message type and payload dict answering request ``request_id``."""
        if self.action == ERROR:
            return REQUEST_ERROR, {
                "request_id": request_id,
                "code": self.error_code or "internal",
                "message": self.error_message or "",
            }
        message: dict[str, Any] = {"request_id": request_id, "action": self.action}
        if self.action == BLOCK:
            message["status"] = self.status or 403
            if self.block_body is not None:
                message["body"] = self.block_body
            if self.block_headers:
                message["headers"] = [list(pair) for pair in self.block_headers]
        elif self.action == REDIRECT:
            message["location"] = self.location
            message["status"] = self.status or 302
        elif self.replacement is not None:
            message["body"] = (
                self.replacement
                if encoding != JSON
                else base64.b64encode(self.replacement).decode("ascii")
            )
        if self.request_headers:
            message["request_headers"] = self.request_headers
        if self.response_headers:
            message["response_headers"] = self.response_headers
        if self.tags or self.rule_ids or self.audit_reason is not None:
            audit: dict[str, Any] = {"tags": self.tags, "rule_ids": self.rule_ids}
            if self.audit_reason is not None:
                audit["reason"] = self.audit_reason
            message["audit"] = audit
        return DECISION, message


def allow() -> Decision:
    """Proceed; this agent is done with the current phase."""
    return Decision(ALLOW)


def continue_() -> Decision:
    """No verdict yet: send the next event of this phase (the next body chunk)."""
    return Decision(CONTINUE)


def block(status: int = 403, body: str | None = None, headers: dict[str, str] | None = None) -> Decision:
    """Answer the client with ``status`` (and ``body``/``headers``) instead of the upstream."""
    if not 100 <= status <= 999:
        raise ValueError(f"block status {status} is not an HTTP status")
    decision = Decision(BLOCK, status=status, block_body=body)
    for name, value in (headers or {}).items():
        decision.with_block_header(name, value)
    return decision


def deny() -> Decision:
    """``block(403)``."""
    return block(403)


def redirect(location: str, status: int = 302) -> Decision:
    """Answer the client with a redirect to ``location``."""
    return Decision(REDIRECT, status=status, location=location)


def error(code: str, message: str) -> Decision:
    """I could not decide: the proxy applies this agent's failure mode (a RequestError)."""
    return Decision(ERROR, error_code=code, error_message=message)
