"""The SDK's pure parts: backoff timing, the decision's wire form, event parsing, addresses,
capabilities derived from overridden handlers, and the frame reader's limits."""

import asyncio
import base64

import pytest

from sentinel_agent import (Agent, Backoff, BackoffConfig, BodyChunk, ConfigError, DecodeError,
                            ProtocolError, ProxyAddress, RequestHeaders, RunnerConfig, allow,
                            block, continue_, error, redirect)
from sentinel_agent.protocol import read_frame


def test_backoff_ceilings_double_to_the_maximum_with_full_jitter():
    backoff = Backoff(BackoffConfig(seed=7))
    ceilings, delays = [], []
    for _ in range(40):
        ceilings.append(backoff.ceiling())
        delays.append(backoff.next_delay())
        assert 0 <= delays[-1] < ceilings[-1]
    assert ceilings[:8] == [1, 2, 4, 8, 16, 30, 30, 30]
    at_max = delays[6:]
    assert len(set(at_max)) > 20 and 8 < sum(at_max) / len(at_max) < 22, "full jitter"
    assert all(15 <= backoff.permanent_delay() <= 30 for _ in range(50))
    backoff.connection_ended(uptime=1)
    assert backoff.ceiling() == 30, "a short-lived connection does not reset"
    backoff.connection_ended(uptime=30)
    assert backoff.ceiling() == 1


def test_decisions_on_the_wire():
    assert allow().to_wire(1) == (0x20, {"request_id": 1, "action": "allow"})
    assert block(429, "slow down", {"retry-after": "1"}).rule("r1").tag("t").reason("why").to_wire(2)[1] == {
        "request_id": 2, "action": "block", "status": 429, "body": "slow down",
        "headers": [["retry-after", "1"]],
        "audit": {"tags": ["t"], "rule_ids": ["r1"], "reason": "why"}}
    assert redirect("/login").to_wire(3)[1] == {"request_id": 3, "action": "redirect",
                                                "location": "/login", "status": 302}
    ops = allow().set_request_header("a", "1").add_response_header("b", "2").remove_request_header("c")
    assert ops.to_wire(4)[1]["request_headers"] == [{"op": "set", "name": "a", "value": "1"},
                                                    {"op": "remove", "name": "c"}]
    assert continue_().replace_chunk(b"\x00hi").to_wire(5, "json")[1]["body"] == base64.b64encode(b"\x00hi").decode()
    assert continue_().replace_chunk(b"\x00hi").to_wire(5, "msgpack")[1]["body"] == b"\x00hi"
    assert error("busy", "later").to_wire(6) == (0x22, {"request_id": 6, "code": "busy", "message": "later"})
    with pytest.raises(ValueError):
        block(42)


def test_events_are_parsed_strictly():
    request = RequestHeaders.from_wire({
        "request_id": 42, "method": "POST", "uri": "/login?next=%2F&x=1", "version": "HTTP/1.1",
        "headers": [["Host", "a"], ["cookie", "a=1"], ["cookie", "b=2"], ["authorization", "Bearer tok"]],
        "client_addr": "203.0.113.7:51234", "route": "default", "has_body": True, "future_field": 1})
    assert (request.path, request.query_pairs()) == ("/login", [("next", "/"), ("x", "1")])
    assert request.header("HOST") == "a" and request.header_values("cookie") == ["a=1", "b=2"]
    assert request.bearer_token() == "tok" and request.client_ip == "203.0.113.7"
    assert RequestHeaders.from_wire({"request_id": 1, "method": "GET", "uri": "/",
                                     "client_addr": "[::1]:80"}).client_ip == "::1"
    assert BodyChunk.from_wire({"request_id": 1, "chunk_index": 0, "data": "aGVsbG8=", "is_last": True}).data == b"hello"
    for bad in ({"method": "GET", "uri": "/"}, {"request_id": -1, "method": "GET", "uri": "/"},
                {"request_id": True, "method": "GET", "uri": "/"},
                {"request_id": 1, "method": "GET", "uri": "/", "headers": [["only-name"]]}):
        with pytest.raises(DecodeError):
            RequestHeaders.from_wire(bad)
    with pytest.raises(DecodeError):
        BodyChunk.from_wire({"request_id": 1, "data": "not base64!"})


def test_addresses():
    assert ProxyAddress.parse("unix:/run/a.sock").path == "/run/a.sock"
    tls = ProxyAddress.parse("tls:proxy.internal:9443")
    assert (tls.host, tls.port, tls.is_tls, str(tls)) == ("proxy.internal", 9443, True, "tls:proxy.internal:9443")
    assert ProxyAddress.parse("tcp:[::1]:9090").host == "::1"
    for bad in ("http:x:1", "tcp:host", "tcp:host:0", "unix:", "nothing"):
        with pytest.raises(ValueError):
            ProxyAddress.parse(bad)


def test_capabilities_follow_the_overridden_handlers():
    class HeadersOnly(Agent):
        async def on_request_headers(self, request, ctx):
            return allow()

    class ResponseBodies(Agent):
        async def on_response_body_chunk(self, chunk, ctx):
            return allow()

    headers_only = HeadersOnly().capabilities(10)
    assert headers_only["handles_request_headers"] and not headers_only["handles_request_body"]
    assert not headers_only["supports_streaming"] and headers_only["max_concurrent_requests"] == 10
    bodies = ResponseBodies().capabilities(1)
    assert bodies["handles_response_body"] and bodies["handles_response_headers"] and bodies["supports_streaming"]


def test_config_validation_names_the_problem(monkeypatch):
    config = RunnerConfig(agent_id="bad id", proxies=[ProxyAddress.parse("unix:/x")])
    with pytest.raises(ConfigError, match="agent id"):
        config.validate()
    config = RunnerConfig(agent_id="a", proxies=[ProxyAddress.parse("tls:p:1")])
    with pytest.raises(ConfigError, match="--tls-ca"):
        config.validate()
    monkeypatch.setenv("SECRET_VAR", "hunter2-secret")
    config = RunnerConfig(agent_id="a", proxies=[ProxyAddress.parse("unix:/x")],
                          auth_token=RunnerConfig.token_from_env("SECRET_VAR"))
    assert "hunter2" not in repr(config)
    with pytest.raises(ConfigError, match="SURELY_UNSET_VAR"):
        RunnerConfig.token_from_env("SURELY_UNSET_VAR")


@pytest.mark.parametrize("header, message", [(b"\x00\x00\x00\x00", "length 0"),
                                             (b"\x01\x00\x00\x01", "exceeds the maximum"),
                                             (b"\x00\x00\x00\x05\x10ab", "inside a frame")])
def test_frame_reader_rejects_bad_lengths_before_reading(header, message):
    async def run():
        reader = asyncio.StreamReader()
        reader.feed_data(header)
        reader.feed_eof()
        with pytest.raises(ProtocolError, match=message):
            await read_frame(reader, max_length=1 << 24)

    asyncio.run(run())
