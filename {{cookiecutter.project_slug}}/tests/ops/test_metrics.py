"""/metrics: Prometheus text after real turns; off by default; a token, or loopback only."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, user_input
from {{ cookiecutter.project_slug }}.main import create_app
from {{ cookiecutter.project_slug }}.ops.metrics import MetricsMiddleware
from tests.support.app import TEST_AUTH_SECRET, AppServer, app_settings, wait_until
from tests.support.commands import PACKAGE, run
from tests.support.fake_openai import FakeModel, Fault

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# The fake model's usage per Responses API call (tests/support/fake_openai.py `_usage_responses`).
FAKE_INPUT_TOKENS, FAKE_OUTPUT_TOKENS = 10, 5


async def scrape(server: AppServer, **headers: str) -> Samples:
    """Every sample of /metrics, keyed by name and labels."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.url}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when it is not there yet: counters appear on first use)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_a_turn_shows_in_every_metric_family(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    """After one streamed turn: one /chatkit 200, one time to first token, one turn duration,
    the fake model's tokens in and out (answer and title), and the pool's gauges."""
    server = app_factory(metrics=True)
    client = client_for(server=server)
    before = await scrape(server)
    events = await client.send("hello")
    assert not [e for e in events if e["type"] == "error"]
    after = await scrape(server)

    requests = "chatkit_http_requests_total"
    assert delta(before, after, requests, route="/chatkit", method="POST", status="200") == 1
    ttft = "chatkit_time_to_first_token_seconds"
    assert delta(before, after, f"{ttft}_count") == 1
    assert 0 < delta(before, after, f"{ttft}_sum") < 10
    turn = "chatkit_turn_duration_seconds"
    assert delta(before, after, f"{turn}_count") == 1
    assert delta(before, after, f"{turn}_sum") >= delta(before, after, f"{ttft}_sum")
    assert delta(before, after, f"{turn}_bucket", le="+Inf") == 1

    assert len(fake_model.requests) == 2, "the answer and the title"
    calls = len(fake_model.requests)
    tokens = "chatkit_model_tokens_total"
    assert delta(before, after, tokens, direction="input") == FAKE_INPUT_TOKENS * calls
    assert delta(before, after, tokens, direction="output") == FAKE_OUTPUT_TOKENS * calls

    in_use = value(after, "chatkit_db_pool_connections", state="in_use")
    idle = value(after, "chatkit_db_pool_connections", state="idle")
    assert ("chatkit_db_pool_connections", frozenset({("state", "in_use")})) in after
    assert in_use >= 0 and in_use + idle >= 1, "the pool is open"
    max_size = server.settings.db_pool_max_size
    assert value(after, "chatkit_db_pool_max_connections") == max_size
    assert ("chatkit_db_pool_requests_waiting", frozenset()) in after
    assert value(after, "chatkit_db_pool_requests_waiting") == 0
    assert any(name == "process_cpu_seconds_total" for name, _ in after)


async def test_model_errors_are_counted_by_kind(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    """A rate-limited and a failing model call count as `rate_limit` and `server_error`; the
    turns still count as /chatkit 200 (the error is an event in the stream)."""
    server = app_factory(metrics=True)
    client = client_for(server=server)
    before = await scrape(server)
    fake_model.faults += [Fault(status=429), Fault(status=500)]
    for text in ("one", "two"):
        events = await client.send(text)
        assert [e["type"] for e in events if e["type"] == "error"] == ["error"]
    after = await scrape(server)
    errors = "chatkit_model_errors_total"
    assert delta(before, after, errors, kind="rate_limit") == 1
    assert delta(before, after, errors, kind="server_error") == 1
    requests = "chatkit_http_requests_total"
    assert delta(before, after, requests, route="/chatkit", method="POST", status="200") == 2


async def test_a_client_leaving_mid_stream_still_cancels_the_model_call(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    """With metrics on, a client that disconnects mid-answer still stops the model stream
    (the turn's wrapper closes the answer), and the turn's duration is recorded."""
    server = app_factory(metrics=True)
    client = client_for(server=server)
    before = await scrape(server)
    fake_model.tokens, fake_model.delay = 200, 0.02
    body = {"type": "threads.create", "params": {"input": user_input("long story")}}
    deltas = 0
    async with client.http.stream("POST", client.url, json=body, headers=client.headers) as r:
        async for line in r.aiter_lines():
            deltas += line.startswith("data: ") and '"thread.item.updated"' in line
            if deltas >= 5:
                break  # leaving the block closes the connection mid-stream
    assert await wait_until(lambda: fake_model.abandoned >= 1), "the model stream was closed"
    assert fake_model.completed == 0

    async def turn_recorded() -> bool:
        after = await scrape(server)
        return delta(before, after, "chatkit_turn_duration_seconds_count") == 1

    assert await wait_until(turn_recorded)
    after = await scrape(server)
    assert delta(before, after, "chatkit_time_to_first_token_seconds_count") == 1


async def test_requests_are_counted_by_route_template_not_path(
    app_factory: Callable[..., AppServer],
) -> None:
    """Ids in paths do not become labels: a route's template, or `unmatched`."""
    server = app_factory(metrics=True)
    before = await scrape(server)
    async with httpx.AsyncClient(base_url=server.url) as http:
        for attachment in ("atc_one", "atc_two"):
            await http.get(f"/attachments/{attachment}/content?token=x")
        assert (await http.get("/no/such/page-123")).status_code == 404
        assert (await http.get("/health")).status_code == 200
    after = await scrape(server)
    by_route: dict[str, float] = {}
    for name, labels in after:
        if name == "chatkit_http_requests_total":
            route = dict(labels)["route"]
            by_route[route] = by_route.get(route, 0) + delta(before, after, name, **dict(labels))
    assert by_route["/attachments/{attachment_id}/content"] == 2
    assert by_route["unmatched"] == 1
    assert by_route["/health"] == 1
    assert not [route for route in by_route if "atc_" in route or "page-123" in route]


async def test_metrics_are_off_by_default(app_server: AppServer) -> None:
    """Without METRICS=true there is no /metrics and no metrics middleware."""
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{app_server.url}/metrics")).status_code == 404
    app = create_app(app_settings("embedded", "http://127.0.0.1:9/v1"))
    assert not [m for m in app.user_middleware if m.cls is MetricsMiddleware]
    assert app.state.server.metrics is None


async def test_a_metrics_token_is_required_when_set(
    app_factory: Callable[..., AppServer],
) -> None:
    """With METRICS_TOKEN: 401 JSON without it or with another one, even from loopback."""
    server = app_factory(metrics=True, metrics_token="scrape-me-7f3a9c")
    async with httpx.AsyncClient() as http:
        for headers in (
            {},
            {"Authorization": "Bearer nope"},
            {"Authorization": "scrape-me-7f3a9c"},
        ):
            refused = await http.get(f"{server.url}/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json()["error"]["code"] == "unauthorized"
    samples = await scrape(server, Authorization="Bearer scrape-me-7f3a9c")
    assert ("chatkit_db_pool_max_connections", frozenset()) in samples


@pytest.mark.parametrize(
    "client, headers",
    [
        (("203.0.113.7", 50000), {}),
        (("10.0.0.2", 50000), {}),
        (("127.0.0.1", 50000), {"X-Forwarded-For": "127.0.0.1"}),
        (("127.0.0.1", 50000), {"Forwarded": "for=127.0.0.1"}),
        (("127.0.0.1", 50000), {}),
    ],
    ids=["remote", "private", "via-proxy", "forwarded", "no-listening-socket"],
)
async def test_without_a_token_others_get_403(
    client: tuple[str, int], headers: dict[str, str]
) -> None:
    """No METRICS_TOKEN: remote clients, relayed ones, and any client of an app whose
    listening socket is not known to be on loopback get 403 JSON."""
    app = create_app(app_settings("embedded", "http://127.0.0.1:9/v1", metrics=True))
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        response = await http.get("/metrics", headers=headers)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"


async def test_without_a_token_an_app_bound_to_loopback_answers_this_machine(
    app_factory: Callable[..., AppServer],
) -> None:
    server = app_factory(metrics=True)
    assert "chatkit_db_pool_connections" in str(await scrape(server))


async def test_without_a_token_an_app_bound_to_every_address_answers_no_one(
    database_url: str, fake_model: FakeModel
) -> None:
    """Bound to 0.0.0.0, a loopback client may be anyone's tunnel or port-forward: 403."""
    settings = app_settings(database_url, "http://127.0.0.1:9/v1", metrics=True)
    server = AppServer(settings, host="0.0.0.0").start()  # noqa: S104 (the point of the test)
    try:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{server.url}/metrics")
    finally:
        server.stop()
    assert response.status_code == 403, response.text
    assert "METRICS_TOKEN" in response.json()["error"]["message"]


def test_serve_refuses_metrics_without_a_token_on_a_public_address(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"METRICS", "METRICS_TOKEN"}}
    env.update(AUTH_SECRET=TEST_AUTH_SECRET, METRICS="true")
    done = run(
        [sys.executable, "-m", PACKAGE, "serve", "--host", "0.0.0.0", "--port", "0"],  # noqa: S104
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "METRICS_TOKEN" in done.stderr, done.stderr
