"""Production: no API docs, links from PUBLIC_URL only, connection limits, a reverse proxy.

With ENVIRONMENT=production the interactive docs and the schema are gone and attachment links
never take their host from a request. `serve` hands uvicorn connection limits and timeouts,
and its header guard (compat/uvicorn_http.py) disconnects clients that are slow to send their
headers and refuses oversized ones, while /health keeps answering. compose.yaml puts nginx
(deploy/nginx.conf) in front of the app with header and body timeouts and body size limits
that match the app's.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from {{ cookiecutter.project_slug }} import cli
from {{ cookiecutter.project_slug }}.compat.uvicorn_http import HeaderGuardProtocol
from {{ cookiecutter.project_slug }}.http.requests import body_limit
from {{ cookiecutter.project_slug }}.settings import Settings, get_settings
from tests.support.app import TEST_AUTH_SECRET, AppServer
from tests.support.processes import ServerProcess

PROJECT = Path(__file__).resolve().parents[1]
PUBLIC_URL = "https://chat.example.com"
MULTIPART_ROOM = 64 * 1024
"""What uploads may add to MAX_ATTACHMENT_BYTES for the multipart framing."""


@pytest.fixture
def production(app_factory: Callable[..., AppServer]) -> AppServer:
    return app_factory(environment="production", public_url=PUBLIC_URL)


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"])
async def test_api_docs_are_off_in_production(
    production: AppServer, app_server: AppServer, path: str
) -> None:
    async with httpx.AsyncClient() as http:
        hidden = await http.get(production.url + path)
        shown = await http.get(app_server.url + path)
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "not_found"
    assert shown.status_code == 200, "development keeps them"


async def test_attachment_links_ignore_a_spoofed_host_in_production(
    production: AppServer,
) -> None:
    """Upload and preview links name PUBLIC_URL whatever Host the request claims."""
    spoofed = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    headers = {"Authorization": f"Bearer {production.token('linker')}", **spoofed}
    params = {"name": "cat.png", "size": 3, "mime_type": "image/png"}
    async with httpx.AsyncClient() as http:
        created = await http.post(
            production.url + "/chatkit",
            json={"type": "attachments.create", "params": params},
            headers=headers,
        )
        direct = await http.post(
            production.url + "/attachments",
            files={"file": ("dog.png", b"\x89PN", "image/png")},
            headers=headers,
        )
    assert created.status_code == 200, created.text
    assert direct.status_code == 200, direct.text
    links = [
        created.json()["upload_descriptor"]["url"],
        created.json()["preview_url"],
        direct.json()["preview_url"],
    ]
    for link in links:
        assert link.startswith(PUBLIC_URL + "/attachments/"), link
    assert "evil" not in created.text + direct.text


# --- serve: connection limits and timeouts ----------------------------------------------------


@pytest.fixture
def cli_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`get_settings()` for in-process CLI calls: the test secret, nothing from the machine."""
    monkeypatch.setenv("AUTH_SECRET", TEST_AUTH_SECRET)
    monkeypatch.setenv("DATABASE_URL", "postgresql://unused@127.0.0.1:9/unused")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_serve_passes_connection_limits_to_uvicorn(
    monkeypatch: pytest.MonkeyPatch, cli_settings: None
) -> None:
    """By default, and as given on the command line."""
    import uvicorn

    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    assert cli.main(["serve"]) == 0
    custom_argv = ["--limit-concurrency", "0", "--backlog", "64", "--keep-alive", "30"]
    custom_argv += ["--header-timeout", "2.5", "--max-header-bytes", "8192"]
    assert cli.main(["serve", *custom_argv]) == 0
    (app, default), (_, custom) = calls
    assert app == f"{cli.PACKAGE}.main:app"
    assert default["limit_concurrency"] == cli.SERVE_LIMIT_CONCURRENCY == 1000
    assert default["backlog"] == cli.SERVE_BACKLOG
    assert default["timeout_keep_alive"] == 75
    assert default["h11_max_incomplete_event_size"] == cli.SERVE_MAX_HEADER_BYTES
    assert default["http"].func is HeaderGuardProtocol
    assert default["http"].keywords == {
        "header_timeout": cli.SERVE_HEADER_TIMEOUT,
        "max_header_bytes": cli.SERVE_MAX_HEADER_BYTES,
    }
    assert custom["limit_concurrency"] is None, "0 means no limit"
    assert (custom["backlog"], custom["timeout_keep_alive"]) == (64, 30)
    assert custom["http"].keywords == {"header_timeout": 2.5, "max_header_bytes": 8192}
    assert custom["h11_max_incomplete_event_size"] == 8192


