"""A database password and an API key end up in `.env` and nowhere else, end to end.

Bake with both secrets, then install the project and use it for real: the `db` command's
error line, a full chat against a real PostgreSQL (the app's own fake model), a model that
echoes the key back in its 401, and git. Neither secret may appear anywhere but `.env`.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.bake import Baked, Baker, files_under, run_in, uv_binary

pytestmark = pytest.mark.slow

PASSWORD = "S3cr3t-pa55"
API_KEY = "sk-test-SECRETKEY"
SECRETS = (PASSWORD, API_KEY)
SLUG = "secret_app"
UNREACHABLE_URL = f"postgresql://app:{PASSWORD}@127.0.0.1:1/appdb"


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def files_holding_secrets(*places: Path) -> list[Path]:
    return [
        path
        for place in places
        if place.exists()
        for path in files_under(place)
        if any(secret.encode() in path.read_bytes() for secret in SECRETS)
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(url: str, body: dict | None = None, token: str | None = None) -> tuple[int, str]:
    """POST (or GET without a body) with the stdlib; returns status and the whole body."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1 only)
        url, data=data, method="POST" if data else "GET"
    )
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@contextmanager
def process(project: Path, *command: str, env: dict[str, str]) -> Iterator[list[str]]:
    """Run a long-lived command in the project through its own `scripts/uv.py run`, as its
    README does; yields a list that gets its output on exit."""
    log = project / f".{command[-1]}-{time.monotonic_ns()}.log"
    output: list[str] = []
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "scripts/uv.py", "run", "--quiet", *command],
            cwd=project,
            env={**clean_env(), **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            yield output
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    output.append(log.read_text())
    log.unlink()


def clean_env() -> dict[str, str]:
    """The environment without the app's settings; the uv running these tests first on PATH
    (the machine may have none there: the bootstrap then uses this one, fetching nothing)."""
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "OPENAI_API_KEY", "DATABASE_URL", "OPENAI_BASE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["PATH"] = os.pathsep.join([str(Path(uv_binary()).parent), env.get("PATH", "")])
    return env


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if http_json(url)[0] < 500:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds} s")


class EchoingProvider(BaseHTTPRequestHandler):
    """A model provider that refuses the key and repeats it, as real ones partly do."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        key = self.headers.get("authorization", "")
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}"}})
        self.send_response(401)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def echoing_provider() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoingProvider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()


def chat(app_url: str, token: str) -> list[str]:
    """A full turn and a listing; returns every body the client received."""
    body = {"type": "threads.create", "params": {"input": {
        "content": [{"type": "input_text", "text": "hello"}],
        "attachments": [], "inference_options": {}}}}  # fmt: skip
    status, stream = http_json(app_url + "/chatkit", body, token)
    assert status == 200, stream
    listing = http_json(app_url + "/chatkit", {"type": "threads.list", "params": {}}, token)
    return [stream, listing[1]]


def test_secrets_stay_in_env_from_bake_to_chat(
    baker: Baker, tmp_path: Path, new_database: Callable[[str], str]
) -> None:
    app_database = new_database(PASSWORD)
    baked: Baked = baker(
        tmp_path,
        f"database_url={UNREACHABLE_URL}",
        f"project_slug={SLUG}",
        slug=SLUG,
        env={"OPENAI_API_KEY": API_KEY},
    )
    assert baked.result.returncode == 0, baked.output
    project = baked.project
    env_text = (project / ".env").read_text()
    assert PASSWORD in env_text and API_KEY in env_text
    assert not leaks(baked.output), "the hooks' output"
    holders = files_holding_secrets(baked.home, baked.tmpdir, baked.replay_dir, baked.out)
    assert holders == [project / ".env"], "replay, recorded answers and generated files"

    assert run_in(project, "uv", "sync", "--quiet").returncode == 0
    upgrade = run_in(project, "uv", "run", "--quiet", "python", "-m", SLUG, "db", "upgrade")
    assert upgrade.returncode == 1 and "cannot reach the database" in upgrade.stderr
    assert not leaks(upgrade.stdout + upgrade.stderr), "the db command's error line"

    real_db = {"DATABASE_URL": app_database, "LOG_LEVEL": "DEBUG"}
    migrated = run_in(project, "uv", "run", "--quiet", "python", "-m", SLUG, "db", "upgrade",
                      env=real_db)  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    assert not leaks(migrated.stdout + migrated.stderr)
    token = run_in(project, "uv", "run", "--quiet", "python", "-m", SLUG, "token", "alice")
    token_value = token.stdout.strip().splitlines()[-1]

    received, logs = [], []
    fake_port, app_port = free_port(), free_port()
    with process(project, "python", "tests/support/fake_openai.py", "--port", str(fake_port),
                 env={}) as fake_log:  # fmt: skip
        env = {**real_db, "OPENAI_BASE_URL": f"http://127.0.0.1:{fake_port}/v1"}
        with process(project, "python", "-m", SLUG, "serve", "--port", str(app_port),
                     env=env) as app_log:  # fmt: skip
            app_url = f"http://127.0.0.1:{app_port}"
            wait_for(app_url + "/health")
            received += chat(app_url, token_value)
    logs += app_log + fake_log
    assert '"thread.item.done"' in received[0] and "tok0" in received[0], received[0][-500:]

    with echoing_provider() as provider_url:
        env = {**real_db, "OPENAI_BASE_URL": provider_url, "OPENAI_MAX_RETRIES": "0"}
        with process(project, "python", "-m", SLUG, "serve", "--port", str(app_port),
                     env=env) as app_log:  # fmt: skip
            app_url = f"http://127.0.0.1:{app_port}"
            wait_for(app_url + "/health")
            refused = chat(app_url, token_value)
    logs += app_log
    assert '"type":"error"' in refused[0].replace(" ", ""), refused[0][-500:]
    received += refused

    assert not leaks("\n".join(received)), "what the client was sent"
    assert "request" in logs[0] and not leaks("\n".join(logs)), "the app's logs"

    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.split("\0")
    assert ".env" not in tracked
    holders = [
        name
        for name in tracked
        if name and leaks((project / name).read_bytes().decode("utf-8", errors="replace"))
    ]
    assert holders == [], "git-tracked files"
