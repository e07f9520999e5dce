"""``Runner``: keeps ``connections_per_proxy`` registered connections to every configured proxy.
Each slot is a task that dials, registers, serves until the connection ends and starts over
after a backoff delay: full jitter for transient failures, near the maximum after a permanent
refusal, reset once a connection stayed up. Pushed configuration goes through one
``ConfigQueue`` so the agent sees each value once. SIGTERM/SIGINT drain every connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from typing import Any, Callable

from .address import ProxyAddress
from .agent import Agent
from .backoff import Backoff, BackoffConfig
from .config import SDK_VERSION, RunnerConfig
from .connection import DRAINED, PROTOCOL_ERROR, SHUTDOWN, Connection, Disconnect
from .protocol import PROTOCOL_VERSION
from .register import RegistrationError, Rejected, register

log = logging.getLogger("sentinel_agent")

#: Observer of runner events: ``observer(kind, fields)``; kinds: connecting, registered,
#: refused, failed, disconnected, backoff, config_applied, config_rejected, stopped.
Observer = Callable[[str, dict[str, Any]], None]


class ConfigQueue:
    """Feeds pushed configuration to ``Agent.on_config`` in order, once per distinct value,
    never concurrently. Every connection of the runner shares one queue."""

    def __init__(self, agent: Agent, notify: Callable[[str, dict[str, Any]], None]) -> None:
        self.agent = agent
        self.notify = notify
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=64)
        self.current: Any = None  # "no configuration": the agent's own defaults
        self.worker: asyncio.Task | None = None

    def start(self) -> None:
        self.worker = asyncio.create_task(self._work())

    async def apply(self, config: Any) -> None:
        """Queues ``config`` and waits until the agent has seen it."""
        done = asyncio.get_running_loop().create_future()
        await self.queue.put((config, done))
        await done

    def push(self, config: Any) -> None:
        """Queues ``config`` without waiting (ConfigUpdate); drops it if 64 are pending."""
        try:
            self.queue.put_nowait((config, None))
        except asyncio.QueueFull:
            log.warning("pushed configuration dropped: 64 updates already waiting")

    async def _work(self) -> None:
        while True:
            config, done = await self.queue.get()
            try:
                if config != self.current:
                    # A refused value is not offered again until it changes: retrying cannot help.
                    self.current = config
                    await self._apply(config)
            except Exception:  # an observer that raises must not stop the queue
                log.exception("error while applying pushed configuration")
            finally:
                if done is not None and not done.done():
                    done.set_result(None)


    async def _apply(self, config: Any) -> None:
        try:
            await self.agent.on_config(config)
        except Exception as e:
            log.warning("pushed configuration refused, keeping the previous one: %s", e)
            self.notify("config_rejected", {"error": str(e)})
            return
        log.info("pushed configuration applied")
        self.notify("config_applied", {"config": config})


class Runner:
    """Runs an agent: connects, registers, serves, reconnects, drains."""

    def __init__(self, agent: Agent, config: RunnerConfig, observer: Observer | None = None) -> None:
        config.validate()
        self.agent = agent
        self.config = config
        self.observer = observer
        self.tls = config.tls.context() if any(p.is_tls for p in config.proxies) else None
        self.request = registration_request(agent, config)

    def _notify(self, kind: str, fields: dict[str, Any]) -> None:
        if self.observer is not None:
            self.observer(kind, fields)

    async def run(self, shutdown: asyncio.Event) -> None:
        """Runs until ``shutdown`` is set, then drains every connection and returns."""
        config = self.config
        queue = ConfigQueue(self.agent, self._notify)
        queue.start()
        log.info("agent starting: agent_id=%s proxies=%d connections_per_proxy=%d",
                 config.agent_id, len(config.proxies), config.connections_per_proxy)
        slots = []
        index = 0
        for proxy in config.proxies:
            for slot in range(config.connections_per_proxy):
                seed = None if config.backoff.seed is None else config.backoff.seed + index
                backoff = Backoff(BackoffConfig(config.backoff.initial, config.backoff.maximum,
                                                config.backoff.reset_after, seed))
                index += 1
                slots.append(asyncio.create_task(self._run_slot(proxy, slot, backoff, queue, shutdown)))
        try:
            await asyncio.gather(*slots)
        finally:
            for task in slots:
                task.cancel()
            if queue.worker:
                queue.worker.cancel()
        log.info("agent stopped: agent_id=%s", config.agent_id)

    async def _run_slot(self, proxy: ProxyAddress, slot: int, backoff: Backoff,
                        queue: ConfigQueue, shutdown: asyncio.Event) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        while not shutdown.is_set():
            self._notify("connecting", {"proxy": str(proxy), "slot": slot})
            permanent = False
            try:
                registered = await _until(shutdown, register(
                    proxy, self.request, config.registration_timeout, config.max_frame_length,
                    self.tls, config.tls.server_name))
                if registered is None:
                    break
            except RegistrationError as e:
                permanent = e.permanent
                _log_failure(proxy, slot, e)
                self._notify("refused" if isinstance(e, Rejected) else "failed", {
                    "proxy": str(proxy), "slot": slot, "error": str(e), "permanent": permanent,
                    "code": e.code if isinstance(e, Rejected) else None})
            else:
                log.info("registered: proxy=%s slot=%d assigned_id=%s encoding=%s",
                         proxy, slot, registered.assigned_id, registered.encoding)
                self._notify("registered", {"proxy": str(proxy), "slot": slot,
                                            "assigned_id": registered.assigned_id,
                                            "encoding": registered.encoding})
                since = loop.time()
                try:
                    reason = await Connection(registered, self.agent, config, queue).serve(shutdown)
                except Exception as e:  # a bug must cost one connection, not the agent
                    log.exception("proxy=%s slot=%d: connection failed unexpectedly", proxy, slot)
                    registered.writer.close()
                    reason = Disconnect(PROTOCOL_ERROR, f"unexpected error: {e}")
                uptime = loop.time() - since
                _log_disconnect(proxy, registered.assigned_id, reason)
                self._notify("disconnected", {"proxy": str(proxy), "slot": slot,
                                              "assigned_id": registered.assigned_id,
                                              "reason": reason.kind, "detail": reason.detail,
                                              "uptime": uptime})
                if reason.kind == SHUTDOWN or shutdown.is_set():
                    break
                backoff.connection_ended(uptime)
            if permanent:
                delay, ceiling = backoff.permanent_delay(), config.backoff.maximum
            else:
                ceiling = backoff.ceiling()
                delay = backoff.next_delay()
            log.debug("proxy=%s slot=%d: next attempt in %.2f s", proxy, slot, delay)
            self._notify("backoff", {"proxy": str(proxy), "slot": slot, "delay": delay,
                                     "ceiling": ceiling, "permanent": permanent})
            try:
                await asyncio.wait_for(shutdown.wait(), delay)
            except asyncio.TimeoutError:
                pass
        self._notify("stopped", {"proxy": str(proxy), "slot": slot})

    async def run_until_signal(self) -> None:
        """``run`` until SIGTERM or SIGINT."""
        shutdown = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _on_signal, signum, shutdown)
        try:
            await self.run(shutdown)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)


def _on_signal(signum: int, shutdown: asyncio.Event) -> None:
    log.info("%s received: draining", signal.Signals(signum).name)
    shutdown.set()


async def _until(shutdown: asyncio.Event, coroutine):
    """Awaits ``coroutine``; ``None`` if ``shutdown`` is set first (the coroutine is cancelled)."""
    work = asyncio.ensure_future(coroutine)
    stop = asyncio.ensure_future(shutdown.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if work.done():
        return work.result()
    work.cancel()
    try:
        result = await work
        result.writer.close()  # registered just as we stopped
    except (asyncio.CancelledError, RegistrationError):
        pass
    return None


def registration_request(agent: Agent, config: RunnerConfig) -> dict[str, Any]:
    """The RegistrationRequest every connection sends; capabilities follow from the agent."""
    metadata = {
        "version": config.version,
        "hostname": socket.gethostname() or "unknown",
        "pid": os.getpid(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sdk": f"sentinel-agent-python/{SDK_VERSION}",
    }
    metadata.update(config.metadata)
    request: dict[str, Any] = {
        "protocol_version": PROTOCOL_VERSION,
        "agent_id": config.agent_id,
        "capabilities": agent.capabilities(config.max_concurrent_requests),
        "metadata": metadata,
        "encodings": list(config.encodings),
    }
    if config.auth_token:
        request["auth_token"] = config.auth_token
    return request


def _log_failure(proxy: ProxyAddress, slot: int, error: RegistrationError) -> None:
    if error.permanent:
        log.error("proxy=%s slot=%d: registration refused for good: %s. Retrying cannot fix this: "
                  "check the agent id, its token and the proxy's allowed agents. Trying again only "
                  "after the maximum backoff delay", proxy, slot, error)
    elif isinstance(error, Rejected):
        log.warning("proxy=%s slot=%d: registration failed, will retry: %s", proxy, slot, error)
    else:
        log.info("proxy=%s slot=%d: proxy unreachable: %s", proxy, slot, error)


def _log_disconnect(proxy: ProxyAddress, assigned_id: str, reason: Disconnect) -> None:
    if reason.kind == SHUTDOWN:
        log.info("proxy=%s %s: connection closed for shutdown", proxy, assigned_id)
    elif reason.kind == DRAINED:
        log.info("proxy=%s %s: connection drained at the proxy's request; reconnecting", proxy, assigned_id)
    else:
        log.warning("proxy=%s %s: connection lost (%s); reconnecting", proxy, assigned_id, reason)
