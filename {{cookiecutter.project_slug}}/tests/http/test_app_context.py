"""App context and locale: APP_CONTEXT_HEADERS and Accept-Language become typed fields of the
request context, reach the model each turn as one delimited user-role item (not stored, not in
the instructions), reach tools through the typed agent context, and pass CORS preflights."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from agents import function_tool
from pydantic import ValidationError

from {{ cookiecutter.project_slug }}.agent import assistant as agent_module
from {{ cookiecutter.project_slug }}.agent.services import ToolContext
from {{ cookiecutter.project_slug }}.context import RequestContext, User, parse_locale
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, ChatKitHTTPError
from tests.support.app import TEST_AUTH_SECRET, AppServer, app_settings
from tests.support.fake_openai import FakeModel, _input_items, _text_of

JSON = dict[str, Any]
API_MODES = ["responses", "chat_completions"]
ORIGIN = "https://app.example.com"
HEADERS = "x-page-url,x-org-id"


@pytest.fixture(params=API_MODES)
def server(request: pytest.FixtureRequest, app_factory: Callable[..., AppServer]) -> AppServer:
    return app_factory(openai_api=request.param, app_context_headers=HEADERS, cors_origins=ORIGIN)


def streamed(fake: FakeModel) -> list[JSON]:
    return [body for body in fake.requests if body.get("stream")]


def app_context_of(body: JSON) -> JSON:
    """The facts of the request's one app-context item, which must be a user message."""
    items = [i for i in _input_items(body) if "<APP_CONTEXT>" in _text_of(i.get("content"))]
    assert len(items) == 1, items
    (item,) = items
    assert item["role"] == "user"
    text = _text_of(item["content"])
    assert text.startswith("<APP_CONTEXT>\n") and text.endswith("\n</APP_CONTEXT>")
    facts: JSON = json.loads(text.splitlines()[2])
    return facts


def instructions_of(body: JSON) -> str:
    system = [i for i in _input_items(body) if i.get("role") == "system"]
    return str(body.get("instructions") or "") + "".join(_text_of(i["content"]) for i in system)


