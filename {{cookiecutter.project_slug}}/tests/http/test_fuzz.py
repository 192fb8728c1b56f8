"""Property tests: random and malformed ChatKit requests never break the service.

Hypothesis throws requests at `POST /chatkit` over real HTTP: every request type with params
built from the SDK's own request models (fuzzed values, missing and extra fields, ids that are
unknown or another user's), wrong types, huge strings, deep JSON and invalid UTF-8. Whatever
comes in, the answer is below 500, errors are JSON, streams are well-formed SSE, and after
each fuzzing run (in the same test, so any order or selection of tests checks it) the server
is healthy and the other user's data untouched. Message text of every kind (SQL, HTML,
control characters, emoji, right-to-left) is stored and returned verbatim; U+0000, which
PostgreSQL cannot store, is refused with a clear 400 and nothing is written, however deep in
the JSON it sits.

Beside /chatkit, hypothesis fuzzes file uploads (multipart bodies with random field and file
names, content types, sizes, NULs and broken boundaries, direct and two-phase) and the claims
of validly signed tokens (`sub`, `exp`, `iat`, `nbf`, `name`, `email` and extra claims of any
type): every answer is 2xx or 4xx, and the server stays healthy.
"""

from __future__ import annotations

import json
import socket
import time
import typing
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import jwt
import pytest
from chatkit.types import ChatKitReq
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from {{ cookiecutter.project_slug }}.dev.client import user_input
from tests.support.app import TEST_AUTH_SECRET, AppServer

JSON = dict[str, Any]

FUZZ = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


# --- plain HTTP helpers ---------------------------------------------------------------------


@dataclass
class User:
    """One user's HTTP session against the app."""

    http: httpx.Client
    url: str
    headers: dict[str, str]

    def post(self, body: bytes | JSON) -> httpx.Response:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {**self.headers, "content-type": "application/json"}
        return self.http.post(self.url + "/chatkit", content=content, headers=headers)

    def call(self, type_: str, params: JSON) -> Any:
        response = self.post({"type": type_, "params": params})
        assert response.status_code == 200, response.text
        if response.headers["content-type"].startswith("text/event-stream"):
            return sse_events(response.text)
        return response.json()

    def new_thread(self, text: str) -> str:
        events = self.call("threads.create", {"input": user_input(text)})
        return str(next(e["thread"]["id"] for e in events if e["type"] == "thread.created"))

    def items(self, thread_id: str) -> list[JSON]:
        page = self.call("items.list", {"thread_id": thread_id, "order": "asc", "limit": 100})
        return list(page["data"])


def sse_events(text: str) -> list[JSON]:
    """The events of a complete SSE body; fails unless every event is `data: <json object>`."""
    assert text.endswith("\n\n"), f"stream cut short: {text[-200:]!r}"
    events = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block[:200]
        event = json.loads(block[len("data: ") :])
        assert isinstance(event, dict) and isinstance(event.get("type"), str), block[:200]
        events.append(event)
    return events


