"""The README's recipes, run as written: each block is executed as the module its first line
names (its relative imports resolve from there) and plugged into the running app the way the
recipe says, then used over real HTTP against the app, PostgreSQL and the fake model."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from chatkit.types import AssistantMessageContent, AssistantMessageItem, ThreadMetadata

from {{ cookiecutter.project_slug }}.agent import actions as actions_module
from {{ cookiecutter.project_slug }}.agent import assistant as agent_module
from {{ cookiecutter.project_slug }}.agent import converters as converters_module
from {{ cookiecutter.project_slug }}.chat import response_chain
from {{ cookiecutter.project_slug }}.chat import server as server_module
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, assistant_text
from tests.support.app import AppServer
from tests.support.chatkit import done_items, error_events, rows, streamed_requests, thread_id_of
from tests.support.db import make_context
from tests.support.fake_openai import FakeModel
from tests.support.fake_outputs import SEARCH_URL

JSON = dict[str, Any]
README = Path(__file__).resolve().parents[1] / "README.md"
PACKAGE = "{{ cookiecutter.project_slug }}"
API_MODES = ["responses", "chat_completions"]


def recipe(path: str) -> str:
    """The one README python block whose first line is `# <path>`, without that line."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(rf"```python\n# {re.escape(path)}\n(.*?)```", text, re.S)
    assert len(blocks) == 1, f"the README has {len(blocks)} recipes for {path}"
    return textwrap.dedent(blocks[0])


def run_recipe(path: str, **names: Any) -> dict[str, Any]:
    """Execute the recipe as a module of the package beside `path` (plus `names`)."""
    package = ".".join([PACKAGE, *Path(path).parent.parts])
    namespace: dict[str, Any] = {"__name__": f"{package}.recipe", "__package__": package, **names}
    exec(compile(recipe(path), f"README.md ({path})", "exec"), namespace)  # noqa: S102 (our README)
    return namespace


@pytest.fixture(params=API_MODES)
def server(request: pytest.FixtureRequest, app_factory: Callable[..., AppServer]) -> AppServer:
    return app_factory(openai_api=request.param)


async def action(client: ChatKitClient, thread_id: str, type_: str, payload: JSON) -> list[JSON]:
    params = {"thread_id": thread_id, "action": {"type": type_, "payload": payload}}
    return [event async for event in client.stream("threads.custom_action", params)]


# --- #5 previous_response_id ----------------------------------------------------------------


