"""The runner against a fake proxy: a small asyncio Unix-socket server in the test that speaks
raw frames (its own struct-based framing, not the SDK's), for what the real proxy never sends:
malformed frames, a silent proxy, more events than ``max_concurrent_requests``, MessagePack
body chunks. The runner runs in this process, so the test can watch it stay alive.
"""

import asyncio
import json
import logging
import struct

import msgpack

from sentinel_agent import Agent, BackoffConfig, ProxyAddress, Runner, RunnerConfig, allow, continue_

LIMIT = 10.0  # seconds any single step may take


class FakeProxy:
    """Accepts connections, answers the registration, then runs the next script."""

    def __init__(self, path, scripts, heartbeat_ms=0, encoding="json"):
        self.path, self.scripts = str(path), list(scripts)
        self.heartbeat_ms, self.encoding = heartbeat_ms, encoding
        self.registrations = []
        self.done = []  # what each script returned, in order
        self.server = None

    async def start(self):
        self.server = await asyncio.start_unix_server(self._accept, self.path)

    async def close(self):
        self.server.close()

    async def _accept(self, reader, writer):
        try:
            type_byte, payload = await read(reader)
            assert type_byte == 0x01
            self.registrations.append(json.loads(payload))
            send(writer, 0x02, {"accepted": True, "assigned_id": f"fake-conn-{len(self.registrations)}",
                                "config": None, "encoding": self.encoding,
                                "heartbeat_interval_ms": self.heartbeat_ms}, "json")
            if not self.scripts:
                await reader.read()  # nothing left to do: hold the connection
                return
            script = self.scripts.pop(0)
            self.done.append(await asyncio.wait_for(script(reader, writer), LIMIT))
        except Exception as e:  # surfaced through `done`
            self.done.append(e)
        finally:
            writer.close()


def encode(message, encoding):
    if encoding == "msgpack":
        return msgpack.packb(message, use_bin_type=True)
    return json.dumps(message).encode()


def send(writer, type_byte, message, encoding="json"):
    payload = encode(message, encoding)
    writer.write(struct.pack(">IB", len(payload) + 1, type_byte) + payload)


def send_raw(writer, type_byte, payload: bytes):
    writer.write(struct.pack(">IB", len(payload) + 1, type_byte) + payload)


async def read(reader):
    (length,) = struct.unpack(">I", await reader.readexactly(4))
    body = await reader.readexactly(length)
    return body[0], body[1:]


async def read_until(reader, type_byte, encoding="json"):
    """The next frame of ``type_byte``, decoded (others are skipped)."""
    while True:
        got, payload = await read(reader)
        if got == type_byte:
            return json.loads(payload) if encoding == "json" else msgpack.unpackb(payload, raw=False)


async def closed_by_agent(reader) -> bool:
    """Whether the agent closes the connection (EOF) while we wait."""
    while await reader.read(65536):
        pass
    return True


def headers_event(request_id, has_body=False):
    return {"request_id": request_id, "method": "GET", "uri": "/x", "version": "HTTP/1.1",
            "headers": [["host", "fake"]], "client_addr": "127.0.0.1:1", "route": "r",
            "has_body": has_body}


def config_for(path, **changes) -> RunnerConfig:
    config = RunnerConfig(agent_id="fake-agent", proxies=[ProxyAddress.parse(f"unix:{path}")],
                          connections_per_proxy=1, drain_grace=0.5, encodings=["json"],
                          backoff=BackoffConfig(initial=0.05, maximum=0.2, seed=1))
    for name, value in changes.items():
        setattr(config, name, value)
    return config


