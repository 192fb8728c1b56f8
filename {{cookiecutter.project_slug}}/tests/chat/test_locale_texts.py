"""The service's own texts follow the request's locale (agent/catalogue.py), over HTTP in both APIs:
model errors, guardrail refusals{% if cookiecutter.examples %} and the example tool's progress{% endif %} in French or German, English for
a language the catalogue lacks; and the request's own `metadata` reaches tools."""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from typing import Any

import pytest
from agents import function_tool

from {{ cookiecutter.project_slug }}.agent import assistant as agent_module
from {{ cookiecutter.project_slug }}.agent.catalogue import TEXTS, say
from {{ cookiecutter.project_slug }}.agent.guardrails import no_secrets
from {{ cookiecutter.project_slug }}.agent.services import ToolContext
from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, assistant_text, user_input
from {{ cookiecutter.project_slug }}.http.requests import MAX_REQUEST_METADATA_BYTES
from tests.support.app import AppServer
from tests.support.fake_openai import FakeModel, Fault

JSON = dict[str, Any]
API_MODES = ["responses", "chat_completions"]


@pytest.fixture(params=API_MODES)
def server(request: pytest.FixtureRequest, app_factory: Callable[..., AppServer]) -> AppServer:
    return app_factory(openai_api=request.param)


def speaking(client: ChatKitClient, accept_language: str) -> ChatKitClient:
    client.headers["Accept-Language"] = accept_language
    return client


def test_every_language_fills_the_same_values_as_english() -> None:
    """A translation may leave a key out (English then), never add one or ask for other values."""
    english = TEXTS["en"]
    for language, texts in TEXTS.items():
        assert set(texts) <= set(english), language
        for key, text in texts.items():
            assert sorted(_fields(text)) == sorted(_fields(english[key])), (language, key)
    assert say("model.failed", "ja-JP") == english["model.failed"]


def _fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


@pytest.mark.parametrize(
    ("accept", "language"), [("fr-CA,fr;q=0.9", "fr"), ("de", "de"), ("ja", "en")]
)
async def test_a_model_error_is_in_the_users_language(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    accept: str,
    language: str,
) -> None:
    fake_model.faults.append(Fault(status=503))
    fake_model.faults.append(Fault(status=503))
    fake_model.faults.append(Fault(status=503))
    client = speaking(client_for(server=server), accept)
    events = await client.send("hello")
    (error,) = [e for e in events if e["type"] == "error"]
    assert error["message"] == TEXTS[language]["model.status"].format(status=503)


async def test_a_guardrail_refuses_in_the_users_language(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent_module, "GUARDRAILS", [no_secrets])
    client = speaking(client_for(server=server), "fr-FR")
    events = await client.send("ma clé : sk-" + "a1B2c3D4e5" * 3)
    (error,) = [e for e in events if e["type"] == "error"]
    assert error["message"] == TEXTS["fr"]["secrets.in_message"]
{%- if cookiecutter.examples %}


async def test_the_example_tools_progress_is_in_the_users_language(
    server: AppServer, client_for: Callable[..., ChatKitClient]
) -> None:
    client = speaking(client_for(server=server), "de-AT")
    events = await client.send('Wie spät? @tool get_time {"timezone": "UTC"}')
    (progress,) = [e for e in events if e["type"] == "progress_update"]
    assert progress["text"] == "Uhrzeit in UTC wird abgefragt"
{%- endif %}


# --- the request's own metadata ----------------------------------------------------------------


@function_tool
async def echo_metadata(ctx: ToolContext) -> str:
    """Return the ChatKit request's metadata."""
    return json.dumps(ctx.context.request_context.metadata, sort_keys=True)


async def test_the_requests_metadata_reaches_tools(
    server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(agent_module, "TOOLS", [echo_metadata])
    client = client_for(server=server)
    body = {
        "type": "threads.create",
        "params": {"input": user_input("which page? @tool echo_metadata {}")},
        "metadata": {"page": "/orders/42", "plan": "pro"},
    }
    async with client.http.stream("POST", client.url, json=body, headers=client.headers) as rsp:
        lines = [line async for line in rsp.aiter_lines() if line.startswith("data: ")]
    assert rsp.status_code == 200
    events = [json.loads(line[len("data: ") :]) for line in lines]
    answers = [
        assistant_text(e["item"])
        for e in events
        if e["type"] == "thread.item.done" and e["item"]["type"] == "assistant_message"
    ]
    assert answers[-1].startswith('Tool said: {"page": "/orders/42", "plan": "pro"}')


async def test_metadata_over_its_limit_is_refused_before_any_stream(
    server: AppServer, client_for: Callable[..., ChatKitClient]
) -> None:
    client = client_for(server=server)
    body = {
        "type": "threads.list",
        "params": {"limit": 1},
        "metadata": {"blob": "x" * MAX_REQUEST_METADATA_BYTES},
    }
    response = await client.http.post(client.url, json=body, headers=client.headers)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "metadata_too_large"
