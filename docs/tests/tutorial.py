"""Reads docs/writing-an-agent.md as a script: its code blocks and the markers before them.

Each fenced block is preceded by an HTML comment saying what it is (invisible in the rendered
page), and a block without one is an error, so no snippet escapes the test:

    <!-- tutorial: run -->            a shell block, run to completion; must exit 0
    <!-- tutorial: output -->         what the previous `run` printed (lines in order, … = anything)
    <!-- tutorial: start NAME -->     a shell block that keeps running (a terminal called NAME)
    <!-- tutorial: log NAME -->       lines that terminal prints (in order, after what was matched)
    <!-- tutorial: stop NAME -->      ctrl-c in that terminal (no block); it must exit 0
    <!-- tutorial: file PATH -->      the whole file PATH (relative to the work folder); a path under
                                      sentinel/ must equal the file shipped in the repository
    <!-- tutorial: excerpt PATH -->   lines quoted verbatim from PATH
    <!-- tutorial: skip REASON -->    not run, and why

This module only parses and matches; test_writing_an_agent.py runs the steps.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MARKER = re.compile(r"^<!-- tutorial: ([a-z-]+)(?: (.+?))? -->$")
FENCE = re.compile(r"^```(\S*)\s*$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

KINDS_WITH_BLOCK = {"run", "output", "start", "log", "file", "excerpt", "skip"}
KINDS_WITHOUT_BLOCK = {"stop"}
KINDS_NEEDING_ARGUMENT = {"start", "log", "stop", "file", "excerpt", "skip"}


class TutorialError(Exception):
    """The page breaks the marker rules; the message names the line."""


@dataclass
class Step:
    kind: str
    argument: str | None
    line: int  # 1-based line of the marker in the page
    language: str | None = None
    text: str | None = None

    def where(self) -> str:
        label = self.kind + (f" {self.argument}" if self.argument else "")
        return f"docs/writing-an-agent.md line {self.line} (tutorial: {label})"


def parse(page: str) -> list[Step]:
    """The page's steps in order; raises TutorialError for an unmarked or malformed block."""
    lines = page.splitlines()
    steps: list[Step] = []
    i = 0
    while i < len(lines):
        marker = MARKER.match(lines[i])
        fence = FENCE.match(lines[i])
        if marker:
            step = Step(marker.group(1), marker.group(2), i + 1)
            check_marker(step)
            if step.kind in KINDS_WITH_BLOCK:
                if i + 1 >= len(lines) or not FENCE.match(lines[i + 1]):
                    raise TutorialError(f"{step.where()}: a code block must follow on the next line")
                step.language, step.text, i = read_block(lines, i + 1)
            steps.append(step)
        elif fence:
            raise TutorialError(
                f"docs/writing-an-agent.md line {i + 1}: a code block without a "
                "`<!-- tutorial: … -->` marker on the line before it")
        i += 1
    return steps


def check_marker(step: Step) -> None:
    if step.kind not in KINDS_WITH_BLOCK | KINDS_WITHOUT_BLOCK:
        raise TutorialError(f"{step.where()}: unknown marker kind {step.kind!r}")
    if step.kind in KINDS_NEEDING_ARGUMENT and not step.argument:
        raise TutorialError(f"{step.where()}: this marker needs an argument")


def read_block(lines: list[str], opening: int) -> tuple[str, str, int]:
    """(language, text, index of the closing fence) of the block opening at `opening`."""
    language = FENCE.match(lines[opening]).group(1)
    for end in range(opening + 1, len(lines)):
        if lines[end].rstrip() == "```":
            return language, "\n".join(lines[opening + 1:end]) + "\n", end
    raise TutorialError(f"docs/writing-an-agent.md line {opening + 1}: the code block never ends")


def line_pattern(shown: str) -> re.Pattern[str] | None:
    """A regex for one line the page shows: `…` stands for anything, runs of spaces for any
    whitespace; None for a line that is only `…` (any number of lines)."""
    pieces = shown.strip().split("…")
    if not any(piece.strip() for piece in pieces):
        return None
    pattern = ".*".join(r"\s+".join(re.escape(word) for word in piece.split()) for piece in pieces)
    return re.compile(pattern)


def match_in_order(shown: str, actual: str, start: int = 0) -> tuple[int, str | None]:
    """Matches the shown lines against `actual`'s lines from line `start` on, in order.

    Returns (the index after the last matched line, None) when every shown line matched, or
    (start, the first shown line that did not) otherwise."""
    actual_lines = [ANSI.sub("", line) for line in actual.splitlines()]
    cursor = start
    for shown_line in shown.splitlines():
        pattern = line_pattern(shown_line)
        if pattern is None:
            continue
        found = next((k for k in range(cursor, len(actual_lines))
                      if pattern.search(actual_lines[k])), None)
        if found is None:
            return start, shown_line
        cursor = found + 1
    return cursor, None


def shipped_path(repo: Path, path: str) -> Path | None:
    """The repository file a `sentinel/…` path names, or None for a path in the work folder."""
    if path.startswith("sentinel/"):
        return repo / path[len("sentinel/"):]
    return None