async def run_against(proxy, agent, config, until, observer=None):
    """Runs the runner until ``until()`` holds, checking it is alive; then shuts it down."""
    await proxy.start()
    shutdown = asyncio.Event()
    runner = asyncio.create_task(Runner(agent, config, observer).run(shutdown))
    try:
        deadline = asyncio.get_running_loop().time() + LIMIT
        while not until():
            assert not runner.done(), f"the runner stopped: {runner.exception()!r}"
            assert asyncio.get_running_loop().time() < deadline, f"timed out; scripts gave {proxy.done}"
            await asyncio.sleep(0.02)
        assert not runner.done(), "the runner is still alive"
    finally:
        shutdown.set()
        await asyncio.wait_for(runner, LIMIT)
        await proxy.close()


def test_malformed_frames_give_a_clear_error_not_a_crash(tmp_path, caplog):
    async def unknown_type_then_garbage(reader, writer):
        send_raw(writer, 0x77, b"\x00\x01 a type from the future")
        send(writer, 0xF0, {"nonce": 5})
        pong = await read_until(reader, 0xF1)
        assert pong == {"nonce": 5}, "the unknown type was skipped and the Ping still answered"
        for _ in range(3):
            send_raw(writer, 0x10, b"{this is not json")
        return await closed_by_agent(reader)

    async def hostile_length(reader, writer):
        writer.write(struct.pack(">I", 0xFFFFFFFF) + b"\x10")
        return await closed_by_agent(reader)

    async def zero_length(reader, writer):
        writer.write(struct.pack(">I", 0))
        return await closed_by_agent(reader)

    async def then_a_good_request(reader, writer):
        send(writer, 0x10, headers_event(9))
        return await read_until(reader, 0x20)

    scripts = [unknown_type_then_garbage, hostile_length, zero_length, then_a_good_request]
    proxy = FakeProxy(tmp_path / "fake.sock", scripts)
    caplog.set_level(logging.INFO, logger="sentinel_agent")
    asyncio.run(run_against(proxy, Agent(), config_for(proxy.path), lambda: len(proxy.done) == 4))

    assert proxy.done[:3] == [True, True, True], proxy.done
    assert proxy.done[3] == {"request_id": 9, "action": "allow"}
    assert len(proxy.registrations) >= 4, "the runner reconnected after each bad connection"
    text = caplog.text
    assert "3 undecodable frames in a row" in text
    assert "frame length 4294967295 exceeds the maximum 16777216" in text
    assert "frame length 0" in text
    assert "Traceback" not in text


def test_a_silent_proxy_is_left_and_replaced(tmp_path, caplog):
    async def silent(reader, writer):
        return await closed_by_agent(reader)  # never sends anything

    proxy = FakeProxy(tmp_path / "fake.sock", [silent], heartbeat_ms=100)
    caplog.set_level(logging.INFO, logger="sentinel_agent")
    asyncio.run(run_against(proxy, Agent(), config_for(proxy.path), lambda: len(proxy.registrations) >= 2))
    assert proxy.done[0] is True
    assert "nothing from the proxy" in caplog.text


class Gate(Agent):
    """Holds every request until released; records cancellations."""

    def __init__(self):
        self.release = None
        self.running = set()
        self.cancelled = []
        self.finished = set()

    async def on_request_headers(self, request, ctx):
        self.running.add(request.request_id)
        await self.release.wait()
        self.finished.add(request.request_id)
        return allow().set_request_header("x-gate", "open")

    async def on_cancel(self, cancelled):
        self.cancelled.append((cancelled.request_id, cancelled.reason))


