"""Fixtures for the Python SDK's tests, all real parts: the ``sentinel`` binary built by cargo
once per session, a real HTTP upstream (a threaded ``http.server`` on port 0 that echoes what it
received as JSON), the proxy started from a KDL file the test writes and waited for through its
admin ``/health``, and agents run as separate Python processes with their logs collected.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SDK_DIR = Path(__file__).resolve().parent.parent
REPO = SDK_DIR.parent.parent
PATIENCE = 20.0  # seconds anything that should happen promptly may take on a loaded machine


def eventually(what: str, condition, patience: float = PATIENCE, every: float = 0.03):
    """Polls ``condition`` until it returns a truthy value, which is returned."""
    deadline = time.monotonic() + patience
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {patience:g} s waiting for {what}")
        time.sleep(every)


# ---------------------------------------------------------------- the sentinel binary

@pytest.fixture(scope="session")
def sentinel_binary() -> Path:
    """``cargo build -p sentinel --bin sentinel`` once per session (honours CARGO_TARGET_DIR)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    if not target.is_absolute():
        target = REPO / target
    subprocess.run(["cargo", "build", "--quiet", "-p", "sentinel", "--bin", "sentinel"],
                   cwd=REPO, check=True)
    binary = target / "debug" / "sentinel"
    assert binary.is_file(), f"cargo build did not produce {binary}"
    return binary


# ---------------------------------------------------------------- processes

class Process:
    """A child process in its own session; stderr and stdout go to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.name = name
        self.log_path = log_path
        self._log_file = open(log_path, "ab")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                      stderr=subprocess.STDOUT, env=full_env, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.popen.poll() is None

    def signal(self, signum: int) -> None:
        assert self.running(), f"{self.name} already exited\n{self.log()}"
        self.popen.send_signal(signum)

    def wait(self, timeout: float = PATIENCE) -> int:
        return self.popen.wait(timeout)

    def stop(self) -> None:
        if self.running():
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(5)
        self._log_file.close()


@pytest.fixture
def processes():
    """Collects every process a test starts and kills the survivors afterwards."""
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


# ---------------------------------------------------------------- the upstream

class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = json.dumps({
            "method": self.command, "path": self.path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture(scope="session")
def upstream():
    """A real HTTP upstream on a free loopback port; yields its address."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address
    server.shutdown()


# ---------------------------------------------------------------- the proxy

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Reply:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    def echo(self) -> dict:
        """What the upstream received (only when the request reached it)."""
        return json.loads(self.body)

    def upstream_saw(self, name: str) -> list[str]:
        return [v for k, v in self.echo()["headers"] if k == name]


def http_get(address, path: str, headers: dict[str, str] | None = None, timeout: float = PATIENCE,
             method: str = "GET", body: bytes | None = None) -> Reply:
    connection = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


