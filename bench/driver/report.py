"""The human-readable table of the results."""

from __future__ import annotations

from typing import Any

from driver.config import TARGETS, TOOL, WINDOW_ITEMS, Config


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
    if "instructions_per_turn" in ours:
        rows.append(("server instructions / turn", "instructions_per_turn", "callgrind"))
    for label, key in (
        ("issuer-token turn p50 (ms)", "overhead_p50_ms"),
        ("issuer-token turn p99 (ms)", "overhead_p99_ms"),
        ("server CPU/issuer turn (ms)", "server_cpu_ms_per_turn"),
    ):
        times = s["issuer_to_text"].get(key)
        rows.append((label, f"issuer_{key}", "" if times is None else f"issuer/HS256 {times:.2f}x"))
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
    lines += _issuer_turn_notes(results.get("issuer_turn"))
    lines += _tool_turn_notes(results.get("tool_turn"))
    if "profile" in results:
        lines.append(f"profile: {results['profile']['file']}")
    verdicts = {True: "ok", False: "MISSED", None: "n/a"}
    lines.append("targets: " + ", ".join(f"{k} {verdicts[v]}" for k, v in s["targets_met"].items()))
    return "\n".join(lines)


def _issuer_turn_notes(issuer: dict[str, Any] | None) -> list[str]:
    """What the issuer-token rows measured."""
    if issuer is None:
        return []
    ours = issuer["ours"]
    kinds = f" {ours['error_kinds']}" if ours["error_kinds"] else ""
    return [
        f"issuer-token turn: the text turn again, ours only, with {issuer['algorithm']} tokens "
        f"of a loopback OpenID provider (AUTH_ISSUER) instead of HS256: {ours['turns']} turns, "
        f"{ours['errors']} errors{kinds}, {ours['jwks_fetches']} JWKS fetch(es)"
    ]


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
