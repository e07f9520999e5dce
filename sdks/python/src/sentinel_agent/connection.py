"""One registered connection, from the RegistrationResponse to its end. A reader task decodes
frames and owns the per-connection state (running handler tasks, request contexts, draining);
each event runs in its own task, at most ``max_concurrent_requests`` at once. This module answers
Ping, applies Cancel/CancelAll, forwards pushed configuration, notices a silent proxy and drains
on GoAway in either direction. It returns why the connection ended; reconnecting is the
runner's job.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import protocol as p
from .agent import REQUEST_BODY, RESPONSE_BODY, Agent, RequestContext
from .decision import BLOCK, CONTINUE, ERROR, REDIRECT, Decision, error
from .events import BodyChunk, Cancelled, RequestHeaders, ResponseHeaders

if TYPE_CHECKING:
    from .config import RunnerConfig
    from .register import Registered
    from .runner import ConfigQueue

log = logging.getLogger("sentinel_agent")

# Why a connection ended.
SHUTDOWN = "shutdown"  # we drained for shutdown
DRAINED = "drained"  # the proxy sent GoAway and then closed
PROXY_CLOSED = "proxy_closed"
PROTOCOL_ERROR = "protocol_error"
SILENT = "silent"
WRITE_FAILED = "write_failed"

_EVENT_TYPES = {
    p.REQUEST_HEADERS: (RequestHeaders, "on_request_headers"),
    p.REQUEST_BODY_CHUNK: (BodyChunk, "on_request_body_chunk"),
    p.RESPONSE_HEADERS: (ResponseHeaders, "on_response_headers"),
    p.RESPONSE_BODY_CHUNK: (BodyChunk, "on_response_body_chunk"),
}
_KNOWN_TYPES = frozenset(_EVENT_TYPES) | {
    p.CANCEL, p.CANCEL_ALL, p.CONFIG_UPDATE, p.GO_AWAY, p.PING, p.PONG,
    p.REGISTRATION_REQUEST, p.REGISTRATION_RESPONSE, p.DECISION, p.REQUEST_ERROR,
}
_WRITE_HIGH_WATER = 256 * 1024

# What happens to a request after its handler answered.
_DONE, _MID_PHASE, _BETWEEN_PHASES = "done", "mid_phase", "between_phases"


@dataclass(frozen=True)
class Disconnect:
    """Why a connection ended: one of the module's reason constants plus a detail."""

    kind: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


class _Slot:
    __slots__ = ("ctx", "mid_phase")

    def __init__(self, ctx: RequestContext | None) -> None:
        self.ctx = ctx  # None while a handler holds it
        self.mid_phase = False


