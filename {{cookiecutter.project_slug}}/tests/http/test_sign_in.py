"""Sign-in with an identity provider, over HTTP against the app: a real OpenID provider's
tokens reach each user's own threads, the app's own HS256 tokens keep working beside them,
a refused token is a 401 JSON with its reason, an unreachable provider a 503 JSON."""

from __future__ import annotations

import socket
import sys
import uuid
from collections.abc import Callable

import httpx
import pytest

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, ChatKitHTTPError
from tests.support.app import AppServer, bearer
from tests.support.commands import PACKAGE, cli_env, run
from tests.support.fake_openai import FakeModel
from tests.support.identity import AUDIENCE, OpenIDProvider, issuer_token


@pytest.fixture
def provider_app(
    app_factory: Callable[..., AppServer], openid_provider: OpenIDProvider
) -> AppServer:
    return app_factory(auth_issuer=openid_provider.issuer, auth_audience=AUDIENCE)


async def test_provider_users_get_their_own_threads_and_never_each_others(
    provider_app: AppServer, openid_provider: OpenIDProvider, fake_model: FakeModel
) -> None:
    alice_id, bob_id = f"alice-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}"
    alice_token = openid_provider.id_token(alice_id, email=f"{alice_id}@example.com")
    bob_token = openid_provider.id_token(bob_id)
    async with (
        ChatKitClient(provider_app.url, alice_token) as alice,
        ChatKitClient(provider_app.url, bob_token) as bob,
    ):
        assert (await alice.request("threads.list", {}))["data"] == []
        events = await alice.send("hello from alice")
        thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
        listed = (await alice.request("threads.list", {}))["data"]
        assert [thread["id"] for thread in listed] == [thread_id]
        assert (await bob.request("threads.list", {}))["data"] == []
        with pytest.raises(ChatKitHTTPError) as caught:
            await bob.request("threads.get_by_id", {"thread_id": thread_id})
        assert caught.value.status == 404
    # The same user through the app's own HS256 token (the `token` command) sees the thread.
    async with ChatKitClient(provider_app.url, provider_app.token(alice_id)) as same:
        assert [t["id"] for t in (await same.request("threads.list", {}))["data"]] == [thread_id]


async def test_refused_tokens_are_401_json_with_the_reason(
    provider_app: AppServer, openid_provider: OpenIDProvider
) -> None:
    other_app = openid_provider.id_token("carol", client_id="another-app")
    forged_issuer = issuer_token(openid_provider.issuer, kid=None)  # a key it never had
    async with httpx.AsyncClient() as http:
        for token, reason in (
            (other_app, "wrong_audience"),
            (forged_issuer, "bad_signature"),
            (issuer_token("https://elsewhere.example.com"), "wrong_issuer"),
        ):
            body = {"type": "threads.list", "params": {}}
            response = await http.post(
                provider_app.url + "/chatkit", json=body, headers=bearer(token)
            )
            assert response.status_code == 401, response.text
            error = response.json()["error"]
            assert (error["code"], error["reason"]) == ("unauthorized", reason), error


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_provider_is_a_503_json_and_hs256_still_works(
    app_factory: Callable[..., AppServer],
) -> None:
    issuer = f"http://127.0.0.1:{closed_port()}"
    app = app_factory(auth_issuer=issuer, auth_audience=AUDIENCE)
    async with httpx.AsyncClient() as http:
        body = {"type": "threads.list", "params": {}}
        response = await http.post(
            app.url + "/chatkit", json=body, headers=bearer(issuer_token(issuer, kid=None))
        )
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "identity_provider_unavailable"
        assert int(response.headers["retry-after"]) >= 1
        own = await http.post(app.url + "/chatkit", json=body, headers=bearer(app.token("dev")))
        assert own.status_code == 200, own.text


async def test_the_dev_page_and_the_token_command_still_sign_in_beside_an_issuer(
    app_factory: Callable[..., AppServer], openid_provider: OpenIDProvider, database_url: str
) -> None:
    app = app_factory(chat_page=True, auth_issuer=openid_provider.issuer, auth_audience=AUDIENCE)
    env = cli_env(database_url) | {"AUTH_ISSUER": app.settings.auth_issuer or ""}
    env["AUTH_AUDIENCE"] = AUDIENCE
    printed = run([sys.executable, "-m", PACKAGE, "token", "cli-user"], env=env)
    assert printed.returncode == 0, printed.stderr
    async with httpx.AsyncClient() as http:
        dev = (await http.post(app.url + "/dev/token")).json()["token"]
    for token in (dev, printed.stdout.strip()):
        async with ChatKitClient(app.url, token) as client:
            assert "data" in await client.request("threads.list", {})
