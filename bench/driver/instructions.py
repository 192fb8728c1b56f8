"""Instructions per text turn of our server, counted by valgrind's callgrind (--instructions).

Timings on a shared 2-core machine vary by a fifth from run to run; the instructions a turn
executes do not, so two commits' CPU work compares to a fraction of a percent. The server
runs under callgrind with collection off; it is switched on for the counted turns only (after
warm turns), then the counts are dumped and read. Turns take ~50 times longer meanwhile, so
the run's timings mean nothing: use it with `--only overhead`.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx

STARTUP_SECONDS = 900.0
"""How long the server may take to answer /health under callgrind."""


def under_callgrind(argv: list[str], out: Path) -> list[str]:
    """`argv` run by callgrind, collecting nothing until switched on, writing to `out`."""
    valgrind = shutil.which("valgrind")
    if valgrind is None or shutil.which("callgrind_control") is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt install valgrind)")
    options = ["--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    return [valgrind, *options, *argv]


async def _control(url: str, pid: int, *args: str) -> None:
    """callgrind_control on the server; /health is polled meanwhile, since valgrind reads the
    command only when the process runs."""
    control = await asyncio.create_subprocess_exec(
        "callgrind_control", *args, str(pid), stdout=asyncio.subprocess.DEVNULL
    )
    async with httpx.AsyncClient(timeout=30) as http:
        while control.returncode is None:
            with suppress(httpx.HTTPError):
                await http.get(f"{url}/health")
            with suppress(TimeoutError):
                await asyncio.wait_for(control.wait(), 0.5)
    if control.returncode != 0:
        raise RuntimeError(f"callgrind_control {' '.join(args)} failed ({control.returncode})")


def dumped_total(out: Path) -> int:
    """The instructions of callgrind's dumps beside `out` (`out.1`, ...: one per dump)."""
    total = 0
    for dump in sorted(out.parent.glob(f"{out.name}.*")):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
    return total


async def count_instructions(
    service: Any, work: Callable[[int, float], Awaitable[list[Any]]], turns: int, out: Path
) -> dict[str, Any]:
    """Instructions per turn of `work` on `service` (run under `under_callgrind(..., out)`):
    `turns` turns warm it first, then `turns` more are counted."""

    async def run(count: int) -> int:
        done = 0
        while done < count:
            done += len(await work(0, float("inf")))
        return done

    await run(turns)
    pid, url = service.proc.popen.pid, service.url
    await _control(url, pid, "--instr=on")
    counted = await run(turns)
    await _control(url, pid, "--instr=off")
    await _control(url, pid, "--dump")
    total = dumped_total(out)
    return {"instruction_turns": counted, "instructions_per_turn": round(total / counted)}
