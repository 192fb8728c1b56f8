"""The development chat page: served only in development, its token endpoint only to loopback,
and in a real headless Chromium it explains what is missing instead of staying blank. Its
Content-Security-Policy lets its own script and ChatKit's run, and no site frame it.

Chromium runs with every host name except 127.0.0.1 unresolvable (so no test depends on the
internet, and the CDN is reliably "unreachable"), driven over the Chrome DevTools Protocol.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from {{ cookiecutter.project_slug }}.agent.assistant import TOOL_MENU
from {{ cookiecutter.project_slug }}.context import verify_token
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient
from {{ cookiecutter.project_slug }}.dev.page import CHATKIT_SCRIPT_URL, DEV_USER, install_chat_page
from tests.support.app import AppServer, app_settings, wait_until
from tests.support.fake_openai import FakeModel, last_user_text
from tests.support.processes import require_tool, stop_process

# --- HTTP: what is served where ------------------------------------------------------------


@pytest.fixture
def page_server(app_factory: Callable[..., AppServer]) -> AppServer:
    """The app with the chat page on (the test settings turn it off by default)."""
    return app_factory(chat_page=True)


async def test_page_is_served_in_development(page_server: AppServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(page_server.url + "/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    config = json.loads(
        response.text.split('<script id="config" type="application/json">')[1].split("</script>")[0]
    )
    assert config["scriptUrl"] == CHATKIT_SCRIPT_URL
    assert config["domainKey"] == page_server.settings.chatkit_domain_key
    assert config["apiPath"] == "/chatkit"


@pytest.mark.parametrize(
    "overrides",
    [
        {"environment": "production", "chat_page": True, "public_url": "https://chat.example.com"},
        {"chat_page": False},
    ],
)
async def test_no_page_and_no_token_when_disabled(
    app_factory: Callable[..., AppServer], overrides: dict[str, Any]
) -> None:
    server = app_factory(**overrides)
    async with httpx.AsyncClient() as http:
        page = await http.get(server.url + "/")
        token = await http.post(server.url + "/dev/token")
        health = await http.get(server.url + "/health")
    assert (page.status_code, token.status_code, health.status_code) == (404, 404, 200)


async def test_dev_token_from_loopback_works_on_chatkit(page_server: AppServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(page_server.url + "/dev/token")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    token = response.json()["token"]
    assert verify_token(token, page_server.settings).id == DEV_USER
    async with ChatKitClient(page_server.url, token) as client:
        page = await client.request("threads.list", {"limit": 1})
    assert "data" in page


@pytest.mark.parametrize(
    "client_host, headers, reason",
    [
        ("203.0.113.7", {}, "only given to this machine (loopback), not to 203.0.113.7"),
        ("127.0.0.1", {"host": "rebound.example:8000"}, "open the page through http://127.0.0.1"),
        ("::1", {"origin": "https://evil.example"}, "not given to other sites"),
    ],
)
async def test_dev_token_refused_off_loopback(
    page_server: AppServer, client_host: str, headers: dict[str, str], reason: str
) -> None:
    transport = httpx.ASGITransport(app=page_server.app, client=(client_host, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        response = await http.post("/dev/token", headers=headers)
    assert response.status_code == 403
    assert reason in response.json()["error"]["message"]
    assert "token" not in response.json()


async def test_dev_token_refused_in_production_even_if_installed(database_url: str) -> None:
    settings = app_settings(
        database_url,
        "http://127.0.0.1:9/v1",
        environment="production",
        public_url="https://chat.example.com",
    )
    app = FastAPI()
    install_chat_page(app, settings)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        response = await http.post("/dev/token")
    assert response.status_code == 403
    assert "ENVIRONMENT=development" in response.json()["error"]["message"]


def csp_directives(header: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: [sources]}."""
    pairs = (part.split() for part in header.split(";") if part.strip())
    return {name: sources for name, *sources in pairs}