async def test_headers_and_locale_reach_the_model_each_turn(
    server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    client = client_for(server=server)
    client.headers.update(
        {
            "X-Page-Url": "https://app.example.com/orders/42?tab=<b>",
            "x-org-id": "acme",
            "x-other": "not configured",
            "Accept-Language": "de;q=0.5, fr-ca, *;q=0.9",
        }
    )
    events = await client.send("hello")
    thread_id = next(e["thread"]["id"] for e in events if e["type"] == "thread.created")
    first = streamed(fake_model)[-1]
    assert app_context_of(first) == {
        "locale": "fr-CA",
        "x-page-url": "https://app.example.com/orders/42?tab=<b>",
        "x-org-id": "acme",
    }
    assert _input_items(first)[0 if "instructions" in first else 1]["role"] == "user"
    assert "APP_CONTEXT" not in instructions_of(first) and "acme" not in instructions_of(first)
    assert "\\u003cb>" in json.dumps(first), "a value cannot close the block"

    for name in ("X-Page-Url", "x-org-id", "x-other", "Accept-Language"):
        client.headers.pop(name)
    await client.send("again", thread_id)
    assert app_context_of(streamed(fake_model)[-1]) == {"locale": "en"}
    items = await client.request("items.list", {"thread_id": thread_id, "limit": 50})
    assert "APP_CONTEXT" not in json.dumps(items), "the item is built each turn, never stored"


async def test_a_tool_reads_the_request_through_the_typed_context(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @function_tool
    async def where_am_i(ctx: ToolContext) -> str:
        """Say where the user is."""
        request = ctx.context.request_context
        services = ctx.context.services
        return (
            f"{request.locale} {request.app_context.get('x-org-id')} {services.settings.openai_api}"
        )

    monkeypatch.setattr(agent_module, "TOOLS", [*agent_module.TOOLS, where_am_i])
    client = client_for(server=server)
    client.headers.update({"x-org-id": "acme", "accept-language": "pt-br"})
    events = await client.send("@tool where_am_i")
    done = [e["item"] for e in events if e["type"] == "thread.item.done"]
    answer = next(item for item in done if item["type"] == "assistant_message")
    api = server.settings.openai_api
    assert answer["content"][0]["text"] == f"Tool said: pt-BR acme {api}"


@pytest.mark.parametrize(
    ("name", "value"),
    [("x-org-id", b"a" * 2001), ("x-org-id", b"tab\there"), ("x-page-url", b"next\x85line")],
)
async def test_a_bad_header_value_is_400(
    server: AppServer, client_for: Callable[..., ChatKitClient], name: str, value: bytes
) -> None:
    """Too long, or a control character (a C1 one arrives as obs-text, read as latin-1)."""
    client = client_for(server=server)
    client.headers[name] = value  # type: ignore[assignment]
    with pytest.raises(ChatKitHTTPError) as refused:
        await client.request("threads.list", {"limit": 1})
    assert refused.value.status == 400
    assert refused.value.body["error"]["code"] == "invalid_app_context"


async def preflight(http: httpx.AsyncClient, headers: str, origin: str = ORIGIN) -> httpx.Response:
    """A CORS preflight for a POST to /chatkit asking to send these headers."""
    return await http.options(
        "/chatkit",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers,
        },
    )


async def test_cors_preflights_allow_the_chatkit_and_app_context_headers(
    server: AppServer,
) -> None:
    """A browser on CORS_ORIGINS may send them; an unlisted header is still refused."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        allowed = await preflight(
            http, "authorization,content-type,chatkit-frame-instance-id,x-page-url,x-org-id"
        )
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        granted = {
            h.strip().lower() for h in allowed.headers["access-control-allow-headers"].split(",")
        }
        assert {"authorization", "x-page-url", "x-org-id", "chatkit-frame-instance-id"} <= granted
        assert (await preflight(http, "x-secret-header")).status_code == 400
        assert (await preflight(http, "x-page-url", "https://evil.example")).status_code == 400


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        (None, "en"),
        ("", "en"),
        ("fr", "fr"),
        ("en-us,en;q=0.8", "en-US"),
        ("de;q=0.2, ja;q=0.7", "ja"),
        ("*", "en"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("nonsense!!, es;q=0.1", "es"),
        ("fr;q=0, it;q=oops", "en"),
        ("x" * 10_000, "en"),
    ],
)
def test_the_locale_is_the_preferred_valid_tag(header: str | None, locale: str) -> None:
    assert parse_locale(header, "en") == locale


def test_the_request_context_needs_only_a_request_and_a_user() -> None:
    context = RequestContext(request=None, user=User(id="u"))
    assert (context.app_context, context.locale) == ({}, "en")


def test_settings_refuse_what_cannot_work() -> None:
    base = {"database_url": "embedded", "base_url": "http://127.0.0.1:1/v1"}
    parsed = app_settings(
        **base, models=" test-model , other ,test-model", app_context_headers="X-A, x-b"
    )
    assert (parsed.models, parsed.app_context_headers) == (["test-model", "other"], ["x-a", "x-b"])
    assert app_settings(**base).allowed_models == ["test-model"]
    for bad in (
        {"models": "gpt-4o"},  # no OPENAI_MODEL
        {"models": "test-model,two words"},
        {"app_context_headers": "authorization"},
        {"app_context_headers": "x page"},
        {"default_locale": "english please"},
    ):
        with pytest.raises(ValidationError):
            app_settings(**base, **bad)
    assert TEST_AUTH_SECRET  # the settings above are otherwise valid


@pytest.fixture
def no_app_context(app_factory: Callable[..., AppServer]) -> Iterator[AppServer]:
    yield app_factory(cors_origins=ORIGIN)


async def test_without_app_context_headers_only_chatkit_headers_pass_cors(
    no_app_context: AppServer,
) -> None:
    async with httpx.AsyncClient(base_url=no_app_context.url) as http:
        response = await preflight(http, "authorization,chatkit-frame-instance-id")
        assert response.status_code == 200
        response = await preflight(http, "x-page-url")
        assert response.status_code == 400
