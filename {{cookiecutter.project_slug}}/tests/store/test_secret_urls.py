"""No DATABASE_URL password in any output line: every form libpq accepts, under `serve` and
under uvicorn itself, with a closed loopback port (the "database unreachable" lines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.app import TEST_AUTH_SECRET

PACKAGE = "{{ cookiecutter.project_slug }}"
PASSWORD = "S3cret Passw0rd"
WORD = "S3cretPassw0rd"
# 127.0.0.1:1 refuses at once: the app starts, its first probe fails and says so.
URLS = {
    "space in the password": f"postgresql://app:{PASSWORD}@127.0.0.1:1/db",
    "encoded parameter name": f"postgresql://app@127.0.0.1:1/db?pass%77ord={WORD}",
    "password in the query": f"postgresql://app@127.0.0.1:1/db?sslmode=disable&password={WORD}",
    "PGPASSWORD in the query": f"postgresql://app@127.0.0.1:1/db?PGPASSWORD={WORD}",
    "encoded password": "postgresql://app:S3cret%20Passw0rd%40x@127.0.0.1:1/db",
    "key=value": f"host=127.0.0.1 port=1 user=app password={WORD} dbname=db connect_timeout=2",
    "key=value, quoted": f"host=127.0.0.1 port=1 password='{PASSWORD}' dbname=db",
}
SECRETS = (PASSWORD, WORD, "S3cret", "Passw0rd", "S3cret%20Passw0rd")
COMMANDS = {
    "serve": (PACKAGE, [PACKAGE, "serve", "--port", "0"]),
    "uvicorn": ("uvicorn", ["uvicorn", f"{PACKAGE}.main:app", "--port", "0"]),
}

# One interpreter imports the package once, then forks a child per (command, URL form): the
# child is `python -m <module> ...` with that DATABASE_URL, its output in a file. Each runs
# until its first "unreachable" line (or its end) and is then stopped; the outputs come back
# as JSON. Fourteen fresh interpreters took minutes on a loaded machine.
RUNNER = """
import gc, importlib, json, os, runpy, signal, sys, tempfile, time
cases, env, preload = json.loads(sys.argv[1])
for name in preload:
    importlib.import_module(name)
gc.freeze()  # the children's collections skip (and so do not copy) what they share
folder = tempfile.mkdtemp(prefix="secret-urls-")
children = {}
for i, (key, module, argv, url) in enumerate(cases):
    path = os.path.join(folder, str(i))
    pid = os.fork()
    if pid == 0:
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(out, 1), os.dup2(out, 2)
        os.environ.clear(); os.environ.update(env, DATABASE_URL=url)
        sys.argv, code = argv, 0
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush(), sys.stderr.flush()
        os._exit(code)
    children[key] = (pid, path)
def output(path):
    with open(path, errors="replace") as f:
        return f.read()
results, deadline = {}, time.monotonic() + 60
while len(results) < len(children) and time.monotonic() < deadline:
    for key, (pid, path) in children.items():
        if key in results:
            continue
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            results[key] = os.waitstatus_to_exitcode(status)
        elif os.path.exists(path) and "unreachable" in output(path):
            os.kill(pid, signal.SIGTERM)
            results[key] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    time.sleep(0.05)
for key, (pid, path) in children.items():
    if key not in results:
        os.kill(pid, signal.SIGKILL)
        results[key] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print(json.dumps({key: [results[key], output(path)] for key, (_, path) in children.items()}))
"""


def test_no_password_in_any_output_line() -> None:
    """Every (command, URL form) says the database is unreachable, or refuses the URL in a
    line naming DATABASE_URL, and no form of the password appears in any line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DATABASE_"))}
    env.update(AUTH_SECRET=TEST_AUTH_SECRET, LOG_LEVEL="DEBUG")
    cases = [
        (f"{command} / {form}", module, argv, url)
        for command, (module, argv) in COMMANDS.items()
        for form, url in URLS.items()
    ]
    # main builds its app on first access: importing it reads no settings
    preload = [f"{PACKAGE}.cli", f"{PACKAGE}.main", "uvicorn.main", "uvicorn.server"]
    runner = [sys.executable, "-c", RUNNER, json.dumps([cases, env, preload])]
    done = subprocess.run(runner, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.splitlines()[-1])
    assert len(results) == len(cases)
    for case, (status, output) in results.items():
        if status not in (0, -15):  # refused at startup: said in a line
            assert "DATABASE_URL" in output, (case, status, output)
        else:
            assert "unreachable" in output, (case, status, output)
        for secret in SECRETS:
            assert secret not in output, (case, output)