def check_answer(response: httpx.Response) -> None:
    """The property: below 500; errors JSON-shaped; a redirect (a file in the bucket, or an
    id ending in an encoded `/`) says where; 200s complete JSON or well-formed SSE."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    content_type = response.headers.get("content-type", "")
    if response.status_code in (307, 308):
        assert response.headers["location"], response.headers
    elif response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
    elif content_type.startswith("text/event-stream"):
        assert sse_events(response.text), "an empty stream"
    else:
        assert content_type.startswith("application/json"), content_type
        response.json()


@dataclass
class World:
    """Two users: `me` (the fuzzer) and `other`, whose data must never change.

    `own_ids` are the fuzzer's threads and items; `doomed` are threads of its own that only
    threads.delete aims at (so the others survive the run); `foreign_ids` are the other
    user's, and unknown ones.
    """

    app: AppServer
    me: User
    other: User
    own_ids: list[str]
    doomed: list[str]
    foreign_ids: list[str]
    other_thread: str
    other_items: list[JSON]
    other_threads: JSON
    requests: st.SearchStrategy[JSON] = field(default_factory=st.nothing)


@pytest.fixture(scope="module")
def world(app_factory: Callable[..., AppServer]) -> Iterator[World]:
    # One user sends hundreds of messages a minute here: no rate limit (the others stay on).
    app = app_factory(rate_limit_messages_per_minute=0)
    with httpx.Client(timeout=60) as http:

        def login(name: str) -> User:
            token = app.token(f"{name}-{uuid.uuid4().hex}")
            return User(http, app.url, {"Authorization": f"Bearer {token}"})

        me, other = login("fuzzer"), login("victim")
        mine, theirs = me.new_thread("my thread"), other.new_thread("their secret thread")
        world = World(
            app=app,
            me=me,
            other=other,
            own_ids=[mine, *(item["id"] for item in me.items(mine))],
            doomed=[me.new_thread(f"doomed {n}") for n in range(3)],
            foreign_ids=[theirs, *(i["id"] for i in other.items(theirs)), "thr_missing", ""],
            other_thread=theirs,
            other_items=other.items(theirs),
            other_threads=other.call("threads.list", {"limit": 50}),
        )
        world.requests = chatkit_requests(world)
        yield world


def assert_healthy_and_untouched(world: World) -> None:
    """The server still answers, and the other user's data is exactly as it was."""
    assert world.me.http.get(world.app.url + "/health").status_code == 200
    assert world.other.items(world.other_thread) == world.other_items
    assert world.other.call("threads.list", {"limit": 50}) == world.other_threads


# --- strategies -------------------------------------------------------------------------------

REQUEST_MODELS = typing.get_args(typing.get_args(ChatKitReq)[0])
MISSING = object()
UNTYPED_ACTIONS: list[JSON] = [{}, {"payload": {}}, {"payload": {"timezone": "UTC"}}]
"""Actions without a `type` (the SDK's model leaves it an unfilled TypeVar)."""

