"""Measure the store (pages of huge threads, operations per second): a script, not a test.

1. Newest page of a thread (`load_thread_items`, limit 20, desc) on a 100-item thread vs
   a 100,000-item thread: keyset pagination keeps the large one within 2x of the small.
2. Store operations per second with 32 concurrent tasks (load_thread, add_thread_item,
   load_thread_items desc 20, save_thread) for PostgresStore vs guide_store.GuideStore,
   a baseline written like the ChatKit guide's example (a new connection per call).

Run `uv run python benchmarks/bench_store.py`; both numbers and their ratios come from the
same run. `--database-url` points it at a
server (default: a temporary embedded PostgreSQL, deleted afterwards); `--json` prints
one JSON object instead of text.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from chatkit.store import Store
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    ThreadMetadata,
)
from guide_store import GuideStore

from {{ cookiecutter.project_slug }}.context import RequestContext, User
from {{ cookiecutter.project_slug }}.dev.embedded import start_embedded, stop_embedded
from {{ cookiecutter.project_slug }}.store.db import apply_migrations, redact_url
from {{ cookiecutter.project_slug }}.store.postgres import PostgresStore

PAGE = 20
BASE_TIME = datetime(2025, 1, 1, 12, 0, 0)


def context() -> RequestContext:
    return RequestContext(request=None, user=User(id=f"bench-{uuid.uuid4().hex[:12]}"))


def request_of(ctx: Any) -> Any:
    """A new request's context for the same user: the store caches reads per request."""
    return RequestContext(request=None, user=ctx.user) if isinstance(ctx, RequestContext) else ctx


def reply(thread_id: str, item_id: str, created_at: datetime) -> AssistantMessageItem:
    text = "A typical assistant reply of a few sentences. " * 4
    return AssistantMessageItem(
        id=item_id,
        thread_id=thread_id,
        created_at=created_at,
        content=[AssistantMessageContent(text=text)],
    )


@asynccontextmanager
async def database(url: str | None) -> AsyncIterator[str]:
    """The given URL, or a temporary embedded server for the run."""
    if url:
        yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="chatkit-bench-"))
    try:
        yield await asyncio.to_thread(start_embedded, folder / "pgdata", cleanup_mode="delete")
    finally:
        await asyncio.to_thread(stop_embedded, folder / "pgdata")
        shutil.rmtree(folder, ignore_errors=True)


# --- 1. newest page: small vs large thread ------------------------------------------------


async def bulk_thread(store: PostgresStore, ctx: RequestContext, count: int) -> str:
    """A thread with `count` items, written with COPY."""
    thread = ThreadMetadata(id=f"thr_{uuid.uuid4().hex}", created_at=BASE_TIME)
    await store.save_thread(thread, ctx)
    async with store.pool.connection() as conn:
        cursor = conn.cursor()
        copy_sql = "COPY thread_items (thread_id, id, created_at, payload) FROM STDIN"
        async with cursor.copy(copy_sql) as copy:
            for n in range(count):
                at = BASE_TIME + timedelta(milliseconds=n)
                item = reply(thread.id, f"msg_{n:07d}", at)
                await copy.write_row((thread.id, item.id, at.astimezone(), item.model_dump_json()))
        await conn.execute("ANALYZE thread_items")
    return thread.id


async def time_newest_page(
    store: PostgresStore, thread_id: str, ctx: RequestContext, rounds: int
) -> list[float]:
    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        page = await store.load_thread_items(thread_id, None, PAGE, "desc", request_of(ctx))
        timings.append(time.perf_counter() - start)
        assert len(page.data) == PAGE and page.has_more
    return timings


