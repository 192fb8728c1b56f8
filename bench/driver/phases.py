"""The load phases: per-turn overhead, the tool turn, time to first token, throughput."""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from issuer_tokens import IssuerServer

from driver.clients import Driver, FakeControl, Service, conversation, run_load
from driver.config import TOOL, TOOL_ARGUMENTS, TOOL_ASK, Config
from driver.database import QueryCounter
from driver.instructions import count_instructions
from driver.processes import RssSampler
from driver.stats import Turn, error_kinds, ms, per_turn, percentile, summarize


class LoadPhases:
    """The services, the clients, and the phases that put load on them."""

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
        issuer: IssuerServer,
    ) -> None:
        self.config = config
        self.driver = driver
        self.fake = fake
        self.ours, self.ours_b, self.baseline = ours, ours_b, baseline
        self.queries = queries
        self.stores = stores
        self.issuer = issuer
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
            stats["server_cpu_ms_per_turn"] = per_turn(usage.cpu_used, stats["turns"])
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
        if c.instructions is not None:  # --instructions: ours runs under callgrind
            self.say("instructions per text turn (callgrind)")
            work = conversation(self.driver, self.ours, c.turns_per_conversation, "counted")
            counted = await count_instructions(self.ours, work, c.sequential_turns, c.instructions)
            section[self.ours.name].update(counted)
        self.results["overhead"] = section
        await self._issuer_turn(model)

    async def _issuer_turn(self, model: float) -> None:
        """The text turn again, ours only, its users signed in with RS256 tokens of a loopback
        OpenID provider (AUTH_ISSUER: discovery, JWKS) instead of the app's HS256 tokens."""
        self.say("text turn with issuer tokens (RS256, AUTH_ISSUER; ours only)")
        service = replace(self.ours, token=self.issuer.token)
        work = conversation(self.driver, service, self.config.turns_per_conversation, "issuer")
        await work(0, float("inf"))  # warm: the app fetches the discovery document and keys
        figures, _turns = await self._sequential(service, work, model)
        figures["jwks_fetches"] = self.issuer.jwks_fetches
        section = {"model_direct_p50_ms": ms(model), "algorithm": "RS256", service.name: figures}
        self.results["issuer_turn"] = section

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
            "server_cpu_ms_per_turn": per_turn(usage.cpu_used, len(over)),
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
                stats["server_cpu_ms_per_turn"] = per_turn(rss.cpu_used, stats["turns"])
                levels[str(level)] = stats
                await self.fake.forget()
            section[service.name] = levels
        self.results["throughput"] = section


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
