"""Start the services, run the phases, print the table (and write the JSON)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
from contextlib import suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any

from issuer_tokens import IssuerServer

from driver import generated
from driver.clients import Driver, FakeControl, Service
from driver.config import BENCH_DIR, make_config, parse_args
from driver.database import QueryCounter, create_databases, database_url, embedded_postgres
from driver.instructions import STARTUP_SECONDS, under_callgrind
from driver.measure import Bench
from driver.processes import Processes, free_port, wait_http
from driver.report import report
from driver.threads import baseline_filler, ours_filler


async def run_bench(args: argparse.Namespace, admin_url: str, workdir: Path) -> dict[str, Any]:
    """Start the services, measure, stop them."""
    config = make_config(args)
    phases = [p for p in args.only.split(",") if p]
    project: Path = args.project.resolve()
    slug = generated.slug_of(project)
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
    # An OpenID provider on loopback: ours also accepts its RS256 tokens (the overhead
    # phase's issuer-token row); HS256 tokens are still checked with AUTH_SECRET.
    issuer = IssuerServer().start()
    ours_env |= issuer.app_env()
    upgrade = subprocess.run(
        generated.cli(venv_bin, slug, "db", "upgrade"),
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
        serve = generated.cli(venv_bin, slug, "serve", "--host", "127.0.0.1")
        ours_argv = [*serve, "--port", str(a_port)]
        if args.instructions:
            config.instructions = workdir / "callgrind.out"
            ours_argv = under_callgrind(ours_argv, config.instructions)
        ours_proc = procs.start("ours-a", ours_argv, ours_env, project)
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
        startup = STARTUP_SECONDS if args.instructions else 60.0
        await wait_http(ours_proc, f"http://127.0.0.1:{a_port}/health", lambda s: s == 200, startup)
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
        queries = QueryCounter(admin_url, counting)
        bench = Bench(config, driver, fake, ours, ours_b, baseline, queries, stores, issuer)
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
        issuer.stop()


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
            with embedded_postgres(
                generated.slug_of(args.project), workdir, args.db_transport
            ) as url:
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
