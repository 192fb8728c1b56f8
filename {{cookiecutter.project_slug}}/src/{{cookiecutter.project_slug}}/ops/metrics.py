"""Prometheus metrics at `/metrics` (`METRICS=true`; the README lists them). One registry per
app: with `serve --workers N` each worker counts its own."""

from __future__ import annotations

import hmac
import ipaddress
import os
import socket
import stat
import time
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING

import openai
from agents.exceptions import AgentsException
from chatkit.errors import CustomStreamError
from chatkit.types import (
    AssistantMessageContentPartTextDelta,
    ThreadItemUpdatedEvent,
    ThreadStreamEvent,
)
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..context import RequestContext
from ..errors import MissingApiKeyError, error_response
from .usage import Meter

if TYPE_CHECKING:
    from ..store.postgres import PostgresStore

STARTED = "chatkit.started"  # scope key: the request's arrival (perf_counter)
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
UNMATCHED = "unmatched"
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0)
TURN_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


class PoolCollector(Collector):
    """The store's connection pool, read at scrape time."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def collect(self) -> Iterable[Metric]:
        try:
            stats = self.store.pool.get_stats()
        except RuntimeError:  # not open yet (or closed): report an empty pool
            stats = {}
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        connections = GaugeMetricFamily(
            "chatkit_db_pool_connections",
            "Database connections of this process's pool, by state.",
            labels=["state"],
        )
        connections.add_metric(["in_use"], max(size - idle, 0))
        connections.add_metric(["idle"], idle)
        yield connections
        yield GaugeMetricFamily(
            "chatkit_db_pool_max_connections",
            "Most connections the pool opens (DB_POOL_MAX_SIZE).",
            value=stats.get("pool_max", 0),
        )
        yield GaugeMetricFamily(
            "chatkit_db_pool_requests_waiting",
            "Requests waiting for a database connection right now.",
            value=stats.get("requests_waiting", 0),
        )
        yield CounterMetricFamily(
            "chatkit_db_pool_request_errors",
            "Requests that got no database connection (DB_POOL_TIMEOUT passed, or pool closed).",
            value=stats.get("requests_errors", 0),
        )


class Metrics:
    """The app's metrics, in a registry of its own (several apps may share a process)."""

    def __init__(self, store: PostgresStore | None = None) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "chatkit_http_requests",
            "HTTP requests, by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.ttft = Histogram(
            "chatkit_time_to_first_token_seconds",
            "From a request's arrival to the first text of the model's answer.",
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.turn_duration = Histogram(
            "chatkit_turn_duration_seconds",
            "From a request's arrival to the end of its answer's stream (done, failed or cut).",
            buckets=TURN_BUCKETS,
            registry=registry,
        )
        self.model_errors = Counter(
            "chatkit_model_errors",
            "Model calls of answers that failed, by kind.",
            ["kind"],
            registry=registry,
        )
        tokens = Counter(
            "chatkit_model_tokens",
            "Model tokens used (answers and titles), by direction: input or output.",
            ["direction"],
            registry=registry,
        )
        self.input_tokens, self.output_tokens = tokens.labels("input"), tokens.labels("output")
        self._children: dict[tuple[str, str, int], Counter] = {}
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        if store is not None:
            registry.register(PoolCollector(store))

    def count_request(self, route: str, method: str, status: int) -> None:
        key = (route, method, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(route, method, str(status))
        child.inc()

    async def observe_turn(
        self, events: AsyncIterator[ThreadStreamEvent], context: RequestContext, meter: Meter
    ) -> AsyncIterator[ThreadStreamEvent]:
        """A turn's events, passed through: time to first text, duration, tokens, errors."""
        scope = context.request.scope if context.request is not None else {}
        started: float = scope.get(STARTED) or time.perf_counter()
        counted = len(meter.calls)
        waiting_for_text = True
        try:
            async for event in events:
                if (
                    waiting_for_text
                    and isinstance(event, ThreadItemUpdatedEvent)
                    and isinstance(event.update, AssistantMessageContentPartTextDelta)
                ):
                    waiting_for_text = False
                    self.ttft.observe(time.perf_counter() - started)
                yield event
        except CustomStreamError as exc:
            if exc.__cause__ is not None and (kind := error_kind(exc.__cause__)) is not None:
                self.model_errors.labels(kind).inc()
            raise
        finally:
            # Closed early: close the answer now, so it cancels the model call and counts usage.
            if (aclose := getattr(events, "aclose", None)) is not None:
                await aclose()
            self.turn_duration.observe(time.perf_counter() - started)
            calls = meter.calls[counted:]
            if calls:
                self.input_tokens.inc(sum(call.input_tokens for call in calls))
                self.output_tokens.inc(sum(call.output_tokens for call in calls))


class MetricsMiddleware:
    """Counts every HTTP request by route template, method and status (plain ASGI)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[STARTED] = time.perf_counter()
        status = 0

        async def send_and_count(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self.metrics.count_request(route_of(scope), method_of(scope), status)
            await send(message)

        try:
            await self.app(scope, receive, send_and_count)
        except Exception:
            if not status:  # no answer went out: the server answers 500
                self.metrics.count_request(route_of(scope), method_of(scope), 500)
            raise


def route_of(scope: Scope) -> str:
    """The matched route's template (`/threads/{id}`), or `unmatched`: never the raw path."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def method_of(scope: Scope) -> str:
    method: str = scope["method"]
    return method if method in METHODS else "other"


PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def is_local_request(request: Request) -> bool:
    """A loopback client and no proxy header (X-Forwarded-For can be forged, and a local
    proxy relays requests from anywhere)."""
    if any(name in request.headers for name in PROXY_HEADERS):
        return False
    return is_loopback(request.client.host if request.client else None)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_host(host: str) -> bool:
    """Whether binding to `host` (an address or a name) listens on loopback addresses only."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(is_loopback(str(entry[4][0])) for entry in found)


def listening_hosts(port: int) -> list[str]:
    """The addresses this process's listening TCP sockets on `port` are bound to (read from
    its open file descriptors: the truth whichever server, or parent process, bound them)."""
    folder = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    hosts = []
    for name in os.listdir(folder):
        try:
            fd = int(name)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))
        except (ValueError, OSError):
            continue
        with sock:
            try:
                listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                address = sock.getsockname()
            except OSError:
                continue
            inet = sock.family in (socket.AF_INET, socket.AF_INET6)
            if inet and listening and address[1] == port:
                hosts.append(str(address[0]))
    return hosts


def bound_to_loopback(request: Request) -> bool:
    """Whether the socket that accepted this request listens on loopback addresses only."""
    server = request.scope.get("server")
    if not server or not isinstance(server[1], int):
        return False
    hosts = listening_hosts(server[1])
    return bool(hosts) and all(is_loopback(host) for host in hosts)


def install_metrics(app: FastAPI, metrics: Metrics) -> None:
    """Add `/metrics` (serving `metrics`) and the request-counting middleware to `app`."""
    app.state.metrics = metrics

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response:
        token = request.app.state.settings.metrics_token
        if token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            expected = token.get_secret_value().encode()
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected):
                return error_response(
                    401,
                    "unauthorized",
                    "/metrics needs Authorization: Bearer <METRICS_TOKEN>",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        elif not (is_local_request(request) and bound_to_loopback(request)):
            return error_response(
                403,
                "forbidden",
                "without METRICS_TOKEN, /metrics answers only an app bound to a loopback "
                "address, and only clients on this machine; set METRICS_TOKEN",
            )
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(MetricsMiddleware, metrics=metrics)


def error_kind(exc: BaseException) -> str | None:
    """The `kind` label of a failed model call (`rate_limit`, `timeout`, ...); None: not one."""
    if isinstance(exc, MissingApiKeyError):
        return "no_key"
    for error_type, kind in ERROR_KINDS:
        if isinstance(exc, error_type):
            return kind
    if isinstance(exc, openai.APIStatusError):
        return "server_error" if exc.status_code >= 500 else "client_error"
    if isinstance(exc, openai.OpenAIError | AgentsException | OSError):
        return "other"
    return None


# In order: APITimeoutError is an APIConnectionError.
ERROR_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (openai.AuthenticationError, "auth"),
    (openai.PermissionDeniedError, "forbidden"),
    (openai.RateLimitError, "rate_limit"),
    (openai.NotFoundError, "not_found"),
    (openai.APITimeoutError, "timeout"),
    (openai.APIConnectionError, "connection"),
)
