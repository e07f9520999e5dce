"""docs/writing-an-agent.md, followed literally, as a newcomer would.

In an empty temporary folder holding only `sentinel` (a link to this checkout), every marked
block of the page runs in order (tutorial.py says how blocks are marked): shell commands as
written, files written where the page says, the Rust agents built with cargo and the Python
agents run from a fresh virtual environment, against the real proxy, upstream and curl. What
the page says a command prints must be printed. A failure names the page's line.

The page uses fixed addresses (127.0.0.1:8080, :9000, :9901 and /tmp/sentinel-agents.sock), so
this test needs them free; it says so instead of failing obscurely.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import tutorial

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "writing-an-agent.md"
PORTS = (8080, 9000, 9901)
SOCKET = Path("/tmp/sentinel-agents.sock")
# A cold `cargo run` or `cargo test` of the reader's crate builds the SDK and its dependencies.
COMMAND_TIMEOUT = 1200
LOG_TIMEOUT = 1200
STOP_TIMEOUT = 30


class Terminal:
    """A block that keeps running, in its own process group, as in a terminal of its own."""

    def __init__(self, name: str, step: tutorial.Step, work: Path, env: dict[str, str]):
        self.name = name
        self.started_at = step.where()
        script = work / ".tutorial" / f"{name}.sh"
        self.log_path = work / ".tutorial" / f"{name}.log"
        script.write_text(step.text)
        log = self.log_path.open("w")
        self.process = subprocess.Popen(["bash", str(script)], cwd=work, env=env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.cursor = 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def interrupt(self) -> int:
        """ctrl-c: SIGINT to the whole process group; the exit status."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} (started at {self.started_at}) did not stop within "
                        f"{STOP_TIMEOUT} s of ctrl-c; its output:\n{self.log()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()


class Walkthrough:
    """The reader's work folder, their terminals, and the last command's output."""

    def __init__(self, work: Path):
        self.work = work
        (work / ".tutorial").mkdir()
        (work / "sentinel").symlink_to(REPO)
        self.env = reader_environment()
        self.terminals: dict[str, Terminal] = {}
        self.last_output: str | None = None
        self.commands = 0

    def perform(self, step: tutorial.Step) -> None:
        getattr(self, step.kind.replace("-", "_"))(step)

    def run(self, step: tutorial.Step) -> None:
        self.commands += 1
        script = self.work / ".tutorial" / f"command-{self.commands}.sh"
        # `set -e`: a reader would notice a failing line; so must the test.
        script.write_text("set -e\n" + step.text)
        try:
            done = subprocess.run(["bash", str(script)], cwd=self.work, env=self.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, errors="replace", timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"{step.where()}: still running after {COMMAND_TIMEOUT} s:\n{e.output}")
        if done.returncode != 0:
            pytest.fail(f"{step.where()}: exited {done.returncode}:\n{step.text}\n"
                        f"--- it printed:\n{done.stdout}{self.terminal_logs()}")
        self.last_output = done.stdout

    def output(self, step: tutorial.Step) -> None:
        assert self.last_output is not None, f"{step.where()}: no command ran before it"
        _, missing = tutorial.match_in_order(step.text, self.last_output)
        if missing is not None:
            pytest.fail(f"{step.where()}: the command did not print {missing!r}; it printed:\n"
                        f"{self.last_output}{self.terminal_logs()}")

    def start(self, step: tutorial.Step) -> None:
        running = self.terminals.get(step.argument)
        if running is not None and running.process.poll() is None:
            pytest.fail(f"{step.where()}: {step.argument} is still running "
                        f"(started at {running.started_at})")
        self.terminals[step.argument] = Terminal(step.argument, step, self.work, self.env)

    def log(self, step: tutorial.Step) -> None:
        terminal = self.terminal(step)
        deadline = time.monotonic() + LOG_TIMEOUT
        while True:
            text = terminal.log()
            cursor, missing = tutorial.match_in_order(step.text, text, terminal.cursor)
            if missing is None:
                terminal.cursor = cursor
                return
            if terminal.process.poll() is not None or time.monotonic() > deadline:
                state = (f"exited {terminal.process.returncode}"
                         if terminal.process.poll() is not None else f"{LOG_TIMEOUT} s passed")
                pytest.fail(f"{step.where()}: {step.argument} never printed {missing!r} "
                            f"({state}); it printed:\n{text}")
            time.sleep(0.2)

    def stop(self, step: tutorial.Step) -> None:
        terminal = self.terminal(step)
        status = terminal.interrupt()
        if status != 0:
            pytest.fail(f"{step.where()}: {step.argument} exited {status} on ctrl-c, not 0; "
                        f"its output:\n{terminal.log()}")

    def file(self, step: tutorial.Step) -> None:
        shipped = tutorial.shipped_path(REPO, step.argument)
        if shipped is None:
            target = self.work / step.argument
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.text)
        elif shipped.read_text() != step.text:
            pytest.fail(f"{step.where()}: the page's copy differs from {step.argument}")

    def excerpt(self, step: tutorial.Step) -> None:
        shipped = tutorial.shipped_path(REPO, step.argument)
        source = shipped if shipped is not None else self.work / step.argument
        if step.text not in source.read_text():
            pytest.fail(f"{step.where()}: these lines are not in {step.argument}:\n{step.text}")

    def skip(self, step: tutorial.Step) -> None:
        pass

    def terminal(self, step: tutorial.Step) -> Terminal:
        terminal = self.terminals.get(step.argument)
        assert terminal is not None, f"{step.where()}: no terminal {step.argument!r} was started"
        return terminal

    def terminal_logs(self) -> str:
        return "".join(f"\n--- {name}:\n{t.log()}" for name, t in self.terminals.items())

    def close(self) -> None:
        for terminal in self.terminals.values():
            terminal.kill()