class Connection:
    """Serves one registered connection until it ends."""

    def __init__(self, registered: Registered, agent: Agent, config: RunnerConfig,
                 config_queue: ConfigQueue) -> None:
        self.reader = registered.reader
        self.writer = registered.writer
        self.id = registered.assigned_id
        self.codec = p.Codec(registered.encoding)
        self.heartbeat = registered.heartbeat
        self.pushed_config = registered.config
        self.agent = agent
        self.events = agent.declared_events()
        self.response_phase = agent.in_response_phase()
        self.config = config
        self.config_queue = config_queue
        self.running: dict[int, asyncio.Task] = {}
        self.contexts: OrderedDict[int, _Slot] = OrderedDict()
        self.background: set[asyncio.Task] = set()
        self.drain: str | None = None  # None, "local" or "remote"
        self.barrier: int | None = None  # nonce of the Ping sent after our GoAway
        self.drain_timer: asyncio.TimerHandle | None = None
        self.bad_frames = 0
        self.next_nonce = 1
        self.last_heard = 0.0
        self.write_lock = asyncio.Lock()
        self.outgoing: list[bytes] = []
        self.ended: asyncio.Future | None = None

    async def serve(self, shutdown: asyncio.Event) -> Disconnect:
        loop = asyncio.get_running_loop()
        self.ended = loop.create_future()
        # No request is served before the pushed configuration is in place.
        await self.config_queue.apply(self.pushed_config)
        self.last_heard = loop.time()
        tasks = [asyncio.create_task(self._read_loop()), asyncio.create_task(self._on_shutdown(shutdown))]
        if self.heartbeat:
            tasks.append(asyncio.create_task(self._watch_silence(self.heartbeat * self.config.silent_heartbeats)))
        try:
            reason = await self.ended
        finally:
            for task in tasks:
                task.cancel()
            if self.drain_timer:
                self.drain_timer.cancel()
        self._abandon_all("shutdown" if reason.kind == SHUTDOWN else "connection_lost")
        await self._close()
        return reason

    # -- ending ------------------------------------------------------------------------------
    def _end(self, kind: str, detail: str = "") -> None:
        if self.ended is not None and not self.ended.done():
            self.ended.set_result(Disconnect(kind, detail))

    async def _close(self) -> None:
        self._flush()
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except (OSError, asyncio.TimeoutError, Exception):  # closing a broken socket may fail
            pass

    async def _watch_silence(self, silence: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            quiet = loop.time() - self.last_heard
            if quiet >= silence:
                self._end(SILENT, f"nothing from the proxy for {quiet:.1f} s")
                return
            await asyncio.sleep(silence - quiet)

    # -- reading -----------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await p.read_frame(self.reader, self.config.max_frame_length)
                if frame is None:
                    kind = {None: PROXY_CLOSED, "remote": DRAINED, "local": SHUTDOWN}[self.drain]
                    self._end(kind, "the proxy closed the connection")
                    return
                self.last_heard = loop.time()
                await self._on_frame(*frame)
                if self.ended.done():
                    return
        except p.ProtocolError as e:
            self._end(PROTOCOL_ERROR, str(e))
        except (OSError, ConnectionError) as e:
            self._end(PROXY_CLOSED, f"read failed: {e}")

    async def _on_frame(self, type_byte: int, payload: bytes) -> None:
        if type_byte not in _KNOWN_TYPES:
            log.debug("%s: unknown message type 0x%02x ignored", self.id, type_byte)
            return
        try:
            message = self.codec.decode(payload)
            if type_byte in _EVENT_TYPES:
                kind, handler = _EVENT_TYPES[type_byte]
                event = kind.from_wire(message)
                self.bad_frames = 0
                await self._start(type_byte, event, handler)
                return
            self.bad_frames = 0
            await self._on_control(type_byte, message)
        except p.DecodeError as e:
            self.bad_frames += 1
            log.warning("%s: undecodable frame (type 0x%02x) ignored: %s", self.id, type_byte, e)
            if self.bad_frames >= self.config.max_consecutive_errors:
                self._end(PROTOCOL_ERROR, f"{self.bad_frames} undecodable frames in a row, the last: {e}")

    async def _on_control(self, type_byte: int, message: dict[str, Any]) -> None:
        if type_byte == p.PING:
            await self._send(p.PONG, {"nonce": _int(message, "nonce")})
        elif type_byte == p.PONG:
            if self.barrier is not None and message.get("nonce") == self.barrier:
                self.barrier = None
                self._check_drained()
        elif type_byte == p.CANCEL:
            self._cancel(_int(message, "request_id"), str(message.get("reason", "")))
        elif type_byte == p.CANCEL_ALL:
            log.info("%s: CancelAll (%s)", self.id, message.get("reason", ""))
            self._abandon_all(str(message.get("reason", "")))
        elif type_byte == p.CONFIG_UPDATE:
            self.config_queue.push(message.get("config"))
        elif type_byte == p.GO_AWAY:
            self._on_go_away(message)
        else:
            log.debug("%s: message type 0x%02x not expected from a proxy; ignored", self.id, type_byte)

    # -- events ------------------------------------------------------------------------------
    async def _start(self, type_byte: int, event: Any, handler: str) -> None:
        request_id = event.request_id
        if request_id in self.running:
            await self._reply(request_id, error("busy", "an event of this request is still in progress"))
            return
        if len(self.running) >= self.config.max_concurrent_requests:
            log.warning("%s: more concurrent events than max_concurrent_requests; refusing one", self.id)
            await self._reply(request_id, error("overloaded", "max_concurrent_requests reached"))
            return
        ctx = self._checkout(request_id, fresh=type_byte == p.REQUEST_HEADERS)
        if type_byte == p.REQUEST_HEADERS:
            ctx.request_headers = event
        elif type_byte == p.RESPONSE_HEADERS:
            ctx.response_headers = event
        task = asyncio.create_task(self._run(type_byte, event, handler, ctx))
        self.running[request_id] = task

    async def _run(self, type_byte: int, event: Any, handler: str, ctx: RequestContext) -> None:
        request_id = event.request_id
        try:
            decision = await getattr(self.agent, handler)(event, ctx)
            if not isinstance(decision, Decision):
                raise TypeError(f"{handler} returned {type(decision).__name__}, not a Decision")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: the agent's %s raised; answering with a RequestError", self.id, handler)
            decision = error("internal", f"the agent's {handler} raised an exception")
        if self.running.get(request_id) is not asyncio.current_task():
            return  # cancelled while the answer was on its way
        del self.running[request_id]
        self._checkin(ctx, self._after(type_byte, event, decision))
        await self._reply(request_id, decision)
        self._check_drained()

    def _after(self, type_byte: int, event: Any, decision: Decision) -> str:
        if decision.action in (BLOCK, REDIRECT, ERROR):
            return _DONE
        if type_byte == p.REQUEST_HEADERS:
            last = not event.has_body or REQUEST_BODY not in self.events
        elif type_byte == p.RESPONSE_HEADERS:
            last = not event.has_body or RESPONSE_BODY not in self.events
        else:
            last = event.is_last
        if decision.action == CONTINUE and not last:
            return _MID_PHASE
        if type_byte in (p.REQUEST_HEADERS, p.REQUEST_BODY_CHUNK) and self.response_phase:
            return _BETWEEN_PHASES
        return _DONE

    def _checkout(self, request_id: int, fresh: bool) -> RequestContext:
        slot = self.contexts.get(request_id)
        if slot is not None:
            self.contexts.move_to_end(request_id)
            ctx, slot.ctx = slot.ctx, None
            if ctx is not None and not fresh:
                return ctx
        else:
            self._evict_if_full()
            self.contexts[request_id] = _Slot(None)
        return RequestContext(request_id, self.id)

    def _checkin(self, ctx: RequestContext, after: str) -> None:
        if after == _DONE:
            self.contexts.pop(ctx.request_id, None)
            return
        slot = self.contexts.get(ctx.request_id)
        if slot is not None:
            slot.ctx = ctx
            slot.mid_phase = after == _MID_PHASE

    def _evict_if_full(self) -> None:
        if len(self.contexts) < self.config.max_tracked_requests:
            return
        oldest_idle = next((rid for rid, slot in self.contexts.items() if slot.ctx is not None), None)
        if oldest_idle is not None:
            log.debug("%s: request %d forgotten: too many open requests", self.id, oldest_idle)
            del self.contexts[oldest_idle]

    # -- cancellation ----------------------------------------------------------------------
    def _cancel(self, request_id: int, reason: str) -> None:
        task = self.running.pop(request_id, None)
        if task is not None:
            task.cancel()
        known = self.contexts.pop(request_id, None) is not None
        if task is None and not known:
            log.debug("%s: Cancel for unknown or finished request %d", self.id, request_id)
            return
        log.debug("%s: request %d cancelled (%s)", self.id, request_id, reason)
        self._spawn(self.agent.on_cancel(Cancelled(self.id, request_id, reason)))
        self._check_drained()

    def _abandon_all(self, reason: str) -> None:
        for request_id in sorted(set(self.running) | set(self.contexts)):
            self._cancel(request_id, reason)

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(_logged(coroutine, self.id))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # -- draining ----------------------------------------------------------------------------
    def _on_go_away(self, message: dict[str, Any]) -> None:
        grace_ms = message.get("grace_ms")
        grace = grace_ms / 1000 if isinstance(grace_ms, int) and grace_ms > 0 else self.config.drain_grace
        log.info("%s: the proxy sent GoAway (%s); finishing %d in-flight requests within %.1f s",
                 self.id, message.get("reason", ""), len(self.running), grace)
        if self.drain is None:
            self.drain = "remote"
        self._arm_drain_timer(grace)

    async def _on_shutdown(self, shutdown: asyncio.Event) -> None:
        await shutdown.wait()
        grace = self.config.drain_grace
        nonce = self.next_nonce
        self.next_nonce += 1
        log.info("%s: sending GoAway; %d requests in flight", self.id, len(self.running))
        self.drain, self.barrier = "local", nonce
        self._arm_drain_timer(grace)
        await self._send(p.GO_AWAY, {"reason": "shutdown", "grace_ms": int(grace * 1000)})
        await self._send(p.PING, {"nonce": nonce})

    def _arm_drain_timer(self, grace: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self.drain_timer is not None:
            deadline = min(deadline, self.drain_timer.when())
            self.drain_timer.cancel()
        self.drain_timer = loop.call_at(deadline, self._grace_over)

    def _grace_over(self) -> None:
        if self.running:
            log.warning("%s: grace period over; abandoning %d requests in progress", self.id, len(self.running))
        self._end(SHUTDOWN if self.drain == "local" else DRAINED, "grace period over")

    def _check_drained(self) -> None:
        if (self.drain == "local" and self.barrier is None and not self.running
                and not any(slot.mid_phase for slot in self.contexts.values())):
            self._end(SHUTDOWN, "drained")

    # -- writing -----------------------------------------------------------------------------
    async def _reply(self, request_id: int, decision: Decision) -> None:
        type_byte, message = decision.to_wire(request_id, self.codec.encoding)
        await self._send(type_byte, message)

    async def _send(self, type_byte: int, message: dict[str, Any]) -> None:
        if self.writer.is_closing():
            self._end(WRITE_FAILED, "the connection is closed")
            return
        try:
            payload = self.codec.encode(message)
        except (TypeError, ValueError) as e:
            log.error("%s: cannot encode message type 0x%02x: %s", self.id, type_byte, e)
            return
        # Frames produced in one turn of the event loop go out in one write (one syscall).
        self.outgoing.append(p.encode_frame(type_byte, payload))
        if len(self.outgoing) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        if self.writer.transport.get_write_buffer_size() > _WRITE_HIGH_WATER:
            try:
                async with self.write_lock:
                    await asyncio.wait_for(self.writer.drain(), self.config.write_timeout)
            except asyncio.TimeoutError:
                self._end(WRITE_FAILED, f"a write blocked for {self.config.write_timeout:g} s")
            except (OSError, ConnectionError) as e:
                self._end(WRITE_FAILED, str(e))

    def _flush(self) -> None:
        if self.outgoing and not self.writer.is_closing():
            self.writer.write(b"".join(self.outgoing))
        self.outgoing.clear()


def _int(message: dict[str, Any], name: str) -> int:
    value = message.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise p.DecodeError(f"field `{name}` must be an unsigned integer")
    return value


async def _logged(coroutine, connection_id: str) -> None:
    try:
        await coroutine
    except Exception:
        log.exception("%s: on_cancel raised", connection_id)