def test_concurrency_limit_and_cancel(tmp_path):
    agent = Gate()

    async def script(reader, writer):
        agent.release = asyncio.Event()
        for request_id in (1, 2, 3):
            send(writer, 0x10, headers_event(request_id))
        refused = await read_until(reader, 0x22)
        assert refused["request_id"] == 3 and refused["code"] == "overloaded"
        while agent.running != {1, 2}:  # both run at once on one connection
            await asyncio.sleep(0.01)
        send(writer, 0x30, {"request_id": 1, "reason": "client_disconnected"})
        while not agent.cancelled:
            await asyncio.sleep(0.01)
        agent.release.set()
        decision = await read_until(reader, 0x20)
        send(writer, 0xF0, {"nonce": 1})
        await read_until(reader, 0xF1)  # anything for request 1 would have come before this
        return decision

    proxy = FakeProxy(tmp_path / "fake.sock", [script])
    config = config_for(proxy.path, max_concurrent_requests=2)
    asyncio.run(run_against(proxy, agent, config, lambda: proxy.done))
    assert proxy.done[0] == {"request_id": 2, "action": "allow",
                             "request_headers": [{"op": "set", "name": "x-gate", "value": "open"}]}
    assert agent.cancelled == [(1, "client_disconnected")]
    assert agent.finished == {2}, "the cancelled handler was stopped, not just ignored"
    capabilities = proxy.registrations[0]["capabilities"]
    assert capabilities["max_concurrent_requests"] == 2
    assert capabilities["supports_cancellation"] and not capabilities["handles_request_body"]


def test_a_request_in_flight_when_the_proxy_sends_goaway_is_still_answered(tmp_path):
    agent = Gate()

    async def script(reader, writer):
        agent.release = asyncio.Event()
        send(writer, 0x10, headers_event(7))
        while agent.running != {7}:
            await asyncio.sleep(0.01)
        send(writer, 0x41, {"reason": "shutdown", "grace_ms": 5000})
        await asyncio.sleep(0.1)
        agent.release.set()
        return await read_until(reader, 0x20)  # then the script ends and closes the connection

    seen = []
    proxy = FakeProxy(tmp_path / "fake.sock", [script])
    asyncio.run(run_against(proxy, agent, config_for(proxy.path), lambda: len(proxy.registrations) >= 2,
                            observer=lambda kind, fields: seen.append((kind, fields.get("reason")))))
    assert proxy.done[0]["request_id"] == 7, "answered after the GoAway"
    assert ("disconnected", "drained") in seen, "closed after a GoAway is a drain, and it reconnected"


class Upper(Agent):
    async def on_request_body_chunk(self, chunk, ctx):
        ctx.state["seen"] = ctx.state.get("seen", 0) + len(chunk.data)
        reply = allow() if chunk.is_last else continue_()
        return reply.replace_chunk(chunk.data.upper()).set_request_header("x-seen", str(ctx.state["seen"]))


def test_msgpack_body_chunks_and_derived_capabilities(tmp_path):
    async def script(reader, writer):
        send(writer, 0x10, headers_event(4, has_body=True), "msgpack")
        first = await read_until(reader, 0x20, "msgpack")
        send(writer, 0x11, {"request_id": 4, "chunk_index": 0, "data": b"abc", "is_last": False}, "msgpack")
        second = await read_until(reader, 0x20, "msgpack")
        send(writer, 0x11, {"request_id": 4, "chunk_index": 1, "data": b"\xffz", "is_last": True}, "msgpack")
        third = await read_until(reader, 0x20, "msgpack")
        return first, second, third

    proxy = FakeProxy(tmp_path / "fake.sock", [script], encoding="msgpack")
    config = config_for(proxy.path, encodings=["msgpack", "json"])
    asyncio.run(run_against(proxy, Upper(), config, lambda: proxy.done))
    first, second, third = proxy.done[0]
    assert first == {"request_id": 4, "action": "continue"}, "the default headers handler asks for the body"
    assert second["action"] == "continue" and second["body"] == b"ABC"
    assert third["action"] == "allow" and third["body"] == b"\xffZ", "raw bin, not base64"
    assert third["request_headers"] == [{"op": "set", "name": "x-seen", "value": "5"}], "state kept per request"
    registration = proxy.registrations[0]
    assert registration["encodings"] == ["msgpack", "json"]
    assert registration["capabilities"]["handles_request_body"] is True
    assert registration["capabilities"]["supports_streaming"] is True
