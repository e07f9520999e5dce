"""Registration with pushed configuration and decisions applied to real HTTP requests through
the real proxy, over a Unix socket and TCP, in JSON and MessagePack, to one or several proxies.
"""

import pytest

from conftest import eventually, route_to

ENCODINGS = ["json", "msgpack"]


def test_denylist_registers_gets_pushed_config_and_decides(start_sentinel, start_agent):
    proxy = start_sentinel(route_to("deny", "denylist-*", config=(
        'deny_addresses "198.51.100.0/24"; deny_header "x-api-key"; '
        'deny_values "leaked-1" "leaked-2"; limit 3; window_ms 60000')))
    agent = start_agent("sentinel_agent.examples.denylist", proxy.unix_addr, "denylist-1",
                        "--connections", "3")
    connections = proxy.wait_for_connections("denylist-1", 3, agent)
    assert {c["transport"] for c in connections} == {"uds"}
    listed = next(a for a in proxy.agents() if a["agent_id"] == "denylist-1")
    assert listed["metadata"]["sdk"].startswith("sentinel-agent-python/")
    assert listed["metadata"]["pid"] == agent.pid
    assert agent.log().count("pushed configuration applied") == 1, "once, not once per connection"

    allowed = proxy.get("/shop")
    assert allowed.status == 200
    assert allowed.upstream_saw("x-denylist") == ["allowed"]
    denied = proxy.get("/shop", {"x-api-key": "leaked-2"})
    assert (denied.status, denied.body) == (403, b"denied\n")
    # The limit counts the requests that passed the denylists, per key (the client address):
    # one so far, so two more pass and the fourth is over the limit.
    assert [proxy.get("/shop").status for _ in range(2)] == [200, 200]
    limited = proxy.get("/shop")
    assert limited.status == 429
    assert int(limited.header("retry-after")) >= 1


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_decisions_apply_to_real_requests(start_sentinel, start_agent, encoding, transport):
    proxy = start_sentinel(route_to("probe", "probe-*"))
    address = proxy.unix_addr if transport == "unix" else proxy.tcp_addr
    agent = start_agent("probe_agent", address, "probe-1", "--connections", "2", "--encoding", encoding)
    connections = proxy.wait_for_connections("probe-1", 2, agent)
    assert {c["encoding"] for c in connections} == {encoding}
    assert {c["transport"] for c in connections} == {"uds" if transport == "unix" else "tcp"}

    allowed = proxy.get("/hello", {"x-secret": "s3cret"})
    assert allowed.status == 200
    assert allowed.upstream_saw("x-probe") == ["probe-1"]
    assert allowed.upstream_saw("x-secret") == [], "remove op applied upstream"
    assert allowed.header("x-probe-response") == "yes"

    blocked = proxy.get("/block")
    assert (blocked.status, blocked.body) == (451, b"blocked by probe\n")
    assert blocked.header("x-probe") == "blocked"

    redirected = proxy.get("/redirect")
    assert (redirected.status, redirected.header("location")) == (307, "/elsewhere")

    failed = proxy.get("/raise")
    assert failed.status == 503, "a raising handler is a RequestError: failure-mode closed"
    assert "probe handler failure" in agent.log()
    assert proxy.get("/hello").status == 200, "the connection survived the handler's exception"


def test_one_agent_serves_several_proxies(start_sentinel, start_agent):
    first = start_sentinel(route_to("probe", "probe-*"))
    second = start_sentinel(route_to("probe", "probe-*"))
    agent = start_agent("probe_agent", [first.unix_addr, second.tcp_addr], "probe-multi",
                        "--connections", "2")
    first.wait_for_connections("probe-multi", 2, agent)
    second.wait_for_connections("probe-multi", 2, agent)
    assert first.get("/a").upstream_saw("x-probe") == ["probe-multi"]
    assert second.get("/b").upstream_saw("x-probe") == ["probe-multi"]


def test_config_update_reaches_on_config(start_sentinel, start_agent):
    proxy = start_sentinel(route_to("probe", "probe-*", config='level "low"'))
    agent = start_agent("probe_agent", proxy.unix_addr, "probe-cfg", "--connections", "2")
    proxy.wait_for_connections("probe-cfg", 2, agent)
    eventually("the registration config", lambda: 'config {"level": "low"}' in agent.log())
    proxy.write_config(route_to("probe", "probe-*", config='level "high"; lists "a" "b"'))
    proxy.process.signal(1)  # SIGHUP: reload
    eventually("the ConfigUpdate", lambda: 'config {"level": "high", "lists": ["a", "b"]}' in agent.log())
    assert agent.log().count("config {") == 2, "each distinct configuration applied once"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_body_chunks_can_be_rewritten(start_sentinel, start_agent, encoding):
    proxy = start_sentinel(route_to("probe", "probe-*", events='"request_headers" "request_body"'))
    agent = start_agent("probe_agent", proxy.unix_addr, "probe-body", "--connections", "1",
                        "--encoding", encoding)
    proxy.wait_for_connections("probe-body", 1, agent)
    reply = proxy.post("/upper", b"hello body")
    assert reply.status == 200
    assert reply.echo()["body"] == "HELLO BODY"
    assert proxy.post("/plain", b"left alone").echo()["body"] == "left alone"


def test_a_refused_configuration_keeps_the_previous_one(start_sentinel, start_agent):
    proxy = start_sentinel(route_to("deny", "denylist-*", config='deny_header "x-user"; deny_values "mallory"'))
    agent = start_agent("sentinel_agent.examples.denylist", proxy.unix_addr, "denylist-2", "--connections", "1")
    proxy.wait_for_connections("denylist-2", 1, agent)
    assert proxy.get("/", {"x-user": "mallory"}).status == 403
    proxy.write_config(route_to("deny", "denylist-*", config='deny_addresses "not-an-address"'))
    proxy.process.signal(1)  # SIGHUP: reload, ConfigUpdate with a list the agent cannot parse
    eventually("the refusal", lambda: "pushed configuration refused" in agent.log())
    assert "'not-an-address' is not an IP address or network" in agent.log()
    assert proxy.get("/", {"x-user": "mallory"}).status == 403, "the previous policy stays"
    assert proxy.get("/", {"x-user": "alice"}).status == 200