async def test_page_has_a_content_security_policy(page_server: AppServer) -> None:
    """No site may frame the page; scripts run only from the app (its inline script, by hash)
    and the ChatKit CDN; ChatKit's frame comes from OpenAI; no plugins, no <base> tricks."""
    async with httpx.AsyncClient() as http:
        response = await http.get(page_server.url + "/")
    csp = csp_directives(response.headers["content-security-policy"])
    assert csp["frame-ancestors"] == ["'none'"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    cdn = "https://cdn.platform.openai.com"
    assert CHATKIT_SCRIPT_URL.startswith(cdn + "/")
    inline = response.text.split("<script>")[1].split("</script>")[0]
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert sorted(csp["script-src"]) == sorted(["'self'", f"'sha256-{digest}'", cdn])
    assert cdn in csp["frame-src"] and "'self'" in csp["connect-src"]
    assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
    assert csp["default-src"] == ["'self'"]
    assert not any("unsafe" in source for source in csp["script-src"])


async def test_page_policy_lets_attachment_links_reach_public_url(
    app_factory: Callable[..., AppServer],
) -> None:
    """With PUBLIC_URL on another origin, uploads and previews may still reach it."""
    server = app_factory(chat_page=True, public_url="http://files.example:8000/chat")
    async with httpx.AsyncClient() as http:
        response = await http.get(server.url + "/")
    csp = csp_directives(response.headers["content-security-policy"])
    assert "http://files.example:8000" in csp["connect-src"]
    assert "http://files.example:8000" in csp["img-src"]


# --- In a real browser ---------------------------------------------------------------------


class DevTools:
    """A minimal Chrome DevTools Protocol client for one page target."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.ids = iter(range(1, 1_000_000))
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.handlers: dict[str, Callable[[dict[str, Any]], Any]] = {}
        self.reader = asyncio.create_task(self.read())

    async def read(self) -> None:
        async for raw in self.socket:
            message = json.loads(raw)
            if "id" in message and message["id"] in self.pending:
                self.pending.pop(message["id"]).set_result(message)
                continue
            self.events.append(message)
            handler = self.handlers.get(message.get("method", ""))
            if handler is not None:
                asyncio.create_task(handler(message["params"]))  # noqa: RUF006

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        await self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        answer = await asyncio.wait_for(future, 15)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return dict(answer.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def wait_for(self, expression: str, seconds: float = 10.0) -> Any:
        deadline = time.monotonic() + seconds
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                text = await self.evaluate("document.body.innerText")
                raise AssertionError(f"timed out waiting for {expression}; the page shows:\n{text}")
            await asyncio.sleep(0.1)

    async def open(self, url: str) -> None:
        """Load `url` afresh, forgetting the events of the previous page."""
        self.events.clear()
        await self.send("Page.navigate", url=url)

    def console_errors(self) -> list[str]:
        """Uncaught exceptions, console.error calls and error log entries of the page."""
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                errors.append(json.dumps(params["exceptionDetails"])[:500])
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                errors.append(json.dumps(params["args"])[:500])
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                entry = params["entry"]
                errors.append(f"{entry.get('url', '')} {entry['text']}")
        return errors

    async def screenshot(self, path: Path) -> Path:
        """Save a PNG of the page (and copy it to $ARTIFACTS_DIR when set)."""
        shot = await self.send("Page.captureScreenshot", format="png")
        await asyncio.to_thread(save_artifact, path, base64.b64decode(shot["data"]))
        return path


def save_artifact(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    if os.environ.get("ARTIFACTS_DIR"):
        target = Path(os.environ["ARTIFACTS_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.name)


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return str(shutil.which(name))
    return require_tool("chromium", "chromium")


def launch_chromium(binary: str, profile: Path) -> subprocess.Popen[bytes]:
    """Headless Chromium with remote debugging; only 127.0.0.1 (and chat.test) resolve."""
    return subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--remote-debugging-port=0",
            "--window-size=1100,760",
            "--host-resolver-rules=MAP chat.test 127.0.0.1, MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[DevTools]:
    """A headless Chromium with one blank tab, driven over CDP; no host but 127.0.0.1 resolves."""
    binary = chromium_path()
    websockets = pytest.importorskip("websockets.asyncio.client")
    profile = tmp_path / "chromium-profile"
    process = launch_chromium(binary, profile)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("chromium did not start (no DevToolsActivePort)")
            await asyncio.sleep(0.05)
        port = port_file.read_text().split()[0]
        async with httpx.AsyncClient() as http:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        page = next(t for t in targets if t["type"] == "page")
        async with websockets.connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
            devtools = DevTools(socket)
            for domain in ("Page", "Runtime", "Log"):
                await devtools.send(f"{domain}.enable")
            yield devtools
            devtools.reader.cancel()
    finally:
        stop_process(process, 10)


PROBLEM = "document.body.dataset.state === 'problem' && document.body.innerText"


def check_states(devtools: DevTools) -> Any:
    return devtools.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#checks li')]"
        ".map((li) => [li.id.slice(6), li.dataset.state]))"
    )


async def test_page_explains_the_blocked_cdn_script(
    browser: DevTools, page_server: AppServer, tmp_path: Path
) -> None:
    await browser.open(page_server.url + "/")
    text = await browser.wait_for(PROBLEM)
    assert await check_states(browser) == {
        "server": "ok",
        "token": "ok",
        "key": "ok",
        "script": "fail",
    }
    assert "The ChatKit script could not be loaded" in text
    assert CHATKIT_SCRIPT_URL in text
    assert "python3 scripts/uv.py run {{ cookiecutter.project_slug }} chat" in text
    shot = await browser.screenshot(tmp_path / "chat-page-cdn-unreachable.png")
    assert shot.stat().st_size > 10_000
    # The only error is the CDN script the browser could not fetch; the page's own script ran.
    errors = browser.console_errors()
    assert errors and all(e.startswith(CHATKIT_SCRIPT_URL) for e in errors), errors


async def test_page_says_when_the_domain_key_is_missing(
    browser: DevTools, app_factory: Callable[..., AppServer], tmp_path: Path
) -> None:
    server = app_factory(chat_page=True, chatkit_domain_key="")
    await browser.open(server.url + "/")
    text = await browser.wait_for(PROBLEM)
    assert (await check_states(browser))["key"] == "fail"
    assert "No ChatKit domain key is configured" in text and "CHATKIT_DOMAIN_KEY" in text
    await browser.screenshot(tmp_path / "chat-page-no-domain-key.png")


async def test_page_says_when_the_token_is_refused(
    browser: DevTools, page_server: AppServer
) -> None:
    # chat.test resolves to 127.0.0.1 in this browser: a loopback client, but not a loopback
    # host name, as after DNS rebinding: the token endpoint refuses.
    await browser.open(page_server.url.replace("127.0.0.1", "chat.test") + "/")
    text = await browser.wait_for(PROBLEM)
    assert (await check_states(browser))["token"] == "fail"
    assert "The app refused a development token" in text
    assert "open the page through http://127.0.0.1" in text


async def test_page_says_when_the_server_is_down(
    browser: DevTools, page_server: AppServer, tmp_path: Path
) -> None:
    async def refuse(params: dict[str, Any]) -> None:
        await browser.send(
            "Fetch.failRequest", requestId=params["requestId"], errorReason="ConnectionRefused"
        )

    browser.handlers["Fetch.requestPaused"] = refuse
    # The page loads, then the app goes away: its health check and token request are refused.
    patterns = [{"urlPattern": "*/health"}, {"urlPattern": "*/dev/token"}]
    await browser.send("Fetch.enable", patterns=patterns)
    await browser.open(page_server.url + "/")
    text = await browser.wait_for(PROBLEM)
    assert (await check_states(browser))["server"] == "fail"
    assert "The app is not reachable" in text
    assert "python3 scripts/uv.py run {{ cookiecutter.project_slug }} serve" in text
    await browser.screenshot(tmp_path / "chat-page-server-down.png")


# Stands in for OpenAI's chatkit.js (unreachable here): a tiny <openai-chatkit> that sends one
# message through the options the page gave it, exactly as the real component would call them.
CHATKIT_STAND_IN = """
customElements.define("openai-chatkit", class extends HTMLElement {
  async setOptions(options) {
    const api = options.api;
    window.standIn = {url: api.url, domainKey: api.domainKey, answer: null};
    const body = JSON.stringify({type: "threads.create", params: {input: {
      content: [{type: "input_text", text: "hello from the page"}],
      attachments: [], inference_options: {}}}});
    const response = await api.fetch(api.url, {method: "POST", body,
      headers: {"Content-Type": "application/json"}});
    const text = await response.text();
    const deltas = text.split("\\n").filter((l) => l.startsWith("data: "))
      .map((l) => JSON.parse(l.slice(6)))
      .filter((e) => e.type === "thread.item.updated" && e.update.delta)
      .map((e) => e.update.delta);
    window.standIn.composer = options.composer;
    window.standIn.tags = await options.entities.onTagSearch("short title");
    window.standIn.preview = await options.entities.onRequestPreview(window.standIn.tags[0]);
    window.standIn.answer = deltas.join("");
    this.textContent = window.standIn.answer;
    this.dispatchEvent(new CustomEvent("chatkit.ready"));
  }
});
"""


async def use_stand_in(browser: DevTools, script: str) -> None:
    """Serve `script` to the page in place of ChatKit's (CHATKIT_SCRIPT_URL)."""

    async def serve_stand_in(params: dict[str, Any]) -> None:
        await browser.send(
            "Fetch.fulfillRequest",
            requestId=params["requestId"],
            responseCode=200,
            responseHeaders=[{"name": "Content-Type", "value": "text/javascript"}],
            body=base64.b64encode(script.encode()).decode(),
        )

    browser.handlers["Fetch.requestPaused"] = serve_stand_in
    await browser.send("Fetch.enable", patterns=[{"urlPattern": CHATKIT_SCRIPT_URL}])


async def test_page_wires_the_component_to_chatkit_with_a_bearer_token(
    browser: DevTools, page_server: AppServer, fake_model: FakeModel
) -> None:
    fake_model.reply = lambda body: f"page said: {last_user_text(body)}"
    await use_stand_in(browser, CHATKIT_STAND_IN)
    await browser.open(page_server.url + "/")
    answer = await browser.wait_for("window.standIn && window.standIn.answer")
    assert answer == "page said: hello from the page"
    assert await browser.evaluate("document.body.dataset.state") == "ready"
    assert await browser.evaluate("window.standIn.url") == page_server.url + "/chatkit"
    assert await browser.evaluate("window.standIn.domainKey") == (
        page_server.settings.chatkit_domain_key
    )
    assert browser.console_errors() == []
    async with ChatKitClient(page_server.url, page_server.token(DEV_USER)) as client:
        threads = (await client.request("threads.list", {"limit": 50}))["data"]
        thread = await client.request("threads.get_by_id", {"thread_id": threads[0]["id"]})
    texts = [part["text"] for item in thread["items"]["data"] for part in item["content"]]
    assert texts == ["hello from the page", "page said: hello from the page"]
    # The composer offers what the server says, and @-mentions search the user's threads.
    tools = [option.as_json() for option in TOOL_MENU]
    composer = await browser.evaluate("window.standIn.composer")
    assert composer.get("tools", []) == tools and "models" not in composer
    tags = await browser.evaluate("window.standIn.tags")
    assert {"id": thread["id"], "title": thread["title"]}.items() <= tags[0].items()
    preview = await browser.evaluate("window.standIn.preview.preview")
    assert preview["children"][0]["value"] == thread["title"]
{%- if cookiecutter.examples %}


# A stand-in that asks for the time, clicks the clock's Refresh button and hands the client
# effects of that action's stream to the page's `onEffect`, as the real component does.
CHATKIT_EFFECT_STAND_IN = """
customElements.define("openai-chatkit", class extends HTMLElement {
  async setOptions(options) {
    if (window.standIn) return;
    window.standIn = {effects: null};
    const api = options.api;
    const post = async (type, params) => {
      const response = await api.fetch(api.url, {method: "POST",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify({type, params})});
      return (await response.text()).split("\\n").filter((l) => l.startsWith("data: "))
        .map((l) => JSON.parse(l.slice(6)));
    };
    const text = '@tool get_time {"timezone": "Europe/Paris"}';
    const created = await post("threads.create",
      {input: {content: [{type: "input_text", text}], attachments: [], inference_options: {}}});
    const threadId = created.find((e) => e.type === "thread.created").thread.id;
    const clock = created.find((e) => e.type === "thread.item.done" && e.item.type === "widget");
    const refresh = clock.item.widget.children.find((c) => c.type === "Row").children[0];
    const events = await post("threads.custom_action",
      {thread_id: threadId, item_id: clock.item.id, action: refresh.onClickAction});
    const effects = events.filter((e) => e.type === "client_effect");
    effects.forEach((e) => options.onEffect({name: e.name, data: e.data}));
    window.standIn.effects = effects.map((e) => e.name);
    this.dispatchEvent(new CustomEvent("chatkit.ready"));
  }
});
"""


async def test_page_handles_the_clock_refreshed_effect(
    browser: DevTools, page_server: AppServer
) -> None:
    """The Refresh action streams `clock.refreshed`; the page's onEffect shows its zone."""
    await use_stand_in(browser, CHATKIT_EFFECT_STAND_IN)
    await browser.open(page_server.url + "/")
    assert await browser.wait_for("window.standIn && window.standIn.effects") == ["clock.refreshed"]
    note = "document.getElementById('note')"
    assert await browser.evaluate(f"{note}.hidden") is False
    assert await browser.evaluate(f"{note}.textContent") == "Clock refreshed: Europe/Paris"
    assert browser.console_errors() == []
{%- endif %}


@contextmanager
def framing_site(target: str) -> Iterator[str]:
    """Another site (another port on 127.0.0.1) whose page puts `target` in an iframe."""
    html = f'<!doctype html><iframe id="chat" src="{target}"></iframe>'.encode()

    class Framer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Framer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


async def test_page_cannot_be_framed_by_another_site(
    browser: DevTools, page_server: AppServer
) -> None:
    """A page of another site that puts the chat page in an iframe gets nothing: Chromium
    shows its error page in the frame (frame-ancestors 'none'), so no click can be tricked
    out of the chat."""

    def framed() -> dict[str, Any] | None:
        """The iframe once it has navigated: the chat page, or Chromium's error page."""
        return next(
            (
                event["params"]["frame"]
                for event in browser.events
                if event.get("method") == "Page.frameNavigated"
                and event["params"]["frame"].get("parentId")
            ),
            None,
        )

    with framing_site(page_server.url + "/") as framer:
        await browser.open(framer)
        frame = await wait_until(framed, 10)
    assert frame is not None, "the iframe never navigated"
    assert frame["url"] == "chrome-error://chromewebdata/", frame
    assert frame.get("unreachableUrl") == page_server.url + "/"


# --- CHATKIT_SCRIPT_URL: a ChatKit.js of your own, and the switches the page turns on ---------

# Records the options the page hands ChatKit (functions dropped), as the real component gets them.
CHATKIT_RECORDING_STAND_IN = b"""
customElements.define("openai-chatkit", class extends HTMLElement {
  setOptions(options) {
    window.standIn = {options: JSON.parse(JSON.stringify(options)),
                      fetch: typeof options.api.fetch};
    this.dispatchEvent(new CustomEvent("chatkit.ready"));
  }
});
"""


@contextmanager
def script_site(script: bytes) -> Iterator[str]:
    """Another origin (a port of 127.0.0.1) serving `script` as /chatkit.js: a self-hosted copy."""

    class Scripts(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/chatkit.js" else 404)
            self.send_header("Content-Type", "text/javascript")
            self.send_header("Content-Length", str(len(script)))
            self.end_headers()
            self.wfile.write(script)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripts)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/chatkit.js"
    finally:
        server.shutdown()
        server.server_close()


async def test_page_loads_chatkit_from_its_setting_with_attachments_dictation_and_feedback(
    browser: DevTools, app_factory: Callable[..., AppServer]
) -> None:
    """CHATKIT_SCRIPT_URL names the script (its origin, not the CDN, is in the CSP), and the
    page turns on what the server does: attachments with the two-phase upload strategy and
    the server's limits, dictation, and 👍/👎 feedback."""
    with script_site(CHATKIT_RECORDING_STAND_IN) as script_url:
        server = app_factory(chat_page=True, chatkit_script_url=script_url)
        async with httpx.AsyncClient() as http:
            response = await http.get(server.url + "/")
        csp = csp_directives(response.headers["content-security-policy"])
        origin = script_url.removesuffix("/chatkit.js")
        assert origin in csp["script-src"]
        assert "https://cdn.platform.openai.com" not in csp["script-src"]
        await browser.open(server.url + "/")
        options = await browser.wait_for("window.standIn && window.standIn.options")
    assert await browser.evaluate("window.standIn.fetch") == "function"
    assert options["api"]["uploadStrategy"] == {"type": "two_phase"}
    assert options["composer"]["attachments"] == {
        "enabled": True,
        "maxCount": server.settings.max_attachments_per_message,
        "maxSize": server.settings.max_attachment_bytes,
    }
    assert options["composer"]["dictation"] == {"enabled": True}
    assert options["threadItemActions"] == {"feedback": True}
    assert await browser.evaluate("document.body.dataset.state") == "ready"
    assert browser.console_errors() == []


def test_chatkit_script_url_must_be_a_plain_http_url() -> None:
    """It goes into the page's CSP: a quote or a separator could widen the policy."""
    for bad in ("cdn.example.com/chatkit.js", "https://x.example/a.js; script-src *", "ftp://x/a"):
        with pytest.raises(ValueError, match="CHATKIT_SCRIPT_URL must be an http"):
            app_settings("embedded", "http://fake/v1", chatkit_script_url=bad)
