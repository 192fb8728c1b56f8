"""The README's quick start in this clone, as its reader runs it before the test command.

Runs the quick start command from README.md (its `serve` on `--port 0`), waits until /health
answers 200, then Ctrl+C (SIGINT to the whole process group) and checks that it exited cleanly
and left no PostgreSQL running. `.ci/run` runs this first, so its test command then runs in a
clone holding `my_chatkit_app/` and a stopped development database, in the README's order
(issue 27: that order once made the nested quick start's /health answer 500). Stdlib only: it
runs before any environment exists. When `my_chatkit_app/` is already there (a second run),
it serves it with the command the README gives for that case.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLUG = "my_chatkit_app"
STARTED = re.compile(r"running on https?://[^\s:/]+:(\d+)")
TIMEOUT = 900


def quick_start_command() -> str:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("\n## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, re.S)]
    (command,) = [block for block in blocks if "cookiecutter" in block]
    if (ROOT / SLUG).exists():  # the README's way on when the folder exists
        command = f"cd {SLUG} && python3 scripts/uv.py run {SLUG} serve"
    return command + " --port 0"


def postgres_running() -> list[str]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "postgres" in argv and str(ROOT / SLUG / ".postgres") in argv:
            found.append(argv)
    return found


def main() -> int:
    command = quick_start_command()
    print(f"$ {command}", flush=True)
    shell = subprocess.Popen(
        ["/bin/sh", "-c", command], cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []

    def read() -> None:
        assert shell.stdout is not None
        for line in shell.stdout:
            lines.append(line)
            print(line, end="", flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    status, body = None, b""
    try:
        deadline = time.monotonic() + TIMEOUT
        port = None
        while port is None and time.monotonic() < deadline and shell.poll() is None:
            port = next((int(m[1]) for line in lines if (m := STARTED.search(line))), None)
            time.sleep(0.2)
        if port is None:
            print("quick start: the app never listened", file=sys.stderr)
            return 1
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGINT)  # Ctrl+C
        code = shell.wait(60)
        reader.join(5)
    print(f"quick start: /health {status} {body!r}; exit {code} after Ctrl+C", flush=True)
    if status != 200 or code not in (0, 130, -signal.SIGINT):  # the shell may die of SIGINT
        return 1
    if leftovers := postgres_running():
        print(f"quick start: PostgreSQL still running after Ctrl+C: {leftovers}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
