"""The 25-line agent of docs/writing-an-agent.md, run as a process against the real proxy."""

from conftest import eventually, route_to


def test_admin_gate_from_the_tutorial(start_sentinel, start_agent):
    proxy = start_sentinel(route_to("admin-gate", "admin-gate-*"))
    agent = start_agent("sentinel_agent.examples.admin_gate", proxy.unix_addr, "admin-gate-1")
    proxy.wait_for_connections("admin-gate-1", 4, agent)  # --connections defaults to 4

    blocked = proxy.get("/admin/users")  # the test client is 127.0.0.1: outside 10.0.0.0/8
    assert (blocked.status, blocked.body) == (403, b"admin is internal\n")
    passed = proxy.get("/shop")
    assert passed.status == 200 and passed.upstream_saw("x-admin-gate") == ["passed"]

    proxy.write_config(route_to("admin-gate", "admin-gate-*", config='prefix "/internal"'))
    proxy.process.signal(1)  # SIGHUP: reload, ConfigUpdate with the new prefix
    eventually("the pushed prefix", lambda: proxy.get("/internal/x").status == 403)
    assert proxy.get("/admin/users").status == 200


def test_the_quick_start_configuration_is_valid(sentinel_binary):
    import subprocess
    from conftest import SDK_DIR

    checked = subprocess.run([str(sentinel_binary), "check", "--config", str(SDK_DIR / "denylist.kdl")],
                             capture_output=True, text=True, timeout=20)
    assert checked.returncode == 0, checked.stderr + checked.stdout