tricky_text = st.text(
    alphabet=st.characters(codec=None, exclude_categories=()),  # surrogates and controls too
    max_size=40,
)
plain_text = st.text(max_size=40)
huge_text = st.integers(min_value=3, max_value=7).map(lambda n: "y" * 10**n)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | tricky_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4),
    max_leaves=12,
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` about five times in six, else `bad`: most requests get past validation."""
    return st.integers(0, 5).flatmap(lambda n: bad if n == 0 else good)


def id_values(world: World, own: list[str] | None = None) -> st.SearchStrategy[Any]:
    """Ids: this user's, the other user's, unknown ones, and now and then wrong types."""
    others = st.sampled_from(world.foreign_ids) | tricky_text | huge_text | json_values
    return mostly(st.sampled_from(own or world.own_ids), others)


def user_inputs(world: World) -> st.SearchStrategy[Any]:
    """The `input` of a user message: mostly plausible, sometimes slightly wrong or junk."""
    part = st.fixed_dictionaries(
        {
            "type": mostly(st.just("input_text"), st.just("input_tag") | json_values),
            "text": mostly(plain_text, tricky_text | huge_text | json_values),
        }
    )
    message = st.fixed_dictionaries(
        {
            "content": mostly(st.lists(part, min_size=1, max_size=3), json_values),
            "attachments": mostly(st.just([]), st.lists(id_values(world), max_size=2)),
            "inference_options": mostly(st.just({}), json_values),
        },
        optional={"quoted_text": tricky_text | json_values},
    )
    return mostly(message, json_values)


def field_values(type_: str, name: str, annotation: Any, world: World) -> st.SearchStrategy[Any]:
    """Values for one params field, from its name and type in the SDK's request model."""
    ids = id_values(world, world.doomed if type_ == "threads.delete" else None)
    by_name: dict[str, st.SearchStrategy[Any]] = {
        "input": user_inputs(world),
        "item_ids": mostly(st.lists(ids, max_size=3), json_values),
        "limit": mostly(st.integers(-5, 50), st.sampled_from([10**30, -(10**30)]) | json_values),
        "action": mostly(
            st.fixed_dictionaries({"type": tricky_text, "payload": json_values}),
            json_values | st.sampled_from(UNTYPED_ACTIONS),
        ),
        "result": json_values,
    }
    if name in by_name:
        return by_name[name]
    if name.endswith("_id") or name == "after":
        return ids
    literals = (
        typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()
    )
    if literals:
        return mostly(st.sampled_from(literals), json_values)
    if annotation is int:
        return mostly(st.integers(), json_values)
    return mostly(plain_text, tricky_text | huge_text | json_values)


def params_for(type_: str, model: Any, world: World) -> st.SearchStrategy[Any]:
    """Params for one request model: every field fuzzed, now and then one left out."""
    fields = typing.get_type_hints(model)
    values = {
        name: mostly(field_values(type_, name, annotation, world), st.just(MISSING))
        for name, annotation in fields.items()
    }
    params = st.fixed_dictionaries(values).map(
        lambda drawn: {key: value for key, value in drawn.items() if value is not MISSING}
    )
    extra = st.dictionaries(tricky_text, json_values, min_size=1, max_size=2)
    with_extra = st.builds(lambda p, x: {**x, **p}, params, extra)
    return mostly(params, with_extra | json_values)


def chatkit_requests(world: World) -> st.SearchStrategy[JSON]:
    """Every request type of the SDK's ChatKitReq, with fuzzed params (see `params_for`)."""
    choices = []
    for model in REQUEST_MODELS:
        hints = typing.get_type_hints(model)
        (type_,) = typing.get_args(hints["type"])
        body = st.fixed_dictionaries(
            {
                "type": mostly(st.just(type_), st.sampled_from([type_.upper(), type_ + "."])),
                "params": params_for(type_, hints["params"], world),
            }
        )
        choices.append(body)
    return st.one_of(choices)


def deep_json(depth: int, kind: str, leaf: bytes | None = None) -> bytes:
    """A request whose params nest `depth` levels deep (around `leaf`, if given)."""
    if kind == "list":
        inner = b"[" * depth + (leaf or b"") + b"]" * depth
    else:
        inner = b'{"a":' * depth + (leaf or b"1") + b"}" * depth
    return b'{"type": "threads.list", "params": {"after": ' + inner + b"}}"


ESCAPED_NUL = b'"\\u0000"'


raw_bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(deep_json, st.integers(1, 200_000), st.sampled_from(["list", "dict"])),
    st.builds(
        deep_json, st.integers(1, 200_000), st.sampled_from(["list", "dict"]), st.just(ESCAPED_NUL)
    ),
    st.builds(
        lambda junk, field: (
            b'{"type": "threads.create", "params": {"input": {"content": [{"type": '
            b'"input_text", "text": "' + junk + b'"}], "attachments": [], '
            b'"inference_options": {}}, "' + field + b'": 1}}'
        ),
        st.binary(min_size=1, max_size=40).filter(lambda b: not _is_utf8(b)),
        st.sampled_from([b"x", b"\xff\xfe", b"\xc0\x80"]),
    ),
    st.builds(lambda value: json.dumps(value).encode(), json_values),
)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- properties -------------------------------------------------------------------------------


def test_fuzzed_chatkit_requests(world: World) -> None:
    """Fuzzed requests of every type: no 5xx, well-formed answers; afterwards the server is
    healthy and the other user's data untouched."""

    @settings(FUZZ, max_examples=150)
    @given(data=st.data())
    def fuzz(data: st.DataObject) -> None:
        body = data.draw(world.requests, label="body")
        response = world.me.post(body)
        event(f"{body['type']} -> HTTP {response.status_code}")
        check_answer(response)

    fuzz()
    assert_healthy_and_untouched(world)


def test_malformed_bodies(world: World) -> None:
    """Junk bytes, deep JSON, invalid UTF-8: no 5xx; afterwards healthy and untouched."""

    @settings(FUZZ, max_examples=60)
    @given(body=raw_bodies)
    def fuzz(body: bytes) -> None:
        response = world.me.post(body)
        event(f"HTTP {response.status_code}")
        check_answer(response)

    fuzz()
    assert_healthy_and_untouched(world)


# --- message text is stored verbatim ----------------------------------------------------------

VERBATIM = {
    "sql": "'; DROP TABLE threads; -- \" OR 1=1; SELECT pg_sleep(10); $$ $tag$ \\' ",
    "html": "<script>alert('x')</script><img src=x onerror=alert(1)> &amp; &lt;b&gt;",
    "controls": "bell\x07 esc\x1b[31m del\x7f tab\t cr\r lf\n vt\x0b ff\x0c \x01\x02\x1f",
    "unicode lines": "line\u2028sep\u2029para \ufeff bom \u200b zwsp \u00a0 nbsp",
    "emoji": "\U0001f469\u200d\U0001f469\u200d\U0001f467 \U0001f1fa\U0001f1f3 \U0001f44d\U0001f3fd"
    " \U0001d518\U0001d52b \U0010fffd",
    "rtl": "שלום עולם — مرحبا بالعالم \u202eevil\u202c \u200f",
    "escapes": 'backslash \\ \\n \\u0000 literal, quote " and {"json": [1, "two"]}',
    "long": "long " * 4_000,  # MAX_MESSAGE_CHARS (20,000)
}


@pytest.mark.parametrize("text", VERBATIM.values(), ids=VERBATIM.keys())
def test_message_text_is_stored_verbatim(world: World, text: str) -> None:
    thread_id = world.me.new_thread(text)
    (stored,) = [i for i in world.me.items(thread_id) if i["type"] == "user_message"]
    assert stored["content"] == [{"type": "input_text", "text": text}]
    world.me.call("threads.update", {"thread_id": thread_id, "title": text[:200]})
    thread = world.me.call("threads.get_by_id", {"thread_id": thread_id})
    assert thread["title"] == text[:200]


def test_any_text_round_trips(world: World) -> None:
    """Any text (but U+0000) comes back from the store as it was sent."""
    thread_id = world.own_ids[0]

    @settings(FUZZ, max_examples=25)
    @given(
        text=st.text(
            alphabet=st.characters(codec="utf-8", exclude_characters="\x00"),
            min_size=1,
            max_size=80,
        )
    )
    def fuzz(text: str) -> None:
        params = {"thread_id": thread_id, "input": user_input(text)}
        world.me.call("threads.add_user_message", params)
        page = world.me.call("items.list", {"thread_id": thread_id, "order": "desc", "limit": 5})
        newest_user = next(i for i in page["data"] if i["type"] == "user_message")
        assert newest_user["content"][0]["text"] == text

    fuzz()
    assert_healthy_and_untouched(world)


NUL_REQUESTS: dict[str, Callable[[str], JSON]] = {
    "message": lambda _: {"type": "threads.create", "params": {"input": user_input("a\x00b")}},
    "title": lambda thread: {
        "type": "threads.update",
        "params": {"thread_id": thread, "title": "nul\x00title"},
    },
    "thread id": lambda _: {"type": "threads.get_by_id", "params": {"thread_id": "thr_\x00"}},
    "cursor": lambda _: {"type": "threads.list", "params": {"after": "\x00"}},
}


@pytest.mark.parametrize("make", NUL_REQUESTS.values(), ids=NUL_REQUESTS.keys())
def test_nul_characters_are_a_clear_400_and_nothing_is_written(
    world: World, make: Callable[[str], JSON]
) -> None:
    """PostgreSQL cannot store U+0000: the request is refused up front, never half-done."""
    thread_id = world.me.new_thread("before the NUL")
    threads_before = world.me.call("threads.list", {"limit": 100})
    response = world.me.post(make(thread_id))
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_request"
    assert "NUL" in response.json()["error"]["message"]
    assert world.me.call("threads.list", {"limit": 100}) == threads_before


@pytest.mark.parametrize("limit", [10**30, 2**63, 2**31, 0, -1, -(10**30)])
@pytest.mark.parametrize("type_", ["threads.list", "items.list"])
def test_extreme_page_limits_give_consistent_pages(world: World, type_: str, limit: int) -> None:
    """Any limit is answered (no 500 from PostgreSQL's bigint LIMIT) with a page a client can
    follow: `has_more` always comes with an `after` cursor, so paging never loops forever."""
    params: JSON = {"limit": limit}
    if type_ == "items.list":
        params["thread_id"] = world.own_ids[0]
    response = world.me.post({"type": type_, "params": params})
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        page = response.json()
        assert not page["has_more"] or page["after"], page


@pytest.mark.parametrize("depth", [500, 2_000, 100_000])
@pytest.mark.parametrize("kind", ["list", "dict"])
def test_deep_nesting_around_a_nul_is_a_400(world: World, kind: str, depth: int) -> None:
    """An escaped NUL at the bottom of deeply nested JSON: a 400, not a RecursionError."""
    response = world.me.post(deep_json(depth, kind, ESCAPED_NUL))
    assert response.status_code == 400, response.text[:500]
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("action", UNTYPED_ACTIONS, ids=["empty", "payload", "clock payload"])
@pytest.mark.parametrize("type_", ["threads.custom_action", "threads.sync_custom_action"])
@pytest.mark.parametrize("thread", ["own", "made up"])
def test_an_action_without_type_is_a_400_naming_the_field(
    world: World, type_: str, action: JSON, thread: str
) -> None:
    thread_id = world.own_ids[0] if thread == "own" else "thr_made_up"
    response = world.me.post({"type": type_, "params": {"thread_id": thread_id, "action": action}})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [d["loc"] for d in error["details"]] == ["params.action.type"]


METADATA_VARIANTS: dict[str, tuple[Any, int]] = {
    "missing": (..., 200),
    "object": ({"page": "/help", "n": 1}, 200),
    "string": ("not an object", 400),
    "list": ([1, 2], 400),
    "null": (None, 400),
    "NUL": ({"k": "a\x00b"}, 400),
    "huge": ({"k": "x" * 20_000}, 413),
}
"""The request's own `metadata` (RequestContext.metadata): every shape, before any work."""


@pytest.mark.parametrize("name", METADATA_VARIANTS)
def test_request_metadata_shapes(world: World, name: str) -> None:
    value, status = METADATA_VARIANTS[name]
    body: JSON = {"type": "threads.list", "params": {"limit": 1}}
    if value is not ...:
        body["metadata"] = value
    response = world.me.post(body)
    assert response.status_code == status, response.text[:300]
    if status == 413:
        assert response.json()["error"]["code"] == "metadata_too_large"


ID_ROUTES = [
    ("GET", "/attachments/{id}/content"),
    ("POST", "/attachments/{id}/upload"),
    ("GET", "/images/{id}"),
    ("GET", "/entities/preview?type=thread&id={id}"),
    ("GET", "/entities?q={id}"),
]
"""Every route with an id (or search text) in its path or query."""


def id_route(method: str, template: str, raw_id: str) -> tuple[str, str]:
    """The route with `raw_id` percent-encoded (lone surrogates as their bytes)."""
    return method, template.format(id=quote(raw_id.encode("utf-8", "surrogatepass"), safe=""))


@pytest.mark.parametrize("raw_id", ["\x00", "a\x00b", "att_\x00", "img_\x00"])
@pytest.mark.parametrize(("method", "template"), ID_ROUTES)
def test_a_nul_in_an_id_is_a_400_on_every_route(
    world: World, method: str, template: str, raw_id: str
) -> None:
    _, path = id_route(method, template, raw_id)
    response = world.me.http.request(method, world.app.url + path, headers=world.me.headers)
    assert response.status_code == 400, response.text
    assert "NUL" in response.json()["error"]["message"]


def test_fuzzed_ids_in_paths(world: World) -> None:
    """Any text as the id of every route that takes one: no 5xx, JSON errors."""

    @settings(FUZZ, max_examples=80)
    @given(route=st.sampled_from(ID_ROUTES), raw_id=tricky_text | plain_text)
    def fuzz(route: tuple[str, str], raw_id: str) -> None:
        method, path = id_route(*route, raw_id)
        response = world.me.http.request(method, world.app.url + path, headers=world.me.headers)
        event(f"{route[1]} -> HTTP {response.status_code}")
        check_answer(response)

    fuzz()
    assert_healthy_and_untouched(world)


def http_exchange(sock: socket.socket, request: bytes) -> tuple[int, dict[str, str]]:
    """Send one HTTP/1.1 request on `sock` and read its whole response: status, headers."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection: {data[:300]!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection mid-body"
        body += chunk
    return int(status_line.split()[1]), headers


def test_a_4xx_keeps_the_connection_alive(world: World) -> None:
    """Each refusal leaves the connection open: the same one then serves `GET /health`."""
    host, port = urlsplit(world.app.url).hostname or "127.0.0.1", urlsplit(world.app.url).port
    auth = world.me.headers["Authorization"]

    def chatkit(body: bytes) -> bytes:
        return (
            f"POST /chatkit HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    def get(path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n\r\n".encode()

    untyped = {
        "type": "threads.custom_action",
        "params": {"thread_id": world.own_ids[0], "action": {}},
    }
    refusals = [
        chatkit(json.dumps(untyped).encode()),
        chatkit(b"not json"),
        chatkit(
            json.dumps({"type": "threads.get_by_id", "params": {"thread_id": "thr_x"}}).encode()
        ),
        get("/attachments/%00/content"),
        get("/images/a%00b"),
        get("/attachments/att_missing/content"),
        chatkit(json.dumps({"type": "threads.list", "params": {}, "metadata": "x"}).encode()),
        chatkit(
            json.dumps(
                {"type": "threads.list", "params": {}, "metadata": {"k": "x" * 20_000}}
            ).encode()
        ),
    ]
    with socket.create_connection((host, port), timeout=30) as sock:
        for refusal in refusals:
            status, headers = http_exchange(sock, refusal)
            assert 400 <= status < 500, (status, refusal[:80])
            assert headers.get("connection", "").lower() != "close", refusal[:80]
            health, _ = http_exchange(sock, get("/health"))
            assert health == 200


# --- uploads ----------------------------------------------------------------------------------

REAL_TYPES = ["image/png", "image/jpeg", "text/plain", "application/pdf", "image/svg+xml"]
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=60
)
boundaries = st.text(
    alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=70
)
file_contents = st.binary(max_size=2_000) | st.builds(
    lambda byte, size: byte * size, st.binary(min_size=1, max_size=1), st.integers(0, 300_000)
)


def raw(text: str) -> bytes:
    """Text as bytes, lone surrogates and all (as a hostile client would send them)."""
    return text.encode("utf-8", "surrogatepass")


@st.composite
def multipart_bodies(draw: st.DrawFn) -> tuple[str, bytes, bytes | None]:
    """(Content-Type header, body, the file's bytes when the body is a well-formed upload)."""
    boundary = draw(boundaries)
    field = draw(mostly(st.just("file"), tricky_text))
    filename = draw(mostly(plain_text, tricky_text | huge_text | st.none()))
    part_type = draw(mostly(st.sampled_from(REAL_TYPES), tricky_text | st.none()))
    content = draw(file_contents)
    disposition = b'form-data; name="' + raw(field) + b'"'
    if filename is not None:
        disposition += b'; filename="' + raw(filename) + b'"'
    part = b"Content-Disposition: " + disposition + b"\r\n"
    if part_type is not None:
        part += b"Content-Type: " + raw(part_type) + b"\r\n"
    body = b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" + content + b"\r\n"
    for _ in range(draw(st.integers(0, 5).map(lambda n: max(n - 3, 0)))):  # now and then
        body += b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="x"\r\n\r\n'
        body += draw(st.binary(max_size=50)) + b"\r\n"
    body += b"--" + boundary.encode() + b"--\r\n"
    header_boundary = draw(mostly(st.just(boundary), boundaries | st.just("")))
    content_type = draw(
        mostly(st.just(f"multipart/form-data; boundary={header_boundary}"), header_text)
    )
    cut = draw(mostly(st.just(len(body)), st.integers(0, len(body))))
    well_formed = (
        field == "file"
        and header_boundary == boundary
        and content_type == f"multipart/form-data; boundary={boundary}"
        and cut == len(body)
        and boundary.encode() not in content
    )
    return content_type, body[:cut], content if well_formed else None


def check_upload(world: World, response: httpx.Response, content: bytes | None) -> None:
    """Below 500 and JSON-shaped; a stored upload reads back as exactly the bytes sent."""
    check_answer(response)
    if response.status_code != 200 or content is None:
        return
    attachment_id = response.json()["id"]
    stored = world.me.http.get(
        f"{world.app.url}/attachments/{attachment_id}/content", headers=world.me.headers
    )
    assert stored.status_code == 200, stored.text[:300]
    assert stored.content == content


def test_fuzzed_uploads(world: World) -> None:
    """Random multipart bodies, posted directly (`POST /attachments`) and to a two-phase
    upload link: no 5xx, stored files read back as sent; afterwards healthy and untouched."""

    @settings(FUZZ, max_examples=120)
    @given(
        upload=multipart_bodies(),
        two_phase=st.booleans(),
        name=mostly(plain_text.filter(bool), tricky_text),
        mime_type=mostly(st.sampled_from(REAL_TYPES), tricky_text),
    )
    def fuzz(
        upload: tuple[str, bytes, bytes | None], two_phase: bool, name: str, mime_type: str
    ) -> None:
        content_type, body, content = upload
        url, headers = world.app.url + "/attachments", {**world.me.headers}
        if two_phase:
            params = {"name": name, "size": len(body), "mime_type": mime_type}
            created = world.me.post({"type": "attachments.create", "params": params})
            event(f"attachments.create -> HTTP {created.status_code}")
            check_answer(created)
            if created.status_code != 200:
                return
            url, headers = created.json()["upload_descriptor"]["url"], {}
        headers["content-type"] = content_type
        response = world.me.http.post(url, content=body, headers=headers)
        event(f"{'two-phase' if two_phase else 'direct'} upload -> HTTP {response.status_code}")
        check_upload(world, response, content)

    fuzz()
    assert_healthy_and_untouched(world)


# --- token claims -----------------------------------------------------------------------------

long_text = st.integers(min_value=250, max_value=5_000).map(lambda n: "z" * n)
nasty_ids = st.sampled_from(["\x00", "u\x00", "\ud800", "u\t", "\n", "\x7f", "\x85", " ", ""])
claim_values = json_values | long_text | st.floats() | st.integers(-(2**70), 2**70)


@st.composite
def token_claims(draw: st.DrawFn, now: int, user_id: str) -> dict[str, Any]:
    """Claims of a validly signed token: mostly plausible, every field sometimes anything."""
    past = st.integers(now - 10**6, now - 1)
    any_time = st.integers(-(2**40), 2**40) | claim_values
    claims = draw(
        st.fixed_dictionaries(
            {
                "sub": mostly(st.just(user_id), nasty_ids | tricky_text | claim_values),
                "exp": mostly(st.integers(now + 60, now + 3600), any_time),
            },
            optional={
                "iat": mostly(past, any_time),
                "nbf": mostly(past, any_time),
                "name": tricky_text | claim_values,
                "email": tricky_text | claim_values,
            },
        )
    )
    claims.update(draw(st.dictionaries(tricky_text, claim_values, max_size=3)))
    claims.pop(draw(mostly(st.just(""), st.sampled_from(["sub", "exp"]))), None)
    return claims


def test_fuzzed_token_claims(world: World) -> None:
    """Tokens signed with the right key but holding any claims: 200 or 401, never 5xx; a
    token that is let in names a user who can list their threads."""

    now = int(time.time())

    @settings(FUZZ, max_examples=150)
    @given(claims=token_claims(now, f"claims-{uuid.uuid4().hex}"))
    @example(claims={"sub": "u\x00", "exp": now + 60})  # PostgreSQL cannot store a NUL
    @example(claims={"sub": "u\ud800", "exp": now + 60})  # nor UTF-8 encode a lone surrogate
    @example(claims={"sub": "u1", "exp": now + 60, "iat": float("inf")})
    def fuzz(claims: dict[str, Any]) -> None:
        token = jwt.encode(claims, TEST_AUTH_SECRET, algorithm="HS256")
        response = world.me.http.post(
            world.app.url + "/chatkit",
            json={"type": "threads.list", "params": {}},
            headers={"Authorization": f"Bearer {token}"},
        )
        event(f"HTTP {response.status_code}")
        check_answer(response)
        assert response.status_code in (200, 401), response.text[:300]
        if response.status_code == 401:
            assert response.json()["error"]["code"] == "unauthorized"

    fuzz()
    assert_healthy_and_untouched(world)
