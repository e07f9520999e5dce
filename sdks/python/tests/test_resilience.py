"""What the runner guarantees when things go wrong, against the real proxy: reconnecting after
a proxy restart, giving up on a permanent refusal without a hot loop, stopping a handler when
the client goes away, and draining in-flight requests on SIGTERM.
"""

import signal
import socket
import threading
import time

from conftest import eventually, route_to


def test_reconnects_after_the_proxy_restarts(start_sentinel, start_agent):
    proxy = start_sentinel(route_to("probe", "probe-*"))
    agent = start_agent("probe_agent", proxy.unix_addr, "probe-restart", "--connections", "2")
    proxy.wait_for_connections("probe-restart", 2, agent)
    assert proxy.get("/before").status == 200

    proxy.stop()
    assert agent.running()
    proxy.start()  # same configuration, same socket and ports
    proxy.wait_for_connections("probe-restart", 2, agent)
    after = proxy.get("/after")
    assert after.status == 200 and after.upstream_saw("x-probe") == ["probe-restart"]
    assert "reconnecting" in agent.log()


def test_permanent_refusal_does_not_hot_loop(start_sentinel, start_agent):
    proxy = start_sentinel(route_to("probe", "probe-*"),
                           extra='    require-auth true\n    auth-token "probe-*" value="right-token-0123"')
    rejected = lambda: proxy.metric("sentinel_agent_registrations_rejected_total", {"code": "auth_failed"})
    wrong = start_agent("probe_agent", proxy.unix_addr, "probe-wrong", "--connections", "2",
                        "--auth-token-env", "PROBE_TOKEN", env={"PROBE_TOKEN": "wrong-token-4567"})
    eventually("two auth_failed refusals", lambda: rejected() == 2)
    # A hot loop would make hundreds of attempts in this time; the runner waits 15-30 s.
    time.sleep(3)
    assert rejected() == 2, "exactly one attempt per connection slot"
    assert wrong.running(), "the agent keeps running, to recover once the proxy is fixed"
    log = wrong.log()
    assert log.count("registration refused for good: refused `auth_failed`") == 2, log
    assert "wrong-token-4567" not in log, "the token never appears in the log"

    # Control: the same proxy accepts the right token, so the count above could have moved.
    right = start_agent("probe_agent", proxy.unix_addr, "probe-right", "--connections", "1",
                        "--auth-token-env", "PROBE_TOKEN", env={"PROBE_TOKEN": "right-token-0123"})
    proxy.wait_for_connections("probe-right", 1, right)
    assert proxy.connections_of("probe-wrong") == []


def _raw_get(address, path: str) -> socket.socket:
    client = socket.create_connection(address, timeout=10)
    client.sendall(f"GET {path} HTTP/1.1\r\nhost: test\r\n\r\n".encode())
    return client


def test_client_going_away_cancels_the_handler(start_sentinel, start_agent):
    proxy = start_sentinel(route_to("probe", "probe-*", timeout_ms=20000))
    agent = start_agent("probe_agent", proxy.unix_addr, "probe-cancel", "--connections", "1")
    proxy.wait_for_connections("probe-cancel", 1, agent)
    client = _raw_get(proxy.http, "/slow?ms=15000")
    eventually("the handler to start", lambda: "start" in agent.log() and "/slow" in agent.log())
    client.close()
    eventually("the handler to be cancelled", lambda: "handler cancelled" in agent.log())
    request_id = agent.log().split("start ", 1)[1].split()[0]
    eventually("on_cancel for that request",
               lambda: f"on_cancel {request_id} client_disconnected" in agent.log())
    assert proxy.get("/after").status == 200, "the connection goes on serving"


def test_sigterm_sends_goaway_and_drains_in_flight_requests(start_sentinel, start_agent):
    proxy = start_sentinel(route_to("probe", "probe-*", timeout_ms=20000))
    agent = start_agent("probe_agent", proxy.unix_addr, "probe-drain", "--connections", "2")
    proxy.wait_for_connections("probe-drain", 2, agent)
    replies = []
    request = threading.Thread(target=lambda: replies.append(proxy.get("/slow?ms=1500")))
    request.start()
    eventually("the slow request to reach the agent", lambda: "/slow" in agent.log())
    agent.signal(signal.SIGTERM)
    eventually("GoAway on every connection", lambda: agent.log().count("sending GoAway") == 2)
    assert agent.wait(10) == 0, agent.log()
    request.join(10)
    assert replies and replies[0].status == 200, "the in-flight request finished"
    assert replies[0].upstream_saw("x-probe") == ["probe-drain"]
    assert "handler cancelled" not in agent.log()
    assert proxy.connections_of("probe-drain") == []


def test_proxy_shutdown_finishes_in_flight_requests_then_the_agent_reconnects(start_sentinel, start_agent):
    # The real proxy finishes its HTTP requests (agent answers included) before it sends
    # GoAway; test_fake_proxy covers a GoAway that arrives while a handler is still running.
    proxy = start_sentinel(route_to("probe", "probe-*", timeout_ms=20000))
    agent = start_agent("probe_agent", proxy.unix_addr, "probe-remote", "--connections", "1")
    proxy.wait_for_connections("probe-remote", 1, agent)
    replies = []
    request = threading.Thread(target=lambda: replies.append(proxy.get("/slow?ms=1000")))
    request.start()
    eventually("the slow request to reach the agent", lambda: "/slow" in agent.log())
    proxy.process.signal(signal.SIGTERM)  # the proxy drains, then sends GoAway
    request.join(20)
    assert replies and replies[0].status == 200, "the agent answered during the proxy's drain"
    assert replies[0].upstream_saw("x-probe") == ["probe-remote"]
    assert proxy.process.wait(20) == 0
    eventually("the agent to see the GoAway", lambda: "the proxy sent GoAway" in agent.log())
    eventually("the agent to see the connection end", lambda: "reconnecting" in agent.log())
    assert "handler cancelled" not in agent.log()
    assert agent.running(), "the agent outlives the proxy and will reconnect"
