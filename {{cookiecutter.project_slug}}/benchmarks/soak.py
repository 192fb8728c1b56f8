"""Soak test: many concurrent conversations for a while, with faulty model calls; nothing lost.

Runs the app (`python -m <package> serve`) in a subprocess against the fake model
(tests/fake_openai.py, every Nth streamed answer fails) and a PostgreSQL (a temporary embedded
one unless --database-url is given), holds --conversations conversations for --seconds, then
reports turns completed, errors by kind, items written vs. expected (from the database), and
the app's RSS and open database connections at start and end.

    uv run python benchmarks/soak.py --conversations 128 --seconds 60 --fault-rate 0.05
    uv run python benchmarks/soak.py --json > soak.json

Not part of the test suite (it takes as long as you ask it to).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import psutil
import psycopg

from {{ cookiecutter.project_slug }}.db import apply_migrations
from {{ cookiecutter.project_slug }}.embedded import start_embedded, stop_embedded

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
from tests.fake_openai import FakeModel, FakeOpenAI  # noqa: E402

PACKAGE = "{{ cookiecutter.project_slug }}"


@dataclass
class Tally:
    """What the conversations saw."""

    turns_started: int = 0
    turns_completed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    user_messages_accepted: int = 0
    """Turns whose user message the server took (completed, or an error event mid-turn)."""


@dataclass
class Report:
    """The soak's results."""

    conversations: int
    seconds: float
    fault_rate: float
    turns_completed: int
    turns_per_second: float
    errors: dict[str, int]
    items_expected: int
    items_written: int
    assistant_messages_expected: int
    assistant_messages_written: int
    rss_mb_start: float
    rss_mb_end: float
    rss_mb_peak: float
    db_connections_start: int
    db_connections_end: int
    model_streams_failed: int

    @property
    def nothing_lost(self) -> bool:
        return (
            self.items_written == self.items_expected
            and self.assistant_messages_written == self.assistant_messages_expected
        )


