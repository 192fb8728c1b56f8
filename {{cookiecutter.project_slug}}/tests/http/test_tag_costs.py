"""@-mentions cost what they carry: at most MAX_TAGS_PER_MESSAGE, one block per entity, the
blocks within the message's budget, and older messages' tags as short references. Sizes are
those of the model requests the fake model received."""

from __future__ import annotations

from collections.abc import Callable

from {{ cookiecutter.project_slug }}.agent.entity_types import THREAD_CHARS
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, ChatKitHTTPError
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore
from tests.http.test_entities import (
    JSON,
    add_messages,
    make_thread,
    message,
    model_text,
    streamed,
    tag,
)
from tests.support.app import AppServer
from tests.support.db import make_context
from tests.support.fake_openai import FakeModel


def streamed_size(fake: FakeModel) -> int:
    """The bytes of the largest answer request (not the title's) the model received."""
    return max(
        size for body, size in zip(fake.requests, fake.sizes, strict=True) if body.get("stream")
    )


def text(value: str) -> JSON:
    return {"type": "input_text", "text": value}


def thread_created(events: list[JSON]) -> str:
    return str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))


async def wordy_thread(store: PostgresStore, user: object, title: str) -> str:
    """A thread whose newest messages fill a tag's whole block (THREAD_CHARS)."""
    thread_id = await make_thread(store, user, title)  # type: ignore[arg-type]
    texts = [f"{title} {n} " + "z" * 1500 for n in range(4)]
    await add_messages(store, user, thread_id, texts)  # type: ignore[arg-type]
    return thread_id


async def test_a_tag_flood_costs_one_block_and_later_turns_a_reference(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    store: PostgresStore,
) -> None:
    user = make_context()
    tagged = await wordy_thread(store, user, "Notes")
    client = client_for(user.user.id)
    plain = "hello " * 40
    await client.send(plain)
    plain_size = streamed_size(fake_model)

    # 20 tags of one entity, each with its own text (the SDK dedupes by text only)
    flood = [tag(tagged, f"Notes{n}", type="thread") for n in range(20)]
    fake_model.requests.clear()
    fake_model.sizes.clear()
    events = await client.send("", message=message(text(plain), *flood))
    thread_id = thread_created(events)
    sent = model_text(streamed(fake_model)[-1])
    assert sent.count("<TAGGED_THREAD>") == 1
    assert sent.count("(the same as above)") == 19
    flood_size = streamed_size(fake_model)
    assert flood_size < plain_size + THREAD_CHARS + 3000, (flood_size, plain_size)

    # the next turn: the earlier tags are one short reference each, not the block again
    fake_model.requests.clear()
    fake_model.sizes.clear()
    await client.send("and now?", thread_id)
    later = model_text(streamed(fake_model)[-1])
    assert "TAGGED_THREAD" not in later and "z" * 100 not in later
    assert later.count("(tagged in an earlier message)") == 20
    assert streamed_size(fake_model) < plain_size + 3000


async def test_more_tags_than_allowed_is_400_before_the_model(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    store: PostgresStore,
) -> None:
    user = make_context()
    tagged = await make_thread(store, user, "Notes")
    client = client_for(user.user.id)
    many = [tag(tagged, f"N{n}", type="thread") for n in range(21)]
    try:
        await client.send("", message=message(text("hi "), *many))
        raise AssertionError("21 tags were accepted")
    except ChatKitHTTPError as exc:
        assert exc.status == 400
        assert exc.body["error"]["code"] == "too_many_tags"
    assert fake_model.requests == []
    await client.send("", message=message(text("hi "), *many[:20]))
    assert len(streamed(fake_model)) == 1


async def test_the_blocks_stay_within_the_messages_budget(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    store: PostgresStore,
) -> None:
    """MAX_MESSAGE_CHARS (20,000) bounds the typed text and what its tags resolve to together."""
    user = make_context()
    client = client_for(user.user.id)
    await client.send("compare ")
    plain_size = streamed_size(fake_model)
    threads = [await wordy_thread(store, user, f"T{n}") for n in range(6)]
    parts = [tag(t, f"T{n}", type="thread") for n, t in enumerate(threads)]
    await client.send("", message=message(text("compare "), *parts))
    sent = model_text(streamed(fake_model)[-1])
    blocks = sent.count("<TAGGED_THREAD>")  # about 4,100 characters each: 4 fit in 20,000
    assert blocks == 4 and sent.count("this message's tags are over its budget") == 2
    assert streamed_size(fake_model) < plain_size + 20_000 + 2000
