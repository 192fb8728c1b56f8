"""Fixtures that run the real app over real HTTP with a fake model on loopback.

`app_factory(**settings)` starts the app under uvicorn on 127.0.0.1 (one server per distinct
settings, reused for the session); `fake_model` is the fake OpenAI server's behaviour, reset
before each test; `client_for(user_id)` is a ChatKitClient authenticated as that user.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import jwt
import pytest
import uvicorn

from {{ cookiecutter.project_slug }}.context import create_token
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient
from {{ cookiecutter.project_slug }}.main import create_app
from {{ cookiecutter.project_slug }}.settings import Settings
from tests.support.fake_openai import FakeModel, FakeOpenAI

# 64 bytes: no HMAC key length warning from PyJWT, whatever the algorithm (HS512 needs 64).
TEST_AUTH_SECRET = "test-secret-QkvtXKHmEknJ0ZdsjM60LGIkuSDNkaNYrDKZlEw2-jaUumh7O4K4YZ036"


def signed_token(claims: dict[str, Any], key: str = TEST_AUTH_SECRET, alg: str = "HS256") -> str:
    """A JWT with exactly these claims (the app's own tokens: `AppServer.token`)."""
    return jwt.encode(claims, key, algorithm=alg)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_until(predicate: Callable[[], Any], seconds: float = 5.0) -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy; return that."""
    steps = int(seconds / 0.05)
    value: Any = None
    for _ in range(max(steps, 1)):
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.05)
    return value


class AppServer:
    """The app under uvicorn in a background thread, on its own event loop."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1") -> None:
        self.settings = settings
        self.app = create_app(settings)
        config = uvicorn.Config(
            self.app, host=host, port=0, log_level="warning", timeout_graceful_shutdown=2
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> AppServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("app did not start")
            time.sleep(0.01)
        return self

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def token(self, user_id: str, **kwargs: Any) -> str:
        return create_token(user_id, settings=self.settings, **kwargs)

    def stop(self) -> None:
        """Stop the server; a thread left running would crash the interpreter at exit."""
        self.server.should_exit = True
        self.thread.join(timeout=20)
        if self.thread.is_alive():
            raise RuntimeError("app server did not stop")


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI().start()
    yield fake
    fake.stop(at_once=True)


@pytest.fixture
def fake_model(fake_openai: FakeOpenAI) -> Iterator[FakeModel]:
    """The fake model, at its defaults; reset again afterwards, so no later test (one that
    does not ask for it) gets this one's delays or faults."""
    fake_openai.model.reset()
    yield fake_openai.model
    fake_openai.model.reset()


def app_settings(database_url: str, base_url: str, **overrides: Any) -> Settings:
    """Settings for a test app: the test database, the fake model, no retries.

    `overrides` win, so a test may point the app at another database or model server.
    """
    values: dict[str, Any] = {
        "database_url": database_url,
        "openai_base_url": base_url,
        "openai_api_key": "test-key",
        "openai_model": "test-model",
        "openai_max_retries": 0,
        "openai_timeout": 5.0,
        "auth_secret": TEST_AUTH_SECRET,
        "log_level": "WARNING",
        "chat_page": False,
        # app_factory keeps one app per configuration for the session: small pools keep
        # them all within the test server's max_connections (100).
        "db_pool_max_size": 3,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def app_factory(database_url: str, fake_openai: FakeOpenAI) -> Iterator[Callable[..., AppServer]]:
    servers: dict[str, AppServer] = {}

    def start(**overrides: Any) -> AppServer:
        key = repr(sorted(overrides.items()))
        if key not in servers:
            settings = app_settings(
                **{"database_url": database_url, "base_url": fake_openai.base_url, **overrides}
            )
            servers[key] = AppServer(settings).start()
        return servers[key]

    yield start
    stop_all(servers.values())


def stop_all(servers: Iterable[AppServer]) -> None:
    """Stop these servers at once: each takes a few tenths of a second, mostly waiting."""
    servers = list(servers)
    for server in servers:
        server.server.should_exit = True
    for server in servers:
        server.stop()


@pytest.fixture
def app_server(app_factory: Callable[..., AppServer]) -> AppServer:
    """The app with default test settings (Responses API)."""
    return app_factory()


@pytest.fixture
async def client_for(
    app_server: AppServer,
) -> AsyncIterator[Callable[..., ChatKitClient]]:
    clients: list[ChatKitClient] = []

    def make(user_id: str | None = None, server: AppServer | None = None) -> ChatKitClient:
        target = server or app_server
        client = ChatKitClient(target.url, target.token(user_id or f"user-{uuid.uuid4().hex}"))
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