# --- infrastructure -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def database(url: str | None) -> Iterator[str]:
    """The given URL, or a temporary embedded PostgreSQL (deleted afterwards)."""
    if url:
        yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="soak-pg-"))
    try:
        yield start_embedded(folder / "pgdata", cleanup_mode="delete")
    finally:
        stop_embedded(folder / "pgdata")
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def app_process(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """The app under uvicorn in its own process (so its memory can be measured)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", PACKAGE, "serve", "--port", str(port)],
        env=env,
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


async def wait_healthy(url: str, seconds: float = 60) -> None:
    async with httpx.AsyncClient() as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(url + "/health")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the app at {url} did not become healthy")


def rss_mb(proc: subprocess.Popen[bytes]) -> float:
    return float(psutil.Process(proc.pid).memory_info().rss) / 2**20


async def db_connections(url: str) -> int:
    """Client connections to this database, other than our own."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def items_written(url: str, run: str) -> tuple[int, int]:
    """All items, and assistant messages, in this run's users' threads."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cursor = await conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE i.payload->>'type' = 'assistant_message') "
            "FROM thread_items AS i JOIN threads AS t ON t.id = i.thread_id "
            "WHERE t.user_id LIKE %s",
            (f"soak-{run}-%",),
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


# --- load ---------------------------------------------------------------------------------------


async def events_of(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            yield json.loads(line[6:])


async def one_turn(
    http: httpx.AsyncClient, url: str, token: str, thread_id: str | None, tally: Tally
) -> str | None:
    """One message and its answer; returns the thread id."""
    content = {
        "content": [{"type": "input_text", "text": f"soak turn {tally.turns_started}"}],
        "attachments": [],
        "inference_options": {},
    }
    if thread_id is None:
        body: dict[str, Any] = {"type": "threads.create", "params": {"input": content}}
    else:
        params = {"thread_id": thread_id, "input": content}
        body = {"type": "threads.add_user_message", "params": params}
    tally.turns_started += 1
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with http.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code != 200:
                tally.errors[f"HTTP {response.status_code}"] += 1
                return thread_id
            done, error = False, None
            async for event in events_of(response):
                if event["type"] == "thread.created":
                    thread_id = event["thread"]["id"]
                elif event["type"] == "thread.item.done":
                    done = done or event["item"]["type"] == "assistant_message"
                elif event["type"] == "error":
                    error = event.get("message") or event.get("code") or "error"
    except httpx.HTTPError as exc:
        tally.errors[f"client {type(exc).__name__}"] += 1
        return thread_id
    tally.user_messages_accepted += 1
    if error is not None:
        tally.errors[f"error event: {error}"] += 1
    elif done:
        tally.turns_completed += 1
    else:
        tally.errors["stream ended without an answer"] += 1
    return thread_id


async def conversation(
    http: httpx.AsyncClient, url: str, token: str, deadline: float, tally: Tally
) -> None:
    thread_id: str | None = None
    while time.monotonic() < deadline:
        thread_id = await one_turn(http, url, token, thread_id, tally)


async def sample_rss(proc: subprocess.Popen[bytes], peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mb(proc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def soak(args: argparse.Namespace, database_url: str) -> Report:
    await apply_migrations(database_url)
    fault_every = round(1 / args.fault_rate) if args.fault_rate > 0 else 0
    fake = FakeOpenAI(FakeModel(tokens=20, delay=0.01, fault_every=fault_every)).start()
    secret, run, port = secrets.token_urlsafe(48), secrets.token_hex(4), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DATABASE_"))},
        "DATABASE_URL": database_url,
        "AUTH_SECRET": secret,
        "OPENAI_API_KEY": "soak-key",
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_MAX_RETRIES": "0",
        "LOG_LEVEL": "WARNING",
    }
    base = f"http://127.0.0.1:{port}"
    try:
        with app_process(env, port) as proc:
            await wait_healthy(base)
            rss_start, conns_start = rss_mb(proc), await db_connections(database_url)
            tally, peak, stop = Tally(), [rss_start], asyncio.Event()
            limits = httpx.Limits(max_connections=args.conversations + 8)
            started = time.monotonic()
            async with httpx.AsyncClient(timeout=120, limits=limits) as http:
                sampler = asyncio.create_task(sample_rss(proc, peak, stop))
                deadline = started + args.seconds
                tokens = [
                    jwt.encode(
                        {"sub": f"soak-{run}-{n}", "exp": int(time.time()) + 86400},
                        secret,
                        algorithm="HS256",
                    )
                    for n in range(args.conversations)
                ]
                await asyncio.gather(
                    *(conversation(http, base + "/chatkit", t, deadline, tally) for t in tokens)
                )
                elapsed = time.monotonic() - started
                stop.set()
                await sampler
            await asyncio.sleep(1.0)  # let the app return its connections
            rss_end, conns_end = rss_mb(proc), await db_connections(database_url)
    finally:
        fake.stop()
    written, assistants = await items_written(database_url, run)
    streamed = sum(1 for request in fake.model.requests if request.get("stream"))
    return Report(
        conversations=args.conversations,
        seconds=round(elapsed, 1),
        fault_rate=args.fault_rate,
        turns_completed=tally.turns_completed,
        turns_per_second=round(tally.turns_completed / elapsed, 1),
        errors=dict(tally.errors.most_common()),
        items_expected=tally.user_messages_accepted + tally.turns_completed,
        items_written=written,
        assistant_messages_expected=tally.turns_completed,
        assistant_messages_written=assistants,
        rss_mb_start=round(rss_start, 1),
        rss_mb_end=round(rss_end, 1),
        rss_mb_peak=round(peak[0], 1),
        db_connections_start=conns_start,
        db_connections_end=conns_end,
        model_streams_failed=streamed // fault_every if fault_every else 0,
    )


def print_table(report: Report) -> None:
    rows = [
        ("conversations", report.conversations),
        ("seconds", report.seconds),
        ("fault rate", report.fault_rate),
        ("turns completed", report.turns_completed),
        ("turns / second", report.turns_per_second),
        *((f"error: {kind}", count) for kind, count in report.errors.items()),
        ("items written / expected", f"{report.items_written} / {report.items_expected}"),
        (
            "assistant messages written / expected",
            f"{report.assistant_messages_written} / {report.assistant_messages_expected}",
        ),
        ("nothing lost", "yes" if report.nothing_lost else "NO"),
        (
            "app RSS MB start / end (peak)",
            f"{report.rss_mb_start} / {report.rss_mb_end} ({report.rss_mb_peak})",
        ),
        (
            "DB connections start / end",
            f"{report.db_connections_start} / {report.db_connections_end}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of failing answers")
    parser.add_argument("--database-url", default=None, help="default: a temporary embedded one")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    with database(args.database_url) as url:
        report = asyncio.run(soak(args, url))
    if args.json:
        print(json.dumps({**asdict(report), "nothing_lost": report.nothing_lost}, indent=2))
    else:
        print_table(report)
    return 0 if report.nothing_lost else 1


if __name__ == "__main__":
    sys.exit(main())
