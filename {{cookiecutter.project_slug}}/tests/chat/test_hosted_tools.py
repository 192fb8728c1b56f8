"""Hosted tools, citations and reasoning, end to end over HTTP against the fake model.

WEB_SEARCH / FILE_SEARCH_VECTOR_STORE_IDS / IMAGE_GENERATION offer OpenAI's hosted tools
(Responses API only: a one-line startup error with Chat Completions); the model's citations
become stored annotations with their source; REASONING_EFFORT / REASONING_SUMMARY are sent and
the summaries stream as ChatKit's reasoning workflow, stored with the thread.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from {{ cookiecutter.project_slug }}.agent.hosted import agent_model_settings
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, ChatKitHTTPError, assistant_text
from tests.support.app import AppServer, app_settings
from tests.support.commands import PACKAGE, cli_env, run
from tests.support.fake_openai import FakeModel
from tests.support.fake_outputs import FILE_NAME, SEARCH_URL

JSON = dict[str, Any]
API_MODES = ["responses", "chat_completions"]
HOSTED: JSON = {
    "web_search": True,
    "file_search_vector_store_ids": ["vs_1", "vs_2"],
    "image_generation": True,
    "reasoning_effort": "low",
}
"""One app with every hosted tool and reasoning on (Responses), shared by these tests."""
CITATION: JSON = {
    "type": "url_citation",
    "url": "https://example.org/cited",
    "title": "Cited page",
    "start_index": 0,
    "end_index": 4,
}


def hosted_server(app_factory: Callable[..., AppServer], api: str = "responses") -> AppServer:
    if api == "chat_completions":  # no hosted tools there: reasoning only
        return app_factory(openai_api=api, reasoning_effort="low")
    return app_factory(**HOSTED)


def errors(events: list[JSON]) -> list[JSON]:
    return [e for e in events if e["type"] == "error"]


def thread_id_of(events: list[JSON]) -> str:
    return str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))


def streamed(fake: FakeModel) -> list[JSON]:
    return [body for body in fake.requests if body.get("stream")]


async def stored(client: ChatKitClient, thread_id: str) -> list[JSON]:
    page = await client.request("items.list", {"thread_id": thread_id, "order": "asc"})
    return list(page["data"])


async def answer(client: ChatKitClient, events: list[JSON]) -> JSON:
    """The stored assistant message of the turn."""
    items = await stored(client, thread_id_of(events))
    return next(i for i in items if i["type"] == "assistant_message")


# --- hosted tools -----------------------------------------------------------------------------


async def test_hosted_tools_are_offered_as_configured(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    client = client_for(server=hosted_server(app_factory))
    events = await client.send("hello")
    assert not errors(events), errors(events)
    tools = {tool["type"]: tool for tool in streamed(fake_model)[0]["tools"]}
    assert tools["web_search"]["type"] == "web_search"
    assert tools["file_search"]["vector_store_ids"] == ["vs_1", "vs_2"]
    assert tools["image_generation"]["partial_images"] == 2

    fake_model.reset()
    await client_for().send("hello")  # the default app offers none of them
    offered = {tool["type"] for tool in streamed(fake_model)[0].get("tools") or []}
    assert offered <= {"function"}, offered


@pytest.mark.parametrize(
    "setting, value",
    [
        ("web_search", True),
        ("file_search_vector_store_ids", ["vs_1"]),
        ("image_generation", True),
        ("reasoning_summary", "auto"),
    ],
)
def test_hosted_tools_need_the_responses_api(setting: str, value: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        app_settings(
            "embedded", "http://fake/v1", openai_api="chat_completions", **{setting: value}
        )
    assert f"{setting.upper()} needs OPENAI_API=responses" in str(caught.value)


def test_the_startup_error_is_one_line_naming_the_setting() -> None:
    env = cli_env("postgresql://app@127.0.0.1:9/app")
    env.update(OPENAI_API="chat_completions", FILE_SEARCH_VECTOR_STORE_IDS="vs_1,vs_2")
    done = run([sys.executable, "-m", PACKAGE, "serve"], env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "FILE_SEARCH_VECTOR_STORE_IDS needs OPENAI_API=responses" in lines[0]


def test_reasoning_summary_is_refused_at_startup_with_chat_completions() -> None:
    """Dropped silently before; now `serve` stops like it does for the hosted tools."""
    env = cli_env("postgresql://app@127.0.0.1:9/app")
    env.update(OPENAI_API="chat_completions", REASONING_SUMMARY="concise")
    done = run([sys.executable, "-m", PACKAGE, "serve"], env=env)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "REASONING_SUMMARY needs OPENAI_API=responses" in line


# --- citations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ask, source",
    [
        ("@tool web_search what is new?", {"type": "url", "url": SEARCH_URL}),
        ("@tool file_search what does the handbook say?", {"type": "file", "filename": FILE_NAME}),
    ],
    ids=["url_citation", "file_citation"],
)
async def test_search_citations_are_stored_with_their_source(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    ask: str,
    source: JSON,
) -> None:
    """The streamed annotation event (the one that used to end the answer with stream.error)
    reaches the client, and the stored message keeps the citation."""
    client = client_for(server=hosted_server(app_factory))
    events = await client.send(ask)
    assert not errors(events), errors(events)
    streamed_annotations = [
        e["update"]["annotation"]
        for e in events
        if e["type"] == "thread.item.updated"
        and e["update"]["type"] == "assistant_message.content_part.annotation_added"
    ]
    assert [a["source"]["type"] for a in streamed_annotations] == [source["type"]]
    message = await answer(client, events)
    (annotation,) = message["content"][0]["annotations"]
    assert {k: annotation["source"][k] for k in source} == source
    assert annotation["index"] == len(assistant_text(message))


@pytest.mark.parametrize("api", API_MODES)
async def test_model_citations_are_stored_in_both_apis(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    api: str,
) -> None:
    """Chat Completions carries url citations on its deltas: they are stored too."""
    client = client_for(server=app_factory(openai_api=api))
    fake_model.annotations = [CITATION]
    events = await client.send("cite something")
    assert not errors(events), errors(events)
    (annotation,) = (await answer(client, events))["content"][0]["annotations"]
    assert annotation["source"]["url"] == CITATION["url"]
    assert annotation["source"]["title"] == "Cited page"
    assert annotation["index"] == CITATION["end_index"]


@pytest.mark.parametrize("api", API_MODES)
async def test_only_http_citations_are_kept(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    api: str,
) -> None:
    """`javascript:` and `data:` links from the model are dropped (a WARNING each), neither
    streamed nor stored; the http(s) one stays."""
    client = client_for(server=app_factory(openai_api=api))
    bad = ["javascript:alert(document.cookie)", "data:text/html,<script>x()</script>"]
    fake_model.annotations = [{**CITATION, "url": url} for url in bad] + [CITATION]
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger(f"{PACKAGE}.agent.sources").addHandler(handler)
    try:
        events = await client.send("cite something")
    finally:
        logging.getLogger(f"{PACKAGE}.agent.sources").removeHandler(handler)
    assert not errors(events), errors(events)
    streamed = [
        e["update"]["annotation"]["source"]["url"]
        for e in events
        if e["type"] == "thread.item.updated"
        and e["update"]["type"] == "assistant_message.content_part.annotation_added"
    ]
    assert all(url.startswith("https://") for url in streamed)
    stored = (await answer(client, events))["content"][0]["annotations"]
    assert [a["source"]["url"] for a in stored] == [CITATION["url"]]
    dropped = [r.getMessage() for r in records if "not http(s)" in r.getMessage()]
    assert dropped and all("cookie" not in line and "<script" not in line for line in dropped)
    assert {"javascript", "data"} <= {line.rsplit("(", 1)[1].rstrip(")") for line in dropped}


# --- reasoning --------------------------------------------------------------------------------


def test_reasoning_settings_make_the_request_reasoning() -> None:
    def reasoning(**values: Any) -> Any:
        found = agent_model_settings(app_settings("embedded", "http://x/v1", **values)).reasoning
        return None if found is None else found.model_dump(exclude_none=True)

    assert reasoning() is None
    assert reasoning(reasoning_effort="high") == {"effort": "high", "summary": "auto"}
    assert reasoning(reasoning_effort="low", reasoning_summary="detailed") == {
        "effort": "low",
        "summary": "detailed",
    }
    assert reasoning(reasoning_summary="concise") == {"summary": "concise"}


@pytest.mark.parametrize("api", API_MODES)
async def test_reasoning_summaries_stream_as_a_workflow_and_are_stored(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    api: str,
) -> None:
    client = client_for(server=hosted_server(app_factory, api))
    fake_model.thoughts = ["**Planning**\n\nFirst thought.", "Second thought."]
    events = await client.send("think first")
    assert not errors(events), errors(events)
    body = streamed(fake_model)[0]
    if api == "responses":
        assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    else:  # Chat Completions has no summaries to ask for: the effort only
        assert body["reasoning_effort"] == "low" and "reasoning" not in body

    added = [e["item"] for e in events if e["type"] == "thread.item.added"]
    assert added[0]["type"] == "workflow" and added[0]["workflow"]["type"] == "reasoning"
    items = await stored(client, thread_id_of(events))
    assert [i["type"] for i in items] == ["user_message", "workflow", "assistant_message"]
    thoughts = [task["content"] for task in items[1]["workflow"]["tasks"]]
    if api == "responses":  # one thought per summary part
        assert thoughts == fake_model.thoughts
    else:  # one reasoning text, from the reasoning_content deltas
        assert thoughts == ["".join(fake_model.thoughts)]
    assert all(task["type"] == "thought" for task in items[1]["workflow"]["tasks"])


async def test_no_reasoning_is_sent_unless_asked(
    client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    events = await client_for().send("hello")
    assert not errors(events)
    body = streamed(fake_model)[0]
    assert "reasoning" not in body and "reasoning_effort" not in body
    assert all(e.get("item", {}).get("type") != "workflow" for e in events)


# --- hosted tools in the composer's tool menu -------------------------------------------------


async def test_hosted_tools_that_are_on_are_tool_menu_entries_and_forced_when_picked(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    server = app_factory(web_search=True, image_generation=True)
    client = client_for(server=server)
    async with httpx.AsyncClient(base_url=server.url) as http:
        headers = {"Authorization": f"Bearer {server.token('someone')}"}
        options = (await http.get("/chatkit/options", headers=headers)).json()
    ids = [tool["id"] for tool in options["tools"]]
    assert ids[-2:] == ["web_search", "image_generation"] and "file_search" not in ids
    assert {"label", "icon"} <= set(options["tools"][-2])

    events = await client.send("news today?", options={"tool_choice": {"id": "web_search"}})
    assert not errors(events), errors(events)
    assert streamed(fake_model)[0]["tool_choice"] == {"type": "web_search"}


async def test_a_hosted_tool_that_is_off_cannot_be_picked(
    app_factory: Callable[..., AppServer], client_for: Callable[..., ChatKitClient]
) -> None:
    client = client_for(server=app_factory())
    with pytest.raises(ChatKitHTTPError) as refused:
        await client.send("news?", options={"tool_choice": {"id": "web_search"}})
    assert refused.value.status == 400
    assert refused.value.body["error"]["code"] == "tool_not_allowed"