@pytest.fixture(scope="module")
def served(database_url: str) -> Iterator[str]:
    """The app as `serve` runs it, in its own process, with a 1-second header timeout."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "AUTH_SECRET": TEST_AUTH_SECRET,
        "LOG_LEVEL": "INFO",  # the startup line names the port the OS picked
        "CHAT_PAGE": "false",
    }
    argv = ["serve", "--port", "0", "--header-timeout", "1", "--max-header-bytes", "16384"]
    server = ServerProcess([sys.executable, "-m", cli.PACKAGE, *argv], env=env)
    try:
        server.wait_started()
        yield server.url
    finally:
        server.stop()


async def test_slow_headers_are_cut_off_and_health_still_answers(served: str) -> None:
    """Connections that never finish their headers (and ones that send nothing) are closed
    after the header timeout; meanwhile, and afterwards, /health answers at once."""
    port = int(served.rsplit(":", 1)[1])
    slow = []
    for n in range(100):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if n % 2:
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            await writer.drain()
        slow.append((reader, writer))
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(served + "/health")).status_code == 200
        # Every slow connection is closed by the server (EOF) within a few seconds.
        closed = await asyncio.wait_for(
            asyncio.gather(*(reader.read() for reader, _ in slow)), timeout=10
        )
        assert all(data == b"" for data in closed)
        assert (await http.get(served + "/health")).status_code == 200
    for _, writer in slow:
        writer.close()


async def test_a_kept_alive_connection_outlives_the_header_timeout(served: str) -> None:
    """The header clock runs only while a request's headers arrive, not between requests."""
    async with httpx.AsyncClient(timeout=5) as http:
        first = await http.get(served + "/health")
        await asyncio.sleep(1.5)  # idle for longer than the 1-second header timeout
        second = await http.get(served + "/health")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.extensions["network_stream"] is second.extensions["network_stream"]


async def test_oversized_headers_get_431(served: str) -> None:
    """Headers over --max-header-bytes (16384 here) get a 431. The test sends a little more
    than the limit, all of which the server reads at once: had it bytes left unread when it
    closes, the kernel would answer with a reset that can overtake the 431."""
    port = int(served.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20_000)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    async with httpx.AsyncClient(timeout=5) as http:
        assert (await http.get(served + "/health")).status_code == 200


# --- compose.yaml and the reverse proxy -------------------------------------------------------


def nginx_size(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", value).groups()  # type: ignore[union-attr]
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit.lower()]


def nginx_seconds(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(s|m)?", value).groups()  # type: ignore[union-attr]
    return int(number) * (60 if unit == "m" else 1)


def nginx_directives() -> dict[str, str]:
    text = (PROJECT / "deploy" / "nginx.conf").read_text()
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return dict(line.rstrip(";").split(None, 1) for line in lines if line.endswith(";"))


def test_compose_puts_a_reverse_proxy_in_front_of_the_app() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((PROJECT / "compose.yaml").read_text())
    services = compose["services"]
    proxy, app = services["proxy"], services["app"]
    assert proxy["image"].startswith("nginx")
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert proxy["ports"], "the proxy is what clients reach"
    assert "ports" not in app, "only the proxy reaches the app"
    assert proxy["depends_on"]["app"]["condition"] == "service_healthy"
    assert app["environment"]["ENVIRONMENT"].endswith("production}")
    assert app["environment"]["PUBLIC_URL"], "required in production"
    assert "serve" in " ".join(app["command"])


def test_proxy_timeouts_and_sizes_match_the_app() -> None:
    """Slow headers and bodies are cut off; the largest body the app accepts gets through;
    streams are not buffered and may pause longer than a model call."""
    directives = nginx_directives()
    settings = Settings(_env_file=None, auth_secret=TEST_AUTH_SECRET)  # type: ignore[call-arg]
    assert nginx_seconds(directives["client_header_timeout"]) <= cli.SERVE_HEADER_TIMEOUT
    assert nginx_seconds(directives["client_body_timeout"]) <= 60
    assert nginx_seconds(directives["send_timeout"]) <= 60
    largest = max(settings.max_attachment_bytes + MULTIPART_ROOM, body_limit(settings))
    assert nginx_size(directives["client_max_body_size"]) >= largest
    assert directives["proxy_buffering"] == "off"
    assert nginx_seconds(directives["proxy_read_timeout"]) >= 2 * settings.openai_timeout
    assert nginx_seconds(directives["keepalive_timeout"]) < 75, "below the app's keep-alive"
    assert directives["proxy_pass"] == "http://app"


def test_nginx_accepts_the_proxy_config(tmp_path: Path) -> None:
    """`nginx -t` on deploy/nginx.conf (the upstream pointed at loopback: no Docker DNS)."""
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if nginx is None:
        pytest.skip("nginx is not installed")
    config = (PROJECT / "deploy" / "nginx.conf").read_text()
    local = tmp_path / "nginx.conf"
    local.write_text(config.replace("server app:8000;", "server 127.0.0.1:8000;"))
    done = subprocess.run(
        [nginx, "-t", "-q", "-c", str(local), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
