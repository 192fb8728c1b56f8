"""Tool arguments from the model that cannot be used (nested too deeply, not JSON, not an
object, not matching the tool): the model gets a readable error as the tool's output and the
turn goes on; the log has one WARNING line, no traceback, no copy of the arguments.

A test tool is put in `agent.TOOLS` (the app runs in this process), so this holds whether or
not the project was generated with the example tools.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from agents import RunContextWrapper, function_tool

from {{ cookiecutter.project_slug }}.agent import assistant as agent_module
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, assistant_text
from tests.support.app import AppServer
from tests.support.fake_openai import FakeModel, ToolCall

PACKAGE = "{{ cookiecutter.project_slug }}"
DEEP = '{"city": ' + "[" * 9000 + "]" * 9000 + "}"


@function_tool
async def lookup(ctx: RunContextWrapper[Any], city: str) -> str:
    """Look a city up.

    Args:
        city: A city name.
    """
    return f"found {city}"


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def capturing() -> Iterator[Captured]:
    """Records from now on (an app built later would replace the root handlers)."""
    handler = Captured()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


def first_call_only(arguments: str) -> Callable[[dict[str, Any]], list[ToolCall]]:
    """The model calls `lookup` with `arguments` when the user writes; after the tool's
    output it answers in text (quoting the output)."""

    def calls(body: dict[str, Any]) -> list[ToolCall]:
        items = body.get("input") or body.get("messages") or []
        last = items[-1] if isinstance(items, list) and items else {}
        return [ToolCall("lookup", arguments)] if last.get("role") == "user" else []

    return calls


@pytest.mark.parametrize("api", ["responses", "chat_completions"])
@pytest.mark.parametrize(
    "arguments, problem",
    [
        (DEEP, "nested too deeply"),
        ("not json at all", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"city": 5}', "city: Input should be a valid string"),
    ],
    ids=["too-deep", "not-json", "not-an-object", "wrong-type"],
)
async def test_unusable_tool_arguments_give_the_model_a_readable_error(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
    api: str,
    arguments: str,
    problem: str,
) -> None:
    monkeypatch.setattr(agent_module, "TOOLS", [lookup])
    fake_model.tool_calls = first_call_only(arguments)
    client = client_for(server=app_factory(openai_api=api))

    with capturing() as captured:
        events = await client.send("where is it?")

    assert [e for e in events if e["type"] == "error"] == []
    answer = [
        assistant_text(e["item"])
        for e in events
        if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"
    ]
    assert answer == [
        f"Tool said: Error: lookup was called with invalid arguments ({problem}). "
        "Call it again with one JSON object that matches its parameters."
    ]
    warnings = [r for r in captured.records if r.name == f"{PACKAGE}.agent.tool_errors"]
    assert [(r.levelno, r.getMessage()) for r in warnings] == [
        (logging.WARNING, f"tool lookup: arguments refused: {problem}")
    ]
    assert not warnings[0].exc_info
    assert [r for r in captured.records if r.levelno >= logging.ERROR] == []
    assert all(len(r.getMessage()) < 500 for r in captured.records)
