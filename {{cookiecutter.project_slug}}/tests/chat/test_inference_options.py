"""The composer's picks (`inference_options`): a model from MODELS answers, a picked tool is
called once, and anything else is refused (400) before any stream and any model call."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from agents import FunctionTool, function_tool
from chatkit.agents import ClientToolCall

from {{ cookiecutter.project_slug }}.agent import assistant as agent_module
from {{ cookiecutter.project_slug }}.agent.services import ToolContext
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, ChatKitHTTPError, assistant_text
from tests.ops.test_usage import usage_of
from tests.support.app import AppServer
from tests.support.fake_openai import FakeModel

JSON = dict[str, Any]
API_MODES = ["responses", "chat_completions"]
MODELS = "test-model,big-model"


@function_tool
async def echo(ctx: ToolContext, text: str = "nothing") -> str:
    """Repeat the text, with the user's locale (a tool that reads the typed context).

    Args:
        text: What to repeat.
    """
    return f"echo {text} ({ctx.context.request_context.locale})"


@function_tool
async def ask_browser(ctx: ToolContext) -> str:
    """A client tool: the browser answers."""
    ctx.context.client_tool_call = ClientToolCall(name="ask_browser", arguments={})
    return "asked"


@pytest.fixture
def test_tools(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FunctionTool]]:
    """`echo` (server) and `ask_browser` (client) among the agent's tools, whatever the
    project's examples: the app runs in this process and reads TOOLS on every turn."""
    tools = [echo, ask_browser]
    monkeypatch.setattr(agent_module, "TOOLS", [*agent_module.TOOLS, *tools])
    monkeypatch.setattr(agent_module, "CLIENT_TOOLS", agent_module.CLIENT_TOOLS | {"ask_browser"})
    yield tools


@pytest.fixture(params=API_MODES)
def server(request: pytest.FixtureRequest, app_factory: Callable[..., AppServer]) -> AppServer:
    return app_factory(openai_api=request.param, models=MODELS)


def streamed(fake: FakeModel) -> list[JSON]:
    return [body for body in fake.requests if body.get("stream")]


def forced(body: JSON) -> str | None:
    """The tool a model request forces, in either API's shape (None: not forced)."""
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if "function" in choice:  # Chat Completions
        assert choice == {"type": "function", "function": {"name": choice["function"]["name"]}}
        return str(choice["function"]["name"])
    assert choice == {"type": "function", "name": choice["name"]}, choice
    return str(choice["name"])


def thread_of(events: list[JSON]) -> str:
    return str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))


def answer(events: list[JSON]) -> str:
    items = [e["item"] for e in events if e["type"] == "thread.item.done"]
    return "".join(assistant_text(i) for i in items if i["type"] == "assistant_message")


async def test_a_picked_model_answers_and_usage_records_it(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    database_url: str,
) -> None:
    """The answer comes from the picked model, the title from OPENAI_MODEL; usage says
    which; a message that picks none is answered by OPENAI_MODEL."""
    user_id = f"user-{uuid.uuid4().hex}"
    client = client_for(user_id, server=server)
    events = await client.send("hello", options={"model": "big-model"})
    assert not [e for e in events if e["type"] == "error"]
    thread_id = thread_of(events)
    await client.send("again", thread_id)

    first, second = streamed(fake_model)
    assert (first["model"], second["model"]) == ("big-model", "test-model")
    (title,) = [body for body in fake_model.requests if not body.get("stream")]
    assert title["model"] == "test-model"
    recorded = await usage_of(database_url, user_id, 3)
    assert sorted((row[1], row[2]) for row in recorded) == [
        ("big-model", "answer"),
        ("test-model", "answer"),
        ("test-model", "title"),
    ]


async def test_a_model_not_offered_is_refused_before_any_stream(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    client = client_for(server=server)
    for thread_id in (None, thread_of(await client.send("hi"))):
        fake_model.requests.clear()
        with pytest.raises(ChatKitHTTPError) as refused:
            await client.send("hello", thread_id, options={"model": "gpt-expensive"})
        assert refused.value.status == 400
        assert refused.value.body["error"]["code"] == "model_not_allowed"
        assert fake_model.requests == []
    threads = await client.request("threads.list", {"limit": 10})
    assert len(threads["data"]) == 1, "the refused new thread was never created"


async def test_a_picked_tool_is_called_once(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    test_tools: list[FunctionTool],
) -> None:
    """The first request forces the tool; after it ran the SDK lets the model answer (the
    fake obeys a forced choice on every request, so a choice that stuck would loop)."""
    fake_model.forced_arguments = '{"text": "hi"}'
    client = client_for(server=server)
    events = await client.send("plain words", options={"tool_choice": {"id": "echo"}})
    assert not [e for e in events if e["type"] == "error"]
    first, second = streamed(fake_model)
    assert forced(first) == "echo" and forced(second) is None
    assert answer(events) == "Tool said: echo hi (en)"


async def test_a_tool_that_is_no_choice_is_refused_before_any_stream(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    client = client_for(server=server)
    with pytest.raises(ChatKitHTTPError) as refused:
        await client.send("hello", options={"tool_choice": {"id": "rm_rf"}})
    assert refused.value.status == 400
    assert refused.value.body["error"]["code"] == "tool_not_allowed"
    assert fake_model.requests == []


async def test_a_continuation_keeps_the_model_and_forces_no_tool_again(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    test_tools: list[FunctionTool],
) -> None:
    """A client tool's output has no message of its own: the last user message's model
    answers it, and its forced tool is not forced again (that would ask the browser again,
    forever). A retry re-answers the message with both picks."""
    client = client_for(server=server)
    options = {"model": "big-model", "tool_choice": {"id": "ask_browser"}}
    events = await client.send("ask it", options=options)
    thread_id = thread_of(events)
    items = [e["item"] for e in events if e["type"] == "thread.item.done"]
    assert [i["status"] for i in items if i["type"] == "client_tool_call"] == ["pending"]
    fake_model.requests.clear()
    continued = [
        e
        async for e in client.stream(
            "threads.add_client_tool_output", {"thread_id": thread_id, "result": {"ok": True}}
        )
    ]
    (body,) = streamed(fake_model)
    assert body["model"] == "big-model" and forced(body) is None
    assert "Tool said" in answer(continued)

    message = next(i for i in items if i["type"] == "user_message")
    fake_model.requests.clear()
    retried = client.stream(
        "threads.retry_after_item", {"thread_id": thread_id, "item_id": message["id"]}
    )
    _ = [e async for e in retried]
    (body,) = streamed(fake_model)
    assert body["model"] == "big-model" and forced(body) == "ask_browser"


async def test_the_composer_options_list_the_models_and_the_tool_menu(
    server: AppServer,
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        refused = await http.get("/chatkit/options")
        assert refused.status_code == 401
        headers = {"Authorization": f"Bearer {server.token('someone')}"}
        options = (await http.get("/chatkit/options", headers=headers)).json()
    assert options["models"] == [
        {"id": "test-model", "label": "test-model", "default": True},
        {"id": "big-model", "label": "big-model", "default": False},
    ]
    assert options["tools"] == [option.as_json() for option in agent_module.TOOL_MENU]
    assert {tool["id"] for tool in options["tools"]} <= agent_module.tool_choices()
