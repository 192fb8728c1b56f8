"""What the benchmark runs: its constants, targets and options (bench/README.md explains each)."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[1]
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
    instructions: Path | None = None  # callgrind's output file (--instructions; set by main)
    notes: list[str] = field(default_factory=list)


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
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count ours's instructions per text turn with valgrind's callgrind "
        "(slow, timings then mean nothing: use with --only overhead)",
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
