"""Tool arguments from the model that cannot be used (nested too deeply, not JSON, not an
object, not matching the tool): the model gets a readable error as the tool's output and the
turn goes on; the log has one WARNING line, no traceback, no copy of the arguments.

A test tool is put in `agent.TOOLS` (the app runs in this process), so this holds whether or
not the project was generated with the example tools.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from agents import RunContextWrapper, function_tool

from {{ cookiecutter.project_slug }}.agent import assistant as agent_module
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, assistant_text
from tests.support.app import AppServer
from tests.support.fake_openai import FakeModel, ToolCall
from tests.support.logs import capturing

PACKAGE = "{{ cookiecutter.project_slug }}"
DEEP = '{"city": ' + "[" * 9000 + "]" * 9000 + "}"


@function_tool
async def lookup(ctx: RunContextWrapper[Any], city: str) -> str:
    """Look a city up.

    Args:
        city: A city name.
    """
    return f"found {city}"


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


@function_tool
async def total(ctx: RunContextWrapper[Any], amounts: list[int]) -> str:
    """Add amounts up.

    Args:
        amounts: The amounts.
    """
    return str(sum(amounts))


async def test_thousands_of_wrong_elements_give_the_first_few_and_a_count(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """9,900 wrong-typed elements: the first five problems and "and 9895 more", both in the
    log line and in what the model gets back (the whole list was 474 kB of each)."""
    monkeypatch.setattr(agent_module, "TOOLS", [total])
    wrong = '{"amounts": [' + ",".join(['"x"'] * 9900) + "]}"

    def calls(body: dict[str, Any]) -> list[ToolCall]:
        items = body.get("input") or body.get("messages") or []
        last = items[-1] if isinstance(items, list) and items else {}
        return [ToolCall("total", wrong)] if last.get("role") == "user" else []

    fake_model.tool_calls = calls
    client = client_for()
    with capturing() as captured:
        events = await client.send("add them")

    assert [e for e in events if e["type"] == "error"] == []
    answer = "".join(
        assistant_text(e["item"])
        for e in events
        if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"
    )
    assert "amounts.0: Input should be a valid integer" in answer
    assert "amounts.4: " in answer and "amounts.5: " not in answer
    assert "and 9895 more" in answer and len(answer) < 1000
    warnings = [r.getMessage() for r in captured.records if r.name.endswith("tool_errors")]
    assert len(warnings) == 1 and "and 9895 more" in warnings[0] and len(warnings[0]) < 1000
    assert max(fake_model.sizes) < 200_000  # the 9,900-element call itself is ~50 kB
