"""PostgresStore against a real PostgreSQL: round-trips, pagination, scoping, concurrency.

Covers what chatkit-python's own tests/test_store.py covers, and more. Each test gets a
fresh user (the `context` fixture), so tests never see each other's rows.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import psycopg
import pytest
from agents.models.fake_id import FAKE_RESPONSES_ID
from chatkit.store import NotFoundError, StoreItemType
from chatkit.types import (
    Annotation,
    AssistantMessageContent,
    AssistantMessageItem,
    ClientToolCallItem,
    ClosedStatus,
    CustomSummary,
    CustomTask,
    DurationSummary,
    EndOfTurnItem,
    EntitySource,
    FileAttachment,
    FileSource,
    GeneratedImage,
    GeneratedImageItem,
    HiddenContextItem,
    ImageAttachment,
    InferenceOptions,
    LockedStatus,
    SDKHiddenContextItem,
    SearchTask,
    StructuredInputFreeform,
    StructuredInputItem,
    StructuredInputMultipleChoice,
    StructuredInputMultipleChoiceOption,
    TaskItem,
    ThoughtTask,
    ThreadItem,
    ThreadMetadata,
    ToolChoice,
    URLSource,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
    WidgetItem,
    Workflow,
    WorkflowItem,
)
from chatkit.widgets import Button, Card, Col, Markdown, Row, Text
from psycopg import sql
from pydantic import AnyUrl

from {{ cookiecutter.project_slug }}.context import RequestContext
from {{ cookiecutter.project_slug }}.store import PostgresStore
from {{ cookiecutter.project_slug }}.store.queries import (
    ITEMS_QUERIES,
    LOAD_ITEM,
    LOAD_THREAD,
    THREADS_QUERIES,
)
from tests.support.chatkit import uid
from tests.support.db import make_context, with_options

pytestmark = pytest.mark.filterwarnings(
    "ignore:Direct usage of named widget classes:DeprecationWarning"
)

NOW = datetime(2025, 3, 1, 12, 0, 0, 123456)
R = TypeVar("R")


def make_thread(thread_id: str | None = None, created_at: datetime | None = None) -> ThreadMetadata:
    return ThreadMetadata(
        id=thread_id or uid("thr"),
        title="Test Thread",
        created_at=created_at or datetime.now(),
        metadata={"test": "test", "nested": {"n": [1, 2.5, None, True]}},
    )


def message(
    thread_id: str, item_id: str, created_at: datetime, text: str = "hi"
) -> UserMessageItem:
    return UserMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=created_at,
        content=[UserMessageTextContent(text=text)],
        attachments=[],
        inference_options=InferenceOptions(),
    )


def every_item_type(thread_id: str) -> list[ThreadItem]:
    """One item of every ThreadItem variant, one second apart."""
    at = [NOW + timedelta(seconds=i) for i in range(12)]
    attachment = FileAttachment(
        id="atc_1", name="a.txt", mime_type="text/plain", thread_id=thread_id, metadata={"k": 1}
    )
    image = ImageAttachment(
        id="atc_2",
        name="p.png",
        mime_type="image/png",
        preview_url=AnyUrl("https://example.com/p.png"),
    )
    widget = Card(
        children=[
            Col(
                padding={"x": 4, "y": 3},
                border={"bottom": 1},
                children=[
                    Text(value="Title", weight="medium", size="sm", color="secondary"),
                    Markdown(value="**bold** text"),
                    Row(children=[Button(label="Go", key="go")]),
                ],
            )
        ]
    )
    return [
        UserMessageItem(
            id="msg_user",
            thread_id=thread_id,
            created_at=at[0],
            content=[
                UserMessageTextContent(text="Hello ünïcödé 👋"),
                UserMessageTagContent(id="tag1", text="@doc", data={"x": [1, 2]}, group="g"),
            ],
            attachments=[attachment, image],
            quoted_text="quoted",
            inference_options=InferenceOptions(tool_choice=ToolChoice(id="t"), model="m"),
        ),
        AssistantMessageItem(
            id="msg_assistant",
            thread_id=thread_id,
            created_at=at[1],
            content=[
                AssistantMessageContent(
                    annotations=[
                        Annotation(source=URLSource(title="u", url="https://e.com"), index=1),
                        Annotation(source=FileSource(title="f", filename="f.pdf")),
                        Annotation(source=EntitySource(title="e", id="ent")),
                    ],
                    text="Answer",
                )
            ],
        ),
        ClientToolCallItem(
            id="tc_1",
            thread_id=thread_id,
            created_at=at[2],
            call_id="call_1",
            name="lookup",
            arguments={"q": "x", "n": 3},
            output={"ok": True},
            status="completed",
        ),
        WidgetItem(id="wd_1", thread_id=thread_id, created_at=at[3], widget=widget, copy_text="c"),
        GeneratedImageItem(
            id="img_1",
            thread_id=thread_id,
            created_at=at[4],
            image=GeneratedImage(id="g", url="https://e.com/g.png"),
        ),
        StructuredInputItem(
            id="si_1",
            thread_id=thread_id,
            created_at=at[5],
            inputs=[
                StructuredInputMultipleChoice(
                    id="q1",
                    question="Pick",
                    options=[StructuredInputMultipleChoiceOption(value="a")],
                    multiple=True,
                ),
                StructuredInputFreeform(id="q2", question="Why?", description="d"),
            ],
        ),
        WorkflowItem(
            id="wf_1",
            thread_id=thread_id,
            created_at=at[6],
            workflow=Workflow(
                type="reasoning",
                tasks=[ThoughtTask(content="thinking"), SearchTask(queries=["a", "b"])],
                summary=DurationSummary(duration=3),
                expanded=True,
            ),
        ),
        WorkflowItem(
            id="wf_2",
            thread_id=thread_id,
            created_at=at[7],
            workflow=Workflow(type="custom", tasks=[], summary=CustomSummary(title="s")),
        ),
        TaskItem(id="tsk_1", thread_id=thread_id, created_at=at[8], task=CustomTask(title="t")),
        HiddenContextItem(
            id="hc_1", thread_id=thread_id, created_at=at[9], content={"any": ["json", 1]}
        ),
        SDKHiddenContextItem(id="shcx_1", thread_id=thread_id, created_at=at[10], content="c"),
        EndOfTurnItem(id="eot_1", thread_id=thread_id, created_at=at[11]),
    ]


async def saved_thread(
    store: PostgresStore, context: RequestContext, **kwargs: object
) -> ThreadMetadata:
    thread = make_thread(**kwargs)  # type: ignore[arg-type]
    await store.save_thread(thread, context)
    return thread


async def walk(
    store: PostgresStore, thread_id: str, limit: int, order: str, context: RequestContext
) -> list[str]:
    """Every item id, page by page, checking the Page invariants on the way."""
    seen: list[str] = []
    after: str | None = None
    while True:
        page = await store.load_thread_items(thread_id, after, limit, order, context)
        seen += [item.id for item in page.data]
        assert len(page.data) <= limit
        if not page.has_more:
            assert page.after is None
            return seen
        assert len(page.data) == limit
        assert page.after == page.data[-1].id
        after = page.after


# --- threads --------------------------------------------------------------------------


async def test_save_and_load_thread_metadata(store: PostgresStore, context: RequestContext) -> None:
    thread = await saved_thread(store, context)
    assert await store.load_thread(thread.id, context) == thread


async def test_null_title(store: PostgresStore, context: RequestContext) -> None:
    thread = make_thread()
    thread.title = None
    await store.save_thread(thread, context)
    loaded = await store.load_thread(thread.id, context)
    assert loaded.title is None
    assert loaded == thread


@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2024, 5, 6, 7, 8, 9, 123456),
        datetime(2024, 5, 6, 7, 8, 9, 1, tzinfo=UTC),
        datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    ],
    ids=["naive", "utc", "offset"],
)
async def test_datetimes_round_trip_exactly(
    store: PostgresStore, context: RequestContext, created_at: datetime
) -> None:
    thread = await saved_thread(store, context, created_at=created_at)
    loaded = await store.load_thread(thread.id, context)
    assert loaded == thread
    assert (loaded.created_at.tzinfo is None) == (created_at.tzinfo is None)
    assert loaded.created_at.utcoffset() == created_at.utcoffset()
    item = message(thread.id, "msg_dt", created_at)
    await store.add_thread_item(thread.id, item, context)
    assert await store.load_item(thread.id, item.id, context) == item


async def test_update_thread_is_an_upsert(store: PostgresStore, context: RequestContext) -> None:
    thread = await saved_thread(store, context)
    thread.title = "Updated Title"
    thread.status = LockedStatus(reason="busy")
    thread.allowed_image_domains = ["example.com"]
    thread.metadata["more"] = "x"
    await store.save_thread(thread, context)
    assert await store.load_thread(thread.id, context) == thread
    thread.status = ClosedStatus()
    await store.save_thread(thread, context)
    page = await store.load_threads(10, None, "asc", context)
    assert page.data == [thread]


async def test_load_threads_pages_in_both_orders(
    store: PostgresStore, context: RequestContext
) -> None:
    threads = [
        await saved_thread(
            store,
            context,
            thread_id=f"thread{i}_{uuid.uuid4().hex[:6]}",
            created_at=NOW + timedelta(seconds=i),
        )
        for i in range(5)
    ]
    ids = [t.id for t in threads]
    page1 = await store.load_threads(limit=2, after=None, order="asc", context=context)
    assert [t.id for t in page1.data] == ids[:2]
    assert page1.has_more is True
    assert page1.after == ids[1]
    page2 = await store.load_threads(limit=2, after=page1.after, order="asc", context=context)
    assert [t.id for t in page2.data] == ids[2:4]
    page3 = await store.load_threads(limit=2, after=page2.after, order="asc", context=context)
    assert [t.id for t in page3.data] == ids[4:]
    assert page3.has_more is False
    assert page3.after is None

    desc = await store.load_threads(limit=3, after=None, order="desc", context=context)
    assert [t.id for t in desc.data] == ids[::-1][:3]
    rest = await store.load_threads(limit=3, after=desc.after, order="desc", context=context)
    assert [t.id for t in rest.data] == ids[::-1][3:]
    assert (rest.has_more, rest.after) == (False, None)

    exact = await store.load_threads(limit=5, after=None, order="desc", context=context)
    assert (len(exact.data), exact.has_more, exact.after) == (5, False, None)


async def test_threads_are_ordered_by_time_not_id(
    store: PostgresStore, context: RequestContext
) -> None:
    suffix = uuid.uuid4().hex[:6]
    for name, seconds in (("c", 0), ("a", 1), ("b", 2)):
        await saved_thread(
            store,
            context,
            thread_id=f"{name}_{suffix}",
            created_at=NOW + timedelta(seconds=seconds),
        )
    page = await store.load_threads(10, None, "asc", context)
    assert [t.id for t in page.data] == [f"c_{suffix}", f"a_{suffix}", f"b_{suffix}"]


async def test_delete_thread_cascades_to_items(
    store: PostgresStore, context: RequestContext
) -> None:
    thread = await saved_thread(store, context)
    for item in every_item_type(thread.id):
        await store.add_thread_item(thread.id, item, context)
    await store.delete_thread(thread.id, context)
    with pytest.raises(NotFoundError):
        await store.load_thread(thread.id, context)
    with pytest.raises(NotFoundError):
        await store.load_thread_items(thread.id, None, 10, "asc", context)
    async with store.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM thread_items WHERE thread_id = %s", (thread.id,)
        )
        assert await cursor.fetchone() == (0,)
    with pytest.raises(NotFoundError):
        await store.delete_thread(thread.id, context)


# --- items ----------------------------------------------------------------------------


async def test_every_item_type_round_trips(store: PostgresStore, context: RequestContext) -> None:
    thread = await saved_thread(store, context)
    items = every_item_type(thread.id)
    for item in items:
        await store.add_thread_item(thread.id, item, context)
    page = await store.load_thread_items(thread.id, None, 50, "asc", context)
    assert page.data == items
    assert (page.has_more, page.after) == (False, None)
    for item in items:
        assert await store.load_item(thread.id, item.id, context) == item
    desc = await store.load_thread_items(thread.id, None, 50, "desc", context)
    assert desc.data == items[::-1]


async def test_save_item_updates_in_place(store: PostgresStore, context: RequestContext) -> None:
    thread = await saved_thread(store, context)
    assistant = AssistantMessageItem(id="msg_a", thread_id=thread.id, created_at=NOW, content=[])
    widget = WidgetItem(
        id="wd",
        thread_id=thread.id,
        created_at=NOW + timedelta(seconds=1),
        widget=Card(children=[Text(value="Test")]),
    )
    await store.add_thread_item(thread.id, assistant, context)
    await store.add_thread_item(thread.id, widget, context)
    assistant.content = [AssistantMessageContent(text="This is an assistant message.")]
    await store.save_item(thread.id, assistant, context)
    widget.widget = Card(children=[Text(value="Changed")])
    await store.save_item(thread.id, widget, context)
    assert await store.load_item(thread.id, assistant.id, context) == assistant
    assert await store.load_item(thread.id, widget.id, context) == widget
    page = await store.load_thread_items(thread.id, None, 10, "asc", context)
    assert page.data == [assistant, widget]


async def test_save_item_inserts_when_new(store: PostgresStore, context: RequestContext) -> None:
    thread = await saved_thread(store, context)
    item = message(thread.id, "msg_new", NOW)
    await store.save_item(thread.id, item, context)
    assert await store.load_item(thread.id, item.id, context) == item


async def test_add_thread_item_twice_does_not_duplicate(
    store: PostgresStore, context: RequestContext
) -> None:
    thread = await saved_thread(store, context)
    item = message(thread.id, "msg_once", NOW)
    await store.add_thread_item(thread.id, item, context)
    item.content = [UserMessageTextContent(text="second")]
    await store.add_thread_item(thread.id, item, context)
    page = await store.load_thread_items(thread.id, None, 10, "asc", context)
    assert page.data == [item]


async def test_same_item_id_in_two_threads(store: PostgresStore, context: RequestContext) -> None:
    first, second = await saved_thread(store, context), await saved_thread(store, context)
    await store.add_thread_item(first.id, message(first.id, "msg_x", NOW, "one"), context)
    await store.add_thread_item(second.id, message(second.id, "msg_x", NOW, "two"), context)
    one = await store.load_item(first.id, "msg_x", context)
    two = await store.load_item(second.id, "msg_x", context)
    assert isinstance(one, UserMessageItem) and isinstance(two, UserMessageItem)
    assert one.content[0].text == "one" and two.content[0].text == "two"  # type: ignore[union-attr]


async def test_items_are_ordered_by_time_not_id(
    store: PostgresStore, context: RequestContext
) -> None:
    thread = await saved_thread(store, context)
    for item_id, seconds in (("msg3", 0), ("msg1", 1), ("msg2", 2)):
        await store.add_thread_item(
            thread.id, message(thread.id, item_id, NOW + timedelta(seconds=seconds)), context
        )
    asc = await store.load_thread_items(thread.id, None, 3, "asc", context)
    desc = await store.load_thread_items(thread.id, None, 3, "desc", context)
    assert [i.id for i in asc.data] == ["msg3", "msg1", "msg2"]
    assert [i.id for i in desc.data] == ["msg2", "msg1", "msg3"]


async def test_item_pages_with_after_in_both_orders(
    store: PostgresStore, context: RequestContext
) -> None:
    thread = await saved_thread(store, context)
    for i in range(5):
        await store.add_thread_item(
            thread.id, message(thread.id, f"msg{i}", NOW + timedelta(seconds=i)), context
        )
    after = await store.load_thread_items(thread.id, "msg1", 3, "asc", context)
    assert [i.id for i in after.data] == ["msg2", "msg3", "msg4"]
    assert (after.has_more, after.after) == (False, None)
    first = await store.load_thread_items(thread.id, None, 2, "asc", context)
    assert [i.id for i in first.data] == ["msg0", "msg1"]
    assert (first.has_more, first.after) == (True, "msg1")
    newest = await store.load_thread_items(thread.id, None, 2, "desc", context)
    assert [i.id for i in newest.data] == ["msg4", "msg3"]
    assert (newest.has_more, newest.after) == (True, "msg3")
    older = await store.load_thread_items(thread.id, "msg3", 2, "desc", context)
    assert [i.id for i in older.data] == ["msg2", "msg1"]
    assert (older.has_more, older.after) == (True, "msg1")
    oldest = await store.load_thread_items(thread.id, "msg1", 2, "desc", context)
    assert [i.id for i in oldest.data] == ["msg0"]
    assert (oldest.has_more, oldest.after) == (False, None)
    last = await store.load_thread_items(thread.id, "msg4", 2, "asc", context)
    assert (last.data, last.has_more, last.after) == ([], False, None)


async def test_equal_timestamps_are_neither_skipped_nor_repeated(
    store: PostgresStore, context: RequestContext
) -> None:
    thread = await saved_thread(store, context)
    ids = [f"msg_{i:02d}_{uuid.uuid4().hex[:4]}" for i in range(23)]
    random.Random(7).shuffle(ids)  # ids in no particular order; insertion order breaks ties
    for item_id in ids:
        await store.add_thread_item(thread.id, message(thread.id, item_id, NOW), context)
    for limit in (1, 4, 7, 23, 30):
        assert await walk(store, thread.id, limit, "asc", context) == ids
        assert await walk(store, thread.id, limit, "desc", context) == ids[::-1]


async def test_random_timestamps_page_like_a_sorted_list(
    store: PostgresStore, context: RequestContext
) -> None:
    rng = random.Random(42)
    for _ in range(6):
        thread = await saved_thread(store, context)
        items = [
            message(
                thread.id, f"m{n}_{rng.randrange(10**6)}", NOW + timedelta(seconds=rng.randrange(4))
            )
            for n in range(rng.randrange(0, 15))
        ]
        for item in items:
            await store.add_thread_item(thread.id, item, context)
        # sorted() is stable: equal timestamps keep insertion order, as the store does
        expected = [i.id for i in sorted(items, key=lambda i: i.created_at)]
        limit = rng.randrange(1, 6)
        assert await walk(store, thread.id, limit, "asc", context) == expected
        assert await walk(store, thread.id, limit, "desc", context) == expected[::-1]


async def test_concurrent_writers(store: PostgresStore, context: RequestContext) -> None:
    thread = await saved_thread(store, context)
    items = [
        message(thread.id, f"msg_c{i:02d}", NOW + timedelta(milliseconds=i)) for i in range(50)
    ]
    await asyncio.gather(*(store.add_thread_item(thread.id, item, context) for item in items))
    page = await store.load_thread_items(thread.id, None, 100, "asc", context)
    assert page.data == items
    # and concurrent upserts of one id leave exactly one row
    await asyncio.gather(*(store.save_item(thread.id, items[0], context) for _ in range(20)))
    assert len((await store.load_thread_items(thread.id, None, 100, "asc", context)).data) == 50


async def test_delete_thread_item(store: PostgresStore, context: RequestContext) -> None:
    thread = await saved_thread(store, context)
    await store.add_thread_item(thread.id, message(thread.id, "msg_del", NOW), context)
    await store.delete_thread_item(thread.id, "msg_del", context)
    with pytest.raises(NotFoundError):
        await store.load_item(thread.id, "msg_del", context)
    await store.delete_thread_item(thread.id, "msg_del", context)  # missing: a no-op


async def test_fake_responses_id_gets_a_fresh_id(
    store: PostgresStore, context: RequestContext
) -> None:
    thread = await saved_thread(store, context)
    first = AssistantMessageItem(
        id=FAKE_RESPONSES_ID,
        thread_id=thread.id,
        created_at=NOW,
        content=[AssistantMessageContent(text="1")],
    )
    second = first.model_copy(deep=True, update={"created_at": NOW + timedelta(seconds=1)})
    await store.add_thread_item(thread.id, first, context)
    await store.save_item(thread.id, second, context)
    assert FAKE_RESPONSES_ID not in (first.id, second.id)
    assert first.id != second.id and first.id.startswith("msg_")
    page = await store.load_thread_items(thread.id, None, 10, "asc", context)
    assert page.data == [first, second]


# --- attachments ----------------------------------------------------------------------


async def test_attachments_round_trip_upsert_and_delete(
    store: PostgresStore, context: RequestContext
) -> None:
    file = FileAttachment(id=uid("atc"), mime_type="text/plain", name="test.txt")
    image = ImageAttachment(
        id=uid("atc"),
        mime_type="image/png",
        name="test.png",
        preview_url=AnyUrl("https://example.com/test.png"),
        metadata={"source": "test"},
    )
    for attachment in (file, image):
        await store.save_attachment(attachment, context)
        assert await store.load_attachment(attachment.id, context) == attachment
    file.thread_id = "thr_1"
    file.metadata = {"stored": True}
    await store.save_attachment(file, context)
    assert await store.load_attachment(file.id, context) == file
    await store.delete_attachment(file.id, context)
    with pytest.raises(NotFoundError):
        await store.load_attachment(file.id, context)
    await store.delete_attachment(file.id, context)  # missing: a no-op


# --- not found ------------------------------------------------------------------------


async def test_not_found(store: PostgresStore, context: RequestContext) -> None:
    thread = await saved_thread(store, context)
    await store.add_thread_item(thread.id, message(thread.id, "msg_1", NOW), context)
    with pytest.raises(NotFoundError):
        await store.load_thread("thr_missing", context)
    with pytest.raises(NotFoundError):
        await store.load_item(thread.id, "does_not_exist", context)
    with pytest.raises(NotFoundError):
        await store.load_attachment("atc_missing", context)
    with pytest.raises(NotFoundError):
        await store.load_thread_items("thr_missing", None, 10, "asc", context)
    with pytest.raises(NotFoundError):
        await store.add_thread_item("thr_missing", message("thr_missing", "m", NOW), context)
    with pytest.raises(NotFoundError):
        await store.delete_thread("thr_missing", context)
    for order in ("asc", "desc"):
        with pytest.raises(NotFoundError):
            await store.load_thread_items(thread.id, "msg_unknown", 10, order, context)
        with pytest.raises(NotFoundError):
            await store.load_threads(10, "thr_unknown", order, context)
    with pytest.raises(ValueError, match="order"):
        await store.load_threads(10, None, "sideways", context)


async def test_after_from_another_thread_is_not_found(
    store: PostgresStore, context: RequestContext
) -> None:
    first, second = await saved_thread(store, context), await saved_thread(store, context)
    await store.add_thread_item(first.id, message(first.id, "msg_first", NOW), context)
    await store.add_thread_item(second.id, message(second.id, "msg_second", NOW), context)
    with pytest.raises(NotFoundError):
        await store.load_thread_items(second.id, "msg_first", 10, "asc", context)


# --- isolation by user ----------------------------------------------------------------


async def test_threads_are_isolated_by_user(store: PostgresStore, context: RequestContext) -> None:
    other = make_context()
    thread = await saved_thread(store, context)
    mine = await saved_thread(store, other)
    with pytest.raises(NotFoundError):
        await store.load_thread(thread.id, other)
    hijack = thread.model_copy(update={"title": "stolen"})
    with pytest.raises(NotFoundError):
        await store.save_thread(hijack, other)
    with pytest.raises(NotFoundError):
        await store.delete_thread(thread.id, other)
    assert await store.load_thread(thread.id, context) == thread
    assert [t.id for t in (await store.load_threads(10, None, "desc", other)).data] == [mine.id]
    for order in ("asc", "desc"):
        with pytest.raises(NotFoundError):
            await store.load_threads(10, thread.id, order, other)


async def test_items_are_isolated_by_user(store: PostgresStore, context: RequestContext) -> None:
    other = make_context()
    thread = await saved_thread(store, context)
    items = every_item_type(thread.id)
    for item in items:
        await store.add_thread_item(thread.id, item, context)
    assert (await store.load_thread_items(thread.id, None, 50, "asc", context)).data == items
    with pytest.raises(NotFoundError):
        await store.load_thread_items(thread.id, None, 10, "asc", other)
    with pytest.raises(NotFoundError):
        await store.load_thread_items(thread.id, items[0].id, 10, "desc", other)
    with pytest.raises(NotFoundError):
        await store.load_item(thread.id, items[0].id, other)
    changed = message(thread.id, items[0].id, NOW, "overwritten")
    with pytest.raises(NotFoundError):
        await store.save_item(thread.id, changed, other)
    with pytest.raises(NotFoundError):
        await store.add_thread_item(thread.id, message(thread.id, "msg_intruder", NOW), other)
    await store.delete_thread_item(thread.id, items[0].id, other)
    # a foreign cursor does not work inside the other user's own thread either
    own = await saved_thread(store, other)
    await store.add_thread_item(own.id, message(own.id, "msg_own", NOW), other)
    with pytest.raises(NotFoundError):
        await store.load_thread_items(own.id, items[1].id, 10, "asc", other)
    assert (await store.load_thread_items(thread.id, None, 50, "asc", context)).data == items


async def test_attachments_are_isolated_by_user(
    store: PostgresStore, context: RequestContext
) -> None:
    other = make_context()
    file = FileAttachment(id=uid("atc"), mime_type="text/plain", name="secret.txt")
    await store.save_attachment(file, context)
    with pytest.raises(NotFoundError):
        await store.load_attachment(file.id, other)
    with pytest.raises(NotFoundError):
        await store.save_attachment(file.model_copy(update={"name": "stolen"}), other)
    await store.delete_attachment(file.id, other)
    assert await store.load_attachment(file.id, context) == file


# --- id generators --------------------------------------------------------------------


class CustomIdStore(PostgresStore):
    """Overrides the id generators, as an app may."""

    counter = 0

    def generate_thread_id(self, context: RequestContext) -> str:
        self.counter += 1
        return f"thr_custom_{self.counter}_{context.user.id}"

    def generate_item_id(
        self, item_type: StoreItemType, thread: ThreadMetadata, context: RequestContext
    ) -> str:
        self.counter += 1
        return f"{item_type}_custom_{self.counter}_{thread.id}"


async def test_default_id_generators_use_default_prefixes(
    store: PostgresStore, context: RequestContext
) -> None:
    assert store.generate_thread_id(context).startswith("thr_")
    thread = make_thread()
    expected = {"message": "msg_", "tool_call": "tc_", "task": "tsk_", "workflow": "wf_"}
    for kind, prefix in expected.items():
        assert store.generate_item_id(kind, thread, context).startswith(prefix)  # type: ignore[arg-type]


async def test_custom_id_generators_are_used(database_url: str, context: RequestContext) -> None:
    custom = CustomIdStore(database_url, max_size=2)
    try:
        thread = make_thread(thread_id=custom.generate_thread_id(context))
        assert thread.id == f"thr_custom_1_{context.user.id}"
        await custom.save_thread(thread, context)
        assert (
            custom.generate_item_id("message", thread, context) == f"message_custom_2_{thread.id}"
        )
        assert (
            custom.generate_item_id("tool_call", thread, context)
            == f"tool_call_custom_3_{thread.id}"
        )
        fake = message(thread.id, FAKE_RESPONSES_ID, NOW)
        await custom.add_thread_item(thread.id, fake, context)
        assert fake.id == f"message_custom_4_{thread.id}"
        assert await custom.load_item(thread.id, fake.id, context) == fake
    finally:
        await custom.close()


# --- lifecycle ------------------------------------------------------------------------


def test_store_is_built_outside_an_event_loop(database_url: str) -> None:
    built = PostgresStore(database_url)
    with pytest.raises(RuntimeError, match="not open"):
        _ = built.pool


async def test_lazy_open_close_and_reopen(database_url: str, context: RequestContext) -> None:
    lazy = PostgresStore(database_url, min_size=0, max_size=2)
    thread = make_thread()
    await asyncio.gather(*(lazy.save_thread(thread, context) for _ in range(5)))  # opens once
    assert await lazy.ping()
    await lazy.close()
    with pytest.raises(RuntimeError):
        _ = lazy.pool
    assert await lazy.load_thread(thread.id, context) == thread  # reopens on use
    await lazy.close()


async def test_ping_is_false_when_the_database_is_unreachable(tmp_path: object) -> None:
    unreachable = PostgresStore("postgresql://nobody@/postgres?host=/nonexistent-socket-dir")
    try:
        assert await unreachable.ping(timeout=1.0) is False
    finally:
        await unreachable.close()


async def test_pool_recovers_when_connections_are_killed(
    database_url: str, context: RequestContext
) -> None:
    name = f"recovery-{uuid.uuid4().hex[:8]}"
    recovering = PostgresStore(
        with_options(database_url, application_name=name), min_size=2, max_size=2
    )
    try:
        thread = make_thread()
        await recovering.save_thread(thread, context)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            cursor = await admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (name,),
            )
            assert (await cursor.fetchone() or (0,))[0] >= 1
        for _ in range(4):  # every pooled connection was killed, as by a server restart
            assert await recovering.load_thread(thread.id, context) == thread
        assert await recovering.ping()
    finally:
        await recovering.close()


# --- query plans ----------------------------------------------------------------------


async def test_every_page_query_uses_indexes(store: PostgresStore, context: RequestContext) -> None:
    thread = await saved_thread(store, context)
    await store.add_thread_item(thread.id, message(thread.id, "msg_1", NOW), context)
    params = {"user": context.user.id, "thread": thread.id, "id": thread.id, "limit": 21}
    queries: list[tuple[str | sql.Composed, dict[str, object]]] = [
        (LOAD_THREAD, params),
        (LOAD_ITEM, {**params, "id": "msg_1"}),
    ]
    for order in ("asc", "desc"):
        queries.append((THREADS_QUERIES[False][order], params))
        queries.append((THREADS_QUERIES[True][order], {**params, "after": thread.id}))
        queries.append((ITEMS_QUERIES[False][order], params))
        queries.append((ITEMS_QUERIES[True][order], {**params, "after": "msg_1"}))
    async with store.pool.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        for query, values in queries:
            body = sql.SQL(query) if isinstance(query, str) else query
            explain = sql.Composed([sql.SQL("EXPLAIN "), body])
            cursor = await conn.execute(explain, values)
            plan = "\n".join(row[0] for row in await cursor.fetchall())
            assert "Seq Scan" not in plan, plan


class Statements:
    """Counts the statements the store sends to the database (every one goes through
    `PostgresStore._execute`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        execute = PostgresStore._execute

        async def counting(
            store: PostgresStore, query: Any, params: Mapping[str, Any], *, fetch: bool
        ) -> tuple[list[tuple[Any, ...]], int]:
            self.count += 1
            return await execute(store, query, params, fetch=fetch)

        monkeypatch.setattr(PostgresStore, "_execute", counting)

    async def cost(self, operation: Awaitable[R]) -> tuple[R, int]:
        """What `operation` returns, and how many statements it sent."""
        before = self.count
        result = await operation
        return result, self.count - before


async def test_reads_within_a_request_are_cached_and_writes_refresh_them(
    store: PostgresStore, context: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One request reads its thread and newest items once; a write costs its statement and
    the next read goes to the database again; another request shares nothing."""
    thread = await saved_thread(store, context)
    start = datetime.now(UTC)
    items = [message(thread.id, uid("msg"), start + timedelta(seconds=n)) for n in range(5)]
    for item in items:
        await store.add_thread_item(thread.id, item, context)
    newest_ids = [item.id for item in reversed(items)]
    statements = Statements(monkeypatch)
    request = make_context(context.user.id)  # a new request: nothing cached yet

    # The thread: one statement, however often it is loaded; each load is a fresh object.
    loaded, cost = await statements.cost(store.load_thread(thread.id, request))
    assert cost == 1 and loaded == thread
    again, cost = await statements.cost(store.load_thread(thread.id, request))
    assert cost == 0 and again == thread and again is not loaded
    again.title = "changed but not saved"
    unchanged, cost = await statements.cost(store.load_thread(thread.id, request))
    assert cost == 0 and unchanged.title == thread.title
    again.title = "Renamed"
    _, cost = await statements.cost(store.save_thread(again, request))
    assert cost == 1
    renamed, cost = await statements.cost(store.load_thread(thread.id, request))
    assert cost == 1 and renamed.title == "Renamed"

    # The newest page: one statement; the same or a smaller newest page costs nothing, and
    # a bigger one nothing either when the first page already held every item.
    page, cost = await statements.cost(
        store.load_thread_items(thread.id, None, 20, "desc", request)
    )
    assert cost == 1 and [i.id for i in page.data] == newest_ids and not page.has_more
    same, cost = await statements.cost(
        store.load_thread_items(thread.id, None, 20, "desc", request)
    )
    assert cost == 0 and same == page
    smaller, cost = await statements.cost(
        store.load_thread_items(thread.id, None, 2, "desc", request)
    )
    assert cost == 0
    assert smaller == await store.load_thread_items(
        thread.id, None, 2, "desc", make_context(context.user.id)
    )
    assert [i.id for i in smaller.data] == newest_ids[:2] and smaller.after == newest_ids[1]
    bigger, cost = await statements.cost(
        store.load_thread_items(thread.id, None, 50, "desc", request)
    )
    assert cost == 0 and bigger == page

    # Other orders and cursors always read the database.
    for _ in range(2):
        _, cost = await statements.cost(
            store.load_thread_items(thread.id, None, 20, "asc", request)
        )
        assert cost == 1
        _, cost = await statements.cost(
            store.load_thread_items(thread.id, newest_ids[0], 2, "desc", request)
        )
        assert cost == 1

    # Each item write costs one statement, and the next newest page is read again.
    extra = message(thread.id, uid("msg"), start + timedelta(hours=1), "the newest")
    _, cost = await statements.cost(store.add_thread_item(thread.id, extra, request))
    assert cost == 1
    top, cost = await statements.cost(store.load_thread_items(thread.id, None, 1, "desc", request))
    assert cost == 1 and top.data == [extra]
    extra.content = [UserMessageTextContent(text="edited")]
    _, cost = await statements.cost(store.save_item(thread.id, extra, request))
    assert cost == 1
    top, cost = await statements.cost(store.load_thread_items(thread.id, None, 1, "desc", request))
    assert cost == 1 and top.data == [extra]
    _, cost = await statements.cost(store.delete_thread_item(thread.id, extra.id, request))
    assert cost == 1
    top, cost = await statements.cost(store.load_thread_items(thread.id, None, 1, "desc", request))
    assert cost == 1 and [i.id for i in top.data] == newest_ids[:1]

    # A bigger newest page than the cached one (which had more rows beyond it) reads again.
    other = make_context(context.user.id)
    _, cost = await statements.cost(store.load_thread_items(thread.id, None, 2, "desc", other))
    assert cost == 1, "another request shares nothing with the first"
    wider, cost = await statements.cost(store.load_thread_items(thread.id, None, 4, "desc", other))
    assert cost == 1 and [i.id for i in wider.data] == newest_ids[:4] and wider.has_more
    _, cost = await statements.cost(store.load_thread_items(thread.id, None, 3, "desc", other))
    assert cost == 0
    _, cost = await statements.cost(store.load_thread(thread.id, other))
    assert cost == 1

    # An empty thread's newest page is cached too.
    empty = await saved_thread(store, request)
    for expected in (1, 0):
        page, cost = await statements.cost(
            store.load_thread_items(empty.id, None, 20, "desc", request)
        )
        assert cost == expected and page.data == []

    # Deleting the thread drops both entries: the next reads find nothing.
    _, cost = await statements.cost(store.delete_thread(thread.id, request))
    assert cost == 1
    before = statements.count
    with pytest.raises(NotFoundError):
        await store.load_thread(thread.id, request)
    with pytest.raises(NotFoundError):
        await store.load_thread_items(thread.id, None, 1, "desc", request)
    assert statements.count - before == 2, "both read the database, not the cache"
