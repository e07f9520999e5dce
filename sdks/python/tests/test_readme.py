"""README.md's reference section names exactly the public fields and helpers of the event types,
the request context and decisions: a field added to a dataclass without a line in the README,
or a README line for something the code no longer has, fails here with its name.
"""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest
from conftest import SDK_DIR

from sentinel_agent import BodyChunk, Cancelled, Decision, RequestContext, RequestHeaders, ResponseHeaders
from sentinel_agent import decision as decision_module

REFERENCE_HEADING = "## Reference"
DOCUMENTED_TYPES = [RequestHeaders, BodyChunk, ResponseHeaders, Cancelled, RequestContext, Decision]
HELPERS_HEADING = "Decision helpers"
# The first cell of a table row: `name`, `name(args)` or `name(args=default)`.
ROW_NAME = re.compile(r"^\|\s*`([A-Za-z_][A-Za-z0-9_]*)")


def reference_sections() -> dict[str, set[str]]:
    """Each ``###`` heading of the reference section (backticks dropped) → the names its
    table's rows document."""
    text = (SDK_DIR / "README.md").read_text(encoding="utf-8")
    start = text.find(f"\n{REFERENCE_HEADING}")
    assert start >= 0, f"README.md has no `{REFERENCE_HEADING}` section"
    body = text[start + 1:]
    end = body.find("\n## ")
    body = body if end < 0 else body[:end]
    sections: dict[str, set[str]] = {}
    current = None
    for line in body.splitlines():
        if line.startswith("### "):
            current = line[4:].replace("`", "").strip()
            sections[current] = set()
        elif current is not None and (match := ROW_NAME.match(line)):
            sections[current].add(match.group(1))
    return sections


def public_names(cls: type) -> set[str]:
    """Dataclass fields (or slots), properties, methods and class methods not starting with _."""
    names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    names |= set(getattr(cls, "__slots__", ()))
    names |= set(dir(cls))
    return {name for name in names if not name.startswith("_")}


def assert_documents_exactly(section: str, documented: set[str], public: set[str]) -> None:
    missing, stale = sorted(public - documented), sorted(documented - public)
    assert not missing, f"README.md `### {section}` does not document {missing}: add a table row for each"
    assert not stale, f"README.md `### {section}` documents {stale}, which the code does not have"


@pytest.mark.parametrize("cls", DOCUMENTED_TYPES, ids=lambda cls: cls.__name__)
def test_the_reference_documents_every_public_field_of(cls):
    sections = reference_sections()
    assert cls.__name__ in sections, f"README.md's reference has no `### {cls.__name__}` section"
    assert_documents_exactly(cls.__name__, sections[cls.__name__], public_names(cls))


def test_the_reference_documents_every_decision_helper():
    helpers = {name for name, value in vars(decision_module).items()
               if inspect.isfunction(value) and value.__module__ == decision_module.__name__
               and not name.startswith("_")}
    sections = reference_sections()
    assert HELPERS_HEADING in sections, f"README.md's reference has no `### {HELPERS_HEADING}` section"
    assert_documents_exactly(HELPERS_HEADING, sections[HELPERS_HEADING], helpers)


def test_the_reference_parser_sees_a_missing_field():
    """The check above could pass by reading nothing; this proves it reads the BodyChunk table."""
    documented = reference_sections()["BodyChunk"]
    assert {"is_last", "chunk_index", "request_id", "data"} <= documented
    with pytest.raises(AssertionError, match="does not document \\['is_last'\\]"):
        assert_documents_exactly("BodyChunk", documented - {"is_last"}, public_names(BodyChunk))