def reader_environment() -> dict[str, str]:
    """The environment of a reader's shell: no test-runner overrides. The page's paths assume
    cargo's default target folder; this machine has no network, the crates are cached."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CARGO_TARGET_DIR", "RUST_LOG", "PYTEST", "SENTINEL_"))}
    env["CARGO_NET_OFFLINE"] = "true"
    env.pop("VIRTUAL_ENV", None)
    return env


def require_free_addresses() -> None:
    for port in PORTS:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as e:
                pytest.fail(f"127.0.0.1:{port} is in use ({e}); the tutorial needs it: stop what "
                            "listens there (another sentinel or upstream?)")
    if SOCKET.exists():
        with socket.socket(socket.AF_UNIX) as probe:
            if probe.connect_ex(str(SOCKET)) == 0:
                pytest.fail(f"{SOCKET} is served by a running process; the tutorial needs it")


def test_every_code_block_of_the_page_is_marked():
    steps = tutorial.parse(PAGE.read_text())
    languages = {s.language for s in steps if s.kind in ("file", "run", "start")}
    assert {"rust", "python", "sh"} <= languages
    for step in steps:
        if step.language in ("rust", "python"):
            assert step.kind == "file", f"{step.where()}: Rust and Python blocks are whole files"


def test_the_tutorial_runs_as_written(tmp_path):
    steps = tutorial.parse(PAGE.read_text())
    require_free_addresses()
    walkthrough = Walkthrough(tmp_path)
    try:
        for step in steps:
            walkthrough.perform(step)
        still_running = [n for n, t in walkthrough.terminals.items() if t.process.poll() is None]
        assert not still_running, f"the page never stops {still_running}"
    finally:
        walkthrough.close()


def test_a_shown_line_that_was_not_printed_is_reported():
    printed = "HTTP/1.1 403 Forbidden\ndate: today\n\nadmin is internal\n"
    assert tutorial.match_in_order("HTTP/1.1 403 Forbidden\n…\nadmin is internal", printed)[1] is None
    assert tutorial.match_in_order("HTTP/1.1 200 OK\n…", printed)[1] == "HTTP/1.1 200 OK"
    # In order: a line shown after another must be printed after it.
    assert tutorial.match_in_order("admin is internal\nHTTP/1.1 403 Forbidden", printed)[1] \
        == "HTTP/1.1 403 Forbidden"
    # `…` inside a line stands for anything, but the rest must match.
    assert tutorial.match_in_order("date: …", printed)[1] is None
    assert tutorial.match_in_order("… slot=… conn-…", "a slot=3 b-conn-2")[1] is None
    assert tutorial.match_in_order("slot=… conn-9 x", "a slot=3 b-conn-2")[1] is not None


def test_an_unmarked_block_is_an_error():
    with pytest.raises(tutorial.TutorialError, match="line 3: a code block without"):
        tutorial.parse("text\n\n```sh\nls\n```\n")
    with pytest.raises(tutorial.TutorialError, match="a code block must follow"):
        tutorial.parse("<!-- tutorial: run -->\n\n```sh\nls\n```\n")
    steps = tutorial.parse("<!-- tutorial: stop proxy -->\n<!-- tutorial: run -->\n```sh\nls\n```\n")
    assert [(s.kind, s.argument, s.text) for s in steps] == [("stop", "proxy", None),
                                                             ("run", None, "ls\n")]