class Sentinel:
    """The ``sentinel`` binary on a configuration written by the test."""

    def __init__(self, binary: Path, directory: Path, upstream, body: str, processes: list, extra: str = ""):
        self.binary, self.dir, self.upstream = binary, directory, upstream
        self.body, self.extra, self.processes = body, extra, processes
        self.socket = directory / "agents.sock"
        self.config_path = directory / "sentinel.kdl"
        self.process: Process | None = None
        # The ports are picked free and released; should another process take one in between,
        # start again with new ones.
        for attempt in range(3):
            self.http, self.admin, self.tcp = (("127.0.0.1", free_port()) for _ in range(3))
            self.write_config(body)
            try:
                self.start()
                return
            except AssertionError:
                if attempt == 2 or "cannot listen" not in self.process.log():
                    raise

    @property
    def unix_addr(self) -> str:
        return f"unix:{self.socket}"

    @property
    def tcp_addr(self) -> str:
        return f"tcp:{self.tcp[0]}:{self.tcp[1]}"

    def write_config(self, body: str) -> None:
        text = f"""reverse-listener {{
    path "{self.socket}"
    tcp-address "{self.tcp[0]}:{self.tcp[1]}"
    max-connections-per-agent 8
    handshake-timeout "10s"
{self.extra}
}}
listeners {{
    listener "http" {{ address "{self.http[0]}:{self.http[1]}"; }}
}}
upstreams {{
    upstream "backend" {{ target "{self.upstream[0]}:{self.upstream[1]}"; }}
}}
admin {{ address "{self.admin[0]}:{self.admin[1]}"; }}
shutdown-grace "5s"
{body}
"""
        temporary = self.config_path.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(self.config_path)

    def start(self) -> None:
        self.process = Process("sentinel", [str(self.binary), "--config", str(self.config_path)],
                               self.dir / "sentinel.log", {"RUST_LOG": "info", "NO_COLOR": "1"})
        self.processes.append(self.process)

        def healthy():
            assert self.process.running(), f"sentinel exited\n{self.process.log()}"
            try:
                return http_get(self.admin, "/health", timeout=2).status == 200
            except OSError:
                return False

        eventually("sentinel /health", healthy)

    def stop(self) -> None:
        self.process.signal(signal.SIGTERM)
        self.process.wait()

    def get(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        return http_get(self.http, path, headers)

    def post(self, path: str, body: bytes) -> Reply:
        return http_get(self.http, path, method="POST", body=body)

    def agents(self) -> list[dict]:
        return json.loads(http_get(self.admin, "/agents").body)["agents"]

    def connections_of(self, agent_id: str) -> list[dict]:
        return [c for a in self.agents() if a["agent_id"] == agent_id for c in a["connections"]]

    def wait_for_connections(self, agent_id: str, count: int, agent: Process | None = None) -> list[dict]:
        def ready():
            if agent is not None:
                assert agent.running(), f"{agent.name} exited\n{agent.log()}"
            connections = self.connections_of(agent_id)
            return connections if len(connections) == count else None

        return eventually(f"{count} connections of {agent_id}", ready)

    def metric(self, name: str, labels: dict[str, str]) -> float:
        page = http_get(self.admin, "/metrics").body.decode()
        total = 0.0
        for line in page.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture
def start_sentinel(sentinel_binary, upstream, tmp_path, processes):
    """``start_sentinel(body, extra="")``: a running proxy with ``body`` as its agents/routes."""
    count = [0]

    def start(body: str, extra: str = "") -> Sentinel:
        count[0] += 1
        directory = tmp_path / f"proxy{count[0]}"
        directory.mkdir()
        return Sentinel(sentinel_binary, directory, upstream, body, processes, extra)

    return start


def route_to(agent: str, agent_ids: str, config: str = "", timeout_ms: int = 5000,
             events: str = '"request_headers"') -> str:
    """The agents and routes blocks: every request goes through logical agent ``agent``."""
    config_block = f"config {{ {config} }}" if config else ""
    return f"""agents {{
    agent "{agent}" {{
        agent-ids "{agent_ids}"
        events {events}
        timeout-ms {timeout_ms}
        failure-mode "closed"
        {config_block}
    }}
}}
routes {{
    route "default" {{
        matches {{ path-prefix "/" }}
        upstream "backend"
        agents "{agent}"
    }}
}}"""


@pytest.fixture
def start_agent(tmp_path, processes):
    """``start_agent(module, connect, agent_id, *flags, env=None)``: an agent process."""

    def start(module: str, connect: list[str] | str, agent_id: str, *flags: str,
              env: dict[str, str] | None = None) -> Process:
        targets = [connect] if isinstance(connect, str) else connect
        argv = [sys.executable, "-m", module, "--agent-id", agent_id]
        for target in targets:
            argv += ["--connect", target]
        argv += list(flags)
        paths = [str(SDK_DIR / "src"), str(SDK_DIR / "tests")]
        merged = {"PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}
        merged.update(env or {})
        process = Process(agent_id, argv, tmp_path / f"{agent_id}.log", merged)
        processes.append(process)
        return process

    return start
