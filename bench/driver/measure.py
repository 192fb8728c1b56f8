"""Every measurement in the order the report shows them, and the headline figures."""

from __future__ import annotations

import gc
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from driver.config import OVERHEAD_FIGURES, TARGETS
from driver.stats import below, ratio
from driver.threads import ThreadPhases


class Bench(ThreadPhases):
    """Every measurement, in the order the report shows them."""

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
            "added_ttft_p50_ms": below(ours.get("added_ttft_p50_ms"), TARGETS["added_ttft_p50_ms"]),
            "added_ttft_p99_ms": below(ours.get("added_ttft_p99_ms"), TARGETS["added_ttft_p99_ms"]),
            f"turns_per_s_ratio_{mid}": below(
                TARGETS["turns_per_s_ratio_32"], ratios.get(f"turns_per_s_{mid}"), inclusive=True
            ),
            f"errors_at_{top}": below(ours.get(f"errors_{top}"), 1),
            "long_thread_ratio": below(
                ours.get("long_thread_ratio"), TARGETS["long_thread_ratio"], inclusive=True
            ),
            "scale_out": self.results.get("scale_out", {}).get("ok"),
            "tool_turns": below(ours.get("tool_turn_failures"), 1),
        }
        tool_to_text = {k: ratio(ours.get(f"tool_{k}"), ours.get(k)) for k in OVERHEAD_FIGURES}
        issuer_to_text = {k: ratio(ours.get(f"issuer_{k}"), ours.get(k)) for k in OVERHEAD_FIGURES}
        return {
            "ours": ours,
            "baseline": base,
            "ratio": ratios,
            "tool_to_text": tool_to_text,
            "issuer_to_text": issuer_to_text,
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
            if "instructions_per_turn" in r["overhead"][service]:
                figures["instructions_per_turn"] = r["overhead"][service]["instructions_per_turn"]
        if service in r.get("issuer_turn", {}):
            issuer = r["issuer_turn"][service]
            figures.update({f"issuer_{key}": issuer[key] for key in OVERHEAD_FIGURES})
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
