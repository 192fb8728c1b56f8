"""The phases about threads: a 2,000-item thread against a new one, and one conversation
alternating between two instances; prefilling long threads through each service's store."""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from driver import generated
from driver.clients import Service
from driver.config import BENCH_DIR, WINDOW_ITEMS
from driver.phases import LoadPhases
from driver.stats import ms, percentile, safe_ratio


class ThreadPhases(LoadPhases):
    """The load phases, and these two."""

    async def long_thread(self) -> None:
        """Turn overhead in a thread of `long_items` items vs a short thread."""
        c = self.config
        self.say(f"turn overhead: {c.long_items}-item thread vs a new thread")
        await self.fake.configure(c.load_tokens, 0.0, 0.0)
        model = await self.model_alone(20, self.fake.direct_turn)
        section: dict[str, Any] = {}
        for service in self.services:
            turns = c.long_turns if service is self.ours else max(5, c.long_turns // 3)
            section[service.name] = await self._long_thread(service, model, turns)
            await self.fake.forget()
        self.results["long_thread"] = section

    async def _long_thread(self, service: Service, model: float, turns: int) -> dict[str, Any]:
        """The second message of a new thread vs a message in a 100- and a 2,000-item thread.

        The 100-item thread already fills any sensible history window, so long/window shows
        growth with thread length alone, and long/new adds the cost of a full model input.
        """
        user = f"long-{service.name}"
        threads: dict[str, str] = {}
        started = time.perf_counter()
        for name, items in (("window", WINDOW_ITEMS), ("long", self.config.long_items)):
            first = await self.driver.turn(service, user, f"{name} thread", None)
            if not (first.ok and first.thread_id):
                return {"error": f"could not create a thread: {first.error}"}
            await self.stores[service.name](user, first.thread_id, items)
            threads[name] = first.thread_id
        fill_seconds = time.perf_counter() - started
        timings: dict[str, list[float]] = {"new": [], "window": [], "long": []}
        errors = 0
        for number in range(turns):
            fresh = await self.driver.turn(service, user, f"new thread {number}", None)
            for name in timings:
                thread_id = fresh.thread_id if name == "new" else threads[name]
                turn = await self.driver.turn(service, user, f"{name} {number}", thread_id)
                if turn.ok:
                    timings[name].append(turn.total - model)
                else:
                    errors += 1
        p50 = {name: percentile(values, 50) for name, values in timings.items()}
        return {
            "items": self.config.long_items,
            "prefill_seconds": round(fill_seconds, 2),
            "turns_each": turns,
            "errors": errors,
            **{f"{name}_overhead_p50_ms": ms(value) for name, value in p50.items()},
            "long_overhead_p99_ms": ms(percentile(timings["long"], 99)),
            "ratio": safe_ratio(p50["long"], p50["new"]),
            "ratio_to_window": safe_ratio(p50["long"], p50["window"]),
        }

    async def scale_out(self, turns: int = 6) -> None:
        """One conversation alternating between two instances keeps its whole history."""
        self.say("scale-out: one conversation alternating between two instances")
        await self.fake.configure(self.config.load_tokens, 0.0, 0.0)
        await self.fake.forget()
        user = f"scale-{secrets.token_hex(4)}"
        instances = [self.ours, self.ours_b]
        thread_id: str | None = None
        sent: list[str] = []
        problems: list[str] = []
        for number in range(turns):
            service = instances[number % 2]
            text = f"scale-out turn {number} {secrets.token_hex(3)}"
            turn = await self.driver.turn(service, user, text, thread_id)
            if not turn.ok:
                problems.append(f"turn {number} on {service.name}: {turn.error}")
                break
            thread_id = turn.thread_id
            sent.append(text)
            problems += await self._check_model_saw(sent, number)
        items = 0
        if thread_id is not None:
            thread = await self.driver.get_thread(instances[turns % 2], user, thread_id)
            items = len(thread["items"]["data"])
            if items != 2 * len(sent):
                problems.append(f"thread has {items} items, expected {2 * len(sent)}")
        self.results["scale_out"] = {
            "instances": [s.url for s in instances],
            "turns": len(sent),
            "thread_items": items,
            "ok": not problems and len(sent) == turns,
            "problems": problems,
        }

    async def _check_model_saw(self, sent: list[str], number: int) -> list[str]:
        """The model's last streamed request held every user message so far, in order."""
        bodies = [b for b in await self.fake.last_requests(4) if b.get("stream")]
        if not bodies:
            return [f"turn {number}: the model got no streamed request"]
        messages = bodies[-1].get("input") or []
        texts = [_text(m) for m in messages if m.get("role") == "user"]
        users = [t for t in texts if not t.startswith("<APP_CONTEXT>")]  # the per-turn facts
        assistants = [m for m in messages if m.get("role") == "assistant"]
        if users != sent or len(assistants) != number:
            return [
                f"turn {number}: model saw {len(users)} user / {len(assistants)} assistant "
                f"messages, expected {len(sent)} / {number}"
            ]
        return []


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


def filler_items(thread_id: str, count: int) -> list[Any]:
    """`count` alternating user/assistant messages, a microsecond apart, newest last."""
    from chatkit.types import (
        AssistantMessageContent,
        AssistantMessageItem,
        InferenceOptions,
        UserMessageItem,
        UserMessageTextContent,
    )

    base = datetime.now(UTC) - timedelta(seconds=1)
    tag = secrets.token_hex(4)
    items: list[Any] = []
    for index in range(count):
        at = base + timedelta(microseconds=index)
        text = f"earlier message {index}: " + "lorem ipsum dolor sit amet " * 4
        if index % 2 == 0:
            items.append(
                UserMessageItem(
                    id=f"msg_fill_{tag}_{index:05d}",
                    thread_id=thread_id,
                    created_at=at,
                    content=[UserMessageTextContent(text=text)],
                    attachments=[],
                    inference_options=InferenceOptions(),
                )
            )
        else:
            items.append(
                AssistantMessageItem(
                    id=f"msg_fill_{tag}_{index:05d}",
                    thread_id=thread_id,
                    created_at=at,
                    content=[AssistantMessageContent(text=text)],
                )
            )
    return items


def ours_filler(slug: str, url: str) -> Callable[[str, str, int], Awaitable[None]]:
    """Prefill through the project's own PostgresStore (batches of concurrent inserts)."""
    make_store = generated.postgres_store(slug)
    make_context = generated.request_context(slug)

    async def fill(user: str, thread_id: str, count: int) -> None:
        store = make_store(url, 8)
        context = make_context(user)
        items = filler_items(thread_id, count)
        try:
            for start in range(0, len(items), 64):
                batch = items[start : start + 64]
                await asyncio.gather(*(store.add_thread_item(thread_id, i, context) for i in batch))
        finally:
            await store.close()

    return fill


def baseline_filler(project: Path, url: str) -> Callable[[str, str, int], Awaitable[None]]:
    """Prefill through the guide-style store itself (in threads: its calls block)."""
    sys.path.insert(0, str(BENCH_DIR))
    from guide import GuideContext, GuideUser, load_guide_store

    store = load_guide_store(project).GuideStore(url)

    async def fill(user: str, thread_id: str, count: int) -> None:
        context = GuideContext(user=GuideUser(id=user))

        def add(item: Any) -> None:
            asyncio.run(store.add_thread_item(thread_id, item, context))

        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(8) as pool:
            items = filler_items(thread_id, count)
            await asyncio.gather(*(loop.run_in_executor(pool, add, item) for item in items))

    return fill
