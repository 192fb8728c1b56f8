"""Soak test: many concurrent conversations for a while, with faulty model calls; nothing lost.

Runs the app (`python -m <package> serve`) in a subprocess against the fake model
(tests/support/fake_openai.py; every Nth streamed answer fails) and a PostgreSQL (a temporary
embedded one unless --database-url is given), holds --conversations conversations for
--seconds, then reports turns completed, errors by kind, items written vs. expected (from the
database), and the app's RSS and open database connections at start and end.

With --hostile R, that share of each conversation's requests is hostile instead: the same
attachment 20 times, more attachments than allowed, a 1 MB title, a message over
MAX_MESSAGE_CHARS, feedback on 20,000 ids, garbage and oversized uploads, a burst of streams
over the concurrency limit, an attachment name of 100,000 characters, a 1 MB client tool
output, a 1 MB action payload, a model name of 100,000 characters, a burst of actions, tag
floods (20 tags of one thread; 21), custom actions without a type, NUL ids in paths, four
parallel uploads. Each must get its 4xx (the repeated attachment is one and is answered);
any 5xx, or another status, counts as a failure, and nothing may be lost.

    uv run python benchmarks/soak.py --conversations 128 --seconds 60 --fault-rate 0.05
    uv run python benchmarks/soak.py --hostile 0.05 --json > soak.json

Not part of the test suite (it takes as long as you ask it to).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
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

from {{ cookiecutter.project_slug }}.dev.embedded import start_embedded, stop_embedded
from {{ cookiecutter.project_slug }}.store.db import apply_migrations

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
from tests.support.fake_openai import FakeModel, FakeOpenAI  # noqa: E402
from tests.support.processes import stop_process  # noqa: E402

PACKAGE = "{{ cookiecutter.project_slug }}"


@dataclass
class Tally:
    """What the conversations saw."""

    turns_started: int = 0
    turns_completed: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    user_messages_accepted: int = 0
    """Turns whose user message the server took (completed, or an error event mid-turn)."""
    statuses_5xx: int = 0
    hostile: Counter[str] = field(default_factory=Counter)
    """Hostile requests by `kind -> status`."""
    hostile_unexpected: Counter[str] = field(default_factory=Counter)
    """Hostile requests answered otherwise than they must be, by `kind -> status`."""


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
    hostile_rate: float = 0.0
    hostile_requests: dict[str, int] = field(default_factory=dict)
    hostile_unexpected: dict[str, int] = field(default_factory=dict)
    responses_5xx: int = 0

    @property
    def nothing_lost(self) -> bool:
        return (
            self.items_written == self.items_expected
            and self.assistant_messages_written == self.assistant_messages_expected
        )

    @property
    def ok(self) -> bool:
        """Nothing lost, no 5xx, and every hostile request answered as it must be."""
        return self.nothing_lost and not self.responses_5xx and not self.hostile_unexpected


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
        stop_process(proc, 15)


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
    http: httpx.AsyncClient,
    url: str,
    token: str,
    thread_id: str | None,
    tally: Tally,
    attachments: list[str] | None = None,
    hostile: bool = False,
    parts: list[dict[str, Any]] | None = None,
) -> tuple[str | None, int]:
    """One message (`parts`, or a line of text) and its answer; returns the thread id and the
    HTTP status (0: no answer). A hostile turn's refusal is not counted among the errors (its
    sender records it)."""
    content = {
        "content": parts or [{"type": "input_text", "text": f"soak turn {tally.turns_started}"}],
        "attachments": attachments or [],
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
                if not hostile:
                    tally.errors[f"HTTP {response.status_code}"] += 1
                    tally.statuses_5xx += response.status_code >= 500
                return thread_id, response.status_code
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
        return thread_id, 0
    tally.user_messages_accepted += 1
    if error is not None:
        tally.errors[f"error event: {error}"] += 1
    elif done:
        tally.turns_completed += 1
    else:
        tally.errors["stream ended without an answer"] += 1
    return thread_id, 200


# --- hostile requests ---------------------------------------------------------------------------

UPLOAD_LIMIT = 1024 * 1024
"""MAX_ATTACHMENT_BYTES of the soak's app (small, so oversized uploads stay cheap to send)."""
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64 * 1024)
EXPECTED: dict[str, set[int]] = {
    "repeated attachment": {200},
    "too many attachments": {400},
    "huge title": {400},
    "long message": {400},
    "feedback flood": {400},
    "garbage upload": {400},
    "oversized upload": {413, 0},
    "stream burst": {200, 429},
    "long attachment name": {400},
    "huge tool output": {413},
    "huge action payload": {413},
    "long model name": {400},
    "action burst": {400, 404, 429},
    "tag flood": {200, 429},
    "too many tags": {400},
    "action without type": {400},
    "NUL id": {400},
    "parallel uploads": {200, 429, 503},
}
"""What each hostile request must get. The repeated attachment collapses into one: a turn.
An action burst before the conversation has a thread names a made-up one: 404.
0 for an oversized upload: the server refused it and closed the connection while the client
was still sending (httpx then sees the connection go, not the 413)."""