async def bench_newest_page(url: str, large: int, rounds: int) -> dict[str, Any]:
    store = PostgresStore(url, max_size=2)
    ctx = context()
    try:
        small_id = await bulk_thread(store, ctx, 100)
        large_id = await bulk_thread(store, ctx, large)
        small: list[float] = []
        big: list[float] = []
        await time_newest_page(store, small_id, ctx, 20)  # warm up
        await time_newest_page(store, large_id, ctx, 20)
        for _ in range(5):  # interleave, so drift hits both sides alike
            small += await time_newest_page(store, small_id, ctx, rounds // 5)
            big += await time_newest_page(store, large_id, ctx, rounds // 5)
    finally:
        await store.close()
    small_ms, large_ms = statistics.median(small) * 1000, statistics.median(big) * 1000
    return {
        "small_items": 100,
        "large_items": large,
        "small_median_ms": round(small_ms, 3),
        "large_median_ms": round(large_ms, 3),
        "ratio": round(large_ms / small_ms, 2),
        "target": "ratio <= 2",
    }


# --- 2. throughput: PostgresStore vs the guide's store ------------------------------------


async def prepare(store: Store[Any], tasks: int, items: int) -> list[tuple[Any, ThreadMetadata]]:
    """One user and one thread with `items` items per task."""
    prepared = []
    for _ in range(tasks):
        ctx = context()
        thread = ThreadMetadata(id=f"thr_{uuid.uuid4().hex}", created_at=BASE_TIME)
        await store.save_thread(thread, ctx)
        for n in range(items):
            item = reply(thread.id, f"msg_{uuid.uuid4().hex}", BASE_TIME + timedelta(seconds=n))
            await store.add_thread_item(thread.id, item, ctx)
        prepared.append((ctx, thread))
    return prepared


async def worker(store: Store[Any], ctx: Any, thread: ThreadMetadata, deadline: float) -> int:
    """Run the operation mix until the deadline; returns how many operations finished."""
    done = 0
    while time.perf_counter() < deadline:
        # Each operation is its own request (a fresh context), so no read is served from
        # the store's per-request cache.
        loaded = await store.load_thread(thread.id, request_of(ctx))
        item = reply(thread.id, f"msg_{uuid.uuid4().hex}", datetime.now())
        await store.add_thread_item(thread.id, item, request_of(ctx))
        page = await store.load_thread_items(thread.id, None, PAGE, "desc", request_of(ctx))
        assert page.data
        loaded.title = f"title {done}"
        await store.save_thread(loaded, request_of(ctx))
        done += 4
    return done


async def ops_per_second(store: Store[Any], tasks: int, seconds: float) -> float:
    prepared = await prepare(store, tasks, items=20)
    start = time.perf_counter()
    deadline = start + seconds
    counts = await asyncio.gather(*(worker(store, c, t, deadline) for c, t in prepared))
    return sum(counts) / (time.perf_counter() - start)


async def bench_throughput(url: str, tasks: int, seconds: float) -> dict[str, Any]:
    ours = PostgresStore(url)
    try:
        ours_ops = await ops_per_second(ours, tasks, seconds)
    finally:
        await ours.close()
    guide = await asyncio.to_thread(GuideStore, url)
    guide_ops = await ops_per_second(guide, tasks, seconds)
    return {
        "tasks": tasks,
        "seconds": seconds,
        "postgres_store_ops_per_s": round(ours_ops, 1),
        "guide_store_ops_per_s": round(guide_ops, 1),
        "ratio": round(ours_ops / guide_ops, 2),
        "target": "ratio >= 5",
    }


# --- main ---------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with database(args.database_url) as url:
        await apply_migrations(url)
        return {
            "database": "embedded (temporary)" if not args.database_url else redact_url(url),
            "newest_page": await bench_newest_page(url, args.large_items, args.rounds),
            "throughput": await bench_throughput(url, args.tasks, args.seconds),
        }


def report(results: dict[str, Any]) -> None:
    page, ops = results["newest_page"], results["throughput"]
    print(f"database: {results['database']}")
    print(
        f"newest page (limit {PAGE}, desc): {page['small_items']} items "
        f"{page['small_median_ms']:.3f} ms, {page['large_items']:,} items "
        f"{page['large_median_ms']:.3f} ms, ratio {page['ratio']:.2f} (target <= 2)"
    )
    print(
        f"throughput ({ops['tasks']} tasks, {ops['seconds']:g} s each): PostgresStore "
        f"{ops['postgres_store_ops_per_s']:,.0f} ops/s, guide store "
        f"{ops['guide_store_ops_per_s']:,.0f} ops/s, ratio {ops['ratio']:.1f}x (target >= 5x)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: temporary embedded")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--large-items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=500, help="timed newest-page reads")
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0, help="per store")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    if args.json:
        print(json.dumps(results))
    else:
        report(results)
    page_ok = results["newest_page"]["ratio"] <= 2
    ops_ok = results["throughput"]["ratio"] >= 5
    return 0 if page_ok and ops_ok else 1


if __name__ == "__main__":
    sys.exit(main())