async def test_chain_turns_with_previous_response_id(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in run_recipe("chat/response_chain.py").items():
        if name.isupper():
            monkeypatch.setattr(response_chain, name, value)
    client = client_for(server=server)
    thread_id = thread_id_of(await client.send("first question"))
    await client.send("second question", thread_id)
    await client.send("third question", thread_id)
    first, second, third = streamed_requests(fake_model)
    if server.settings.openai_api == "chat_completions":  # nothing is chained there
        assert "first question" in json.dumps(third) and "previous_response_id" not in third
        return
    assert first.get("previous_response_id") is None
    assert str(second["previous_response_id"]).startswith("resp_")
    assert third["previous_response_id"] not in (None, second["previous_response_id"])
    assert "second question" not in json.dumps(third["input"]), "only what is new is sent"
    assert "third question" in json.dumps(third["input"])
    thread = await client.request("threads.get_by_id", {"thread_id": thread_id})
    assert "resp_" not in json.dumps(thread), "the client never sees it"


# --- #9 forbidding cancel ---------------------------------------------------------------------


async def test_forbid_cancelling_an_answer(
    server: AppServer, client_for: Callable[..., ChatKitClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatkit.types import StreamOptions

    method = run_recipe("chat/server.py", **vars(server_module), StreamOptions=StreamOptions)
    monkeypatch.setattr(
        server_module.ChatServer, "get_stream_options", method["get_stream_options"]
    )
    events = await client_for(server=server).send("hello")
    (options,) = [e for e in events if e["type"] == "stream_options"]
    assert options["stream_options"] == {"allow_cancel": False}
    assert not error_events(events)


# --- #10 threads in order of last activity ---------------------------------------------------


async def test_threads_in_order_of_last_activity(database_url: str) -> None:
    recipe_module = run_recipe("store/by_activity.py")
    store = recipe_module["ActivityOrderedStore"](database_url)
    context = make_context()
    start = datetime.now(UTC) - timedelta(hours=1)
    try:
        for minutes, name in enumerate(["old", "middle", "new"]):
            thread = ThreadMetadata(
                id=f"thr_{name}_{context.user.id}",
                title=name,
                created_at=start + timedelta(minutes=minutes),
            )
            await store.save_thread(thread, context)
        # A message in the oldest thread, just now: it becomes the most recent activity.
        item = AssistantMessageItem(
            id="msg_1",
            thread_id=f"thr_old_{context.user.id}",
            created_at=datetime.now(UTC),
            content=[AssistantMessageContent(text="a new answer")],
        )
        await store.add_thread_item(item.thread_id, item, context)
        page = await store.load_threads(2, None, "desc", context)
        assert [t.title for t in page.data] == ["old", "new"] and page.has_more
        rest = await store.load_threads(2, page.after, "desc", context)
        assert [t.title for t in rest.data] == ["middle"] and not rest.has_more
        created = await store.load_threads(3, None, "asc", context)
        assert [t.title for t in created.data] == ["old", "middle", "new"]
        other = await store.load_threads(10, None, "desc", make_context())
        assert other.data == [], "scoped to the user"
    finally:
        await store.close()


# --- #20 emitting structured input ----------------------------------------------------------


async def test_ask_the_user_with_structured_input(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(actions_module, "ACTIONS", dict(actions_module.ACTIONS))
    run_recipe("agent/delivery.py")
    client = client_for(server=server)
    thread_id = thread_id_of(await client.send("hello"))
    events = await action(client, thread_id, "orders.ask_delivery", {"order_id": "A-1"})
    assert not error_events(events)
    (asked,) = done_items(events, "structured_input")
    assert asked["inputs"][0]["question"] == "When should order A-1 arrive?"
    fake_model.reply = lambda body: "Morning it is."
    answer = {"answers": {"slot": {"values": ["Morning"]}}}
    params = {"thread_id": thread_id, "item_id": asked["id"], "input": answer}
    answered = [e async for e in client.stream("threads.add_structured_input", params)]
    assert not error_events(answered)
    (reply,) = done_items(answered, "assistant_message")
    assert assistant_text(reply) == "Morning it is."
    sent = json.dumps(streamed_requests(fake_model)[-1])
    assert "When should order A-1 arrive?" in sent and "Morning" in sent


# --- #53 quoted text -------------------------------------------------------------------------


async def test_quoted_text_reaches_the_model(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    section = README.read_text(encoding="utf-8").split("### Quoted text", 1)[1]
    body = json.loads(re.findall(r"-d '(\{.*?\})'", section, re.S)[0])
    events = [e async for e in client_for(server=server).stream(body["type"], body["params"])]
    assert not error_events(events)
    sent = json.dumps(streamed_requests(fake_model)[-1])
    assert "The user is referring to this in particular" in sent
    assert "the refund takes 14 days" in sent and "Why this?" in sent


# --- #54 per-thread state in thread.metadata ---------------------------------------------------


async def test_per_thread_state_in_thread_metadata(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tool = run_recipe("agent/bookings.py")["remember_booking"]
    monkeypatch.setattr(agent_module, "TOOLS", [tool])
    client = client_for(server=server)
    events = await client.send('which booking? @tool remember_booking {"booking_id": "BK-1234"}')
    assert not error_events(events)
    thread_id = thread_id_of(events)
    (stored,) = await rows(
        database_url,
        "SELECT payload -> 'metadata' ->> 'booking_id' FROM threads WHERE id = %s",
        thread_id,
    )
    assert stored == ("BK-1234",)
    thread = await client.request("threads.get_by_id", {"thread_id": thread_id})
    listed = await client.request("threads.list", {"limit": 5})
    updates = [e for e in events if e["type"] == "thread.updated"]
    sent = [thread, *listed["data"], *(e["thread"] for e in updates)]
    assert all(t.get("metadata", {}) == {} for t in sent), "the client never sees it"


# --- #60 your own user-facing error events ------------------------------------------------------


async def test_your_own_error_events(
    server: AppServer, client_for: Callable[..., ChatKitClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions_module, "ACTIONS", dict(actions_module.ACTIONS))
    run_recipe("agent/refunds.py")
    client = client_for(server=server)
    thread_id = thread_id_of(await client.send("hello"))
    refused = await action(client, thread_id, "orders.refund", {"order_id": "B-7"})
    (error,) = error_events(refused)
    assert error == {
        "type": "error",
        "code": "custom",
        "message": "Order B-7 cannot be refunded in the chat.",
        "allow_retry": False,
    }
    assert not error_events(await action(client, thread_id, "orders.refund", {"order_id": "A-1"}))


# --- #40 a custom stream converter, chained over the image converter -----------------------------


async def test_a_custom_stream_converter_composes_with_stored_images(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    converters = run_recipe("agent/converters.py")["CONVERTERS"]
    monkeypatch.setattr(converters_module, "CONVERTERS", converters)
    client = client_for(server=app_factory(web_search=True, image_generation=True))
    events = await client.send("@tool web_search what is new?")
    assert not error_events(events)
    (answer,) = done_items(events, "assistant_message")
    (annotation,) = answer["content"][0]["annotations"]
    assert annotation["source"]["url"] == "https://example.com/out?to=" + quote(SEARCH_URL, safe="")
    drawn = await client.send("draw a cat @tool image_generation")
    assert not error_events(drawn)
    (image,) = done_items(drawn, "generated_image")
    assert "/images/" in image["image"]["url"], "the image converter still stores the image"