@dataclass
class Hostile:
    """One conversation's hostile side: its base URL, token and (once made) attachment."""

    http: httpx.AsyncClient
    base: str
    token: str
    tally: Tally
    attachment: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def record(self, kind: str, status: int) -> None:
        self.tally.hostile[f"{kind} -> {status}"] += 1
        self.tally.statuses_5xx += status >= 500
        if status not in EXPECTED[kind]:
            self.tally.hostile_unexpected[f"{kind} -> {status}"] += 1

    async def chatkit(self, kind: str, type_: str, params: dict[str, Any]) -> None:
        body = {"type": type_, "params": params}
        async with self.http.stream(
            "POST", self.base + "/chatkit", json=body, headers=self.headers
        ) as response:
            await response.aread()
        self.record(kind, response.status_code)

    async def upload(
        self, kind: str, headers: dict[str, str] | None = None, **request: Any
    ) -> httpx.Response:
        headers = {**self.headers, **(headers or {})}
        response = await self.http.post(self.base + "/attachments", headers=headers, **request)
        if kind:
            self.record(kind, response.status_code)
        return response

    async def run(self, kind: str, thread_id: str | None) -> str | None:
        """Send one hostile request of `kind`; returns the conversation's thread id."""
        thread = thread_id or "thr_none"
        text: dict[str, Any] = {"type": "input_text", "text": "x"}
        if kind == "repeated attachment":
            if self.attachment is None:
                made = await self.upload("", files={"file": ("dot.png", PNG, "image/png")})
                if made.status_code != 200:
                    self.record(kind, made.status_code)
                    return thread_id
                self.attachment = str(made.json()["id"])
            thread_id, status = await one_turn(
                self.http,
                self.base + "/chatkit",
                self.token,
                thread_id,
                self.tally,
                [self.attachment] * 20,
                hostile=True,
            )
            self.record(kind, status)
        elif kind == "too many attachments":
            ids = [f"atc_fake{n}" for n in range(10)] + ["atc_real"] * 20
            message = {"content": [text], "attachments": ids, "inference_options": {}}
            await self.chatkit(kind, "threads.create", {"input": message})
        elif kind == "huge title":
            params = {"thread_id": thread, "title": "t" * 1_000_000}
            await self.chatkit(kind, "threads.update", params)
        elif kind == "long message":
            long = {**text, "text": "y" * 20_001}
            message = {"content": [long], "attachments": [], "inference_options": {}}
            await self.chatkit(kind, "threads.create", {"input": message})
        elif kind == "feedback flood":
            flood = {"thread_id": thread, "item_ids": ["msg_x"] * 20_000, "kind": "positive"}
            await self.chatkit(kind, "items.feedback", flood)
        elif kind == "garbage upload":
            junk = random.randbytes(64 * 1024)
            content_type = {"Content-Type": "multipart/form-data; boundary=soak"}
            await self.upload(kind, content=junk, headers=content_type)
        elif kind == "oversized upload":

            async def chunks() -> AsyncIterator[bytes]:  # chunked: no Content-Length
                yield b'--soak\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n'
                yield b"Content-Type: application/octet-stream\r\n\r\n"
                for _ in range(2 * UPLOAD_LIMIT // 65536 + 1):
                    yield bytes(65536)
                yield b"\r\n--soak--\r\n"

            content_type = {"Content-Type": "multipart/form-data; boundary=soak"}
            try:
                await self.upload(kind, content=chunks(), headers=content_type)
            except httpx.TransportError:
                self.record(kind, 0)
        elif kind == "long attachment name":
            create = {"name": "n" * 100_000, "size": 10, "mime_type": "image/png"}
            await self.chatkit(kind, "attachments.create", create)
        elif kind == "huge tool output":
            output = {"thread_id": thread, "result": {"data": "r" * 1_000_000}}
            await self.chatkit(kind, "threads.add_client_tool_output", output)
        elif kind == "huge action payload":
            action = {"type": "soak.action", "payload": {"data": "p" * 1_000_000}}
            await self.chatkit(
                kind, "threads.custom_action", {"thread_id": thread, "action": action}
            )
        elif kind == "long model name":
            options = {"model": "m" * 100_000}
            message = {"content": [text], "attachments": [], "inference_options": options}
            await self.chatkit(kind, "threads.create", {"input": message})
        elif kind == "action burst":
            action = {"type": "soak.action", "payload": {}}
            for type_ in ["threads.custom_action"] * 4 + ["threads.sync_custom_action"] * 4:
                await self.chatkit(kind, type_, {"thread_id": thread, "action": action})
        elif kind in ("tag flood", "too many tags"):
            # the same thread tagged under 20 (or 21) names: one block at most reaches the model
            count = 20 if kind == "tag flood" else 21
            tags: list[dict[str, Any]] = [
                {"type": "input_tag", "id": thread, "text": f"t{n}", "data": {"type": "thread"}}
                for n in range(count)
            ]
            url = self.base + "/chatkit"
            thread_id, status = await one_turn(
                self.http, url, self.token, thread_id, self.tally, hostile=True, parts=[text, *tags]
            )
            self.record(kind, status)
        elif kind == "action without type":
            shapes: list[dict[str, Any]] = [{}, {"payload": {}}]
            for target in (thread, "thr_made_up"):
                for action in shapes:
                    await self.chatkit(
                        kind, "threads.custom_action", {"thread_id": target, "action": action}
                    )
        elif kind == "NUL id":
            for bad in ("%00", "a%00b"):
                url = f"{self.base}/attachments/{bad}/content"
                response = await self.http.get(url, headers=self.headers)
                self.record(kind, response.status_code)
        elif kind == "parallel uploads":
            size = UPLOAD_LIMIT - 1024
            uploads = [
                self.upload(kind, files={"file": (f"p{n}.bin", bytes(size), "text/plain")})
                for n in range(4)
            ]
            await asyncio.gather(*uploads)
        elif kind == "stream burst":
            url = self.base + "/chatkit"
            burst = [
                one_turn(self.http, url, self.token, None, self.tally, hostile=True)
                for _ in range(6)
            ]
            for _thread, status in await asyncio.gather(*burst):
                self.record(kind, status)
        return thread_id


async def conversation(
    http: httpx.AsyncClient,
    url: str,
    token: str,
    deadline: float,
    tally: Tally,
    hostile_rate: float = 0.0,
    seed: int = 0,
) -> None:
    rng = random.Random(seed)
    hostile = Hostile(http, url.removesuffix("/chatkit"), token, tally)
    kinds = list(EXPECTED)
    thread_id: str | None = None
    while time.monotonic() < deadline:
        if hostile_rate and rng.random() < hostile_rate:
            kind = rng.choice(kinds)
            try:
                thread_id = await hostile.run(kind, thread_id)
            except httpx.TransportError:  # the server dropped the connection: a failure too
                hostile.record(kind, 0)
        else:
            thread_id, _status = await one_turn(http, url, token, thread_id, tally)


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
        # The soak's users send turn after turn without pause, far more than people type:
        # keep the per-user check (and its cost) in, with a rate no conversation reaches.
        "RATE_LIMIT_MESSAGES_PER_MINUTE": "1000000",
        "MAX_ATTACHMENT_BYTES": str(UPLOAD_LIMIT),
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
                    *(
                        conversation(http, base + "/chatkit", t, deadline, tally, args.hostile, n)
                        for n, t in enumerate(tokens)
                    )
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
        hostile_rate=args.hostile,
        hostile_requests=dict(sorted(tally.hostile.items())),
        hostile_unexpected=dict(sorted(tally.hostile_unexpected.items())),
        responses_5xx=tally.statuses_5xx,
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
        ("responses with status 5xx", report.responses_5xx),
        ("hostile rate", report.hostile_rate),
        *((f"hostile: {kind}", count) for kind, count in report.hostile_requests.items()),
        *((f"UNEXPECTED: {kind}", count) for kind, count in report.hostile_unexpected.items()),
        (
            "app RSS MB start / end (peak)",
            f"{report.rss_mb_start} / {report.rss_mb_end} ({report.rss_mb_peak})",
        ),
        ("app peak RSS MB", report.rss_mb_peak),
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
    parser.add_argument(
        "--hostile", type=float, default=0.0, help="share of hostile requests (e.g. 0.05)"
    )
    parser.add_argument("--database-url", default=None, help="default: a temporary embedded one")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    with database(args.database_url) as url:
        report = asyncio.run(soak(args, url))
    if args.json:
        summary = {**asdict(report), "nothing_lost": report.nothing_lost, "ok": report.ok}
        print(json.dumps(summary, indent=2))
    else:
        print_table(report)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
