"""Dictation (`input.transcribe`) over real HTTP: the upload, the limits and every failure.

The fake OpenAI server records each upload it transcribes (model, file name, content type,
size) and by default answers `heard <size> bytes of <content type>`, so a test sees both
what reached the provider and that its answer came back unchanged.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient, user_input
from tests.support.app import AppServer
from tests.support.fake_openai import FakeModel, Fault

WEBM = "audio/webm;codecs=opus"
SMALL_LIMITS = {"max_request_bytes": 2048, "max_audio_bytes": 4096}
"""An app whose audio limit's base64 (5,464 bytes) is over its request limit."""
CLOSED_PORT_URL = "http://127.0.0.1:1/v1"
"""A model server nobody listens on (connection refused)."""


def audio(size: int) -> str:
    """`size` bytes of (fake) recording, base64-encoded."""
    return base64.b64encode(bytes(i % 251 for i in range(size))).decode()


def transcribe_body(audio_base64: str, mime_type: str = WEBM) -> dict[str, Any]:
    return {
        "type": "input.transcribe",
        "params": {"audio_base64": audio_base64, "mime_type": mime_type},
    }


async def transcribe(
    client: ChatKitClient, audio_base64: str, mime_type: str = WEBM
) -> httpx.Response:
    """POST an `input.transcribe` request; the raw response (any status)."""
    body = transcribe_body(audio_base64, mime_type)
    return await client.http.post(client.url, json=body, headers=client.headers)


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON error of a failed response (it must be JSON)."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["message"] and "Traceback" not in response.text
    return error


async def assert_healthy(client: ChatKitClient, server: AppServer) -> None:
    assert (await client.http.get(server.url + "/health")).status_code == 200


async def test_transcribes_with_the_configured_model(
    app_server: AppServer, client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """The recording reaches the provider whole, as a named file of its type, with
    TRANSCRIBE_MODEL (default gpt-4o-mini-transcribe), and its text comes back as JSON."""
    client = client_for()
    response = await transcribe(client, audio(3000))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"text": "heard 3000 bytes of audio/webm"}
    assert app_server.settings.transcribe_model == "gpt-4o-mini-transcribe"
    (upload,) = fake_model.transcriptions
    assert upload["model"] == "gpt-4o-mini-transcribe"
    assert upload["size"] == 3000
    assert upload["filename"] == "speech.webm"
    assert upload["content_type"] == "audio/webm"


async def test_transcript_is_returned_verbatim(
    client_for: Callable[..., ChatKitClient], fake_model: FakeModel
) -> None:
    """Whatever the provider heard (non-ASCII, quotes, newlines) is the answer's text."""
    fake_model.transcript = 'Grüß dich, "Welt" — 你好\nzweite Zeile'
    response = await transcribe(client_for(), audio(1500))
    assert response.status_code == 200, response.text
    assert response.json() == {"text": fake_model.transcript}


async def test_transcribe_model_can_be_overridden(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    """TRANSCRIBE_MODEL picks the model sent to the provider."""
    client = client_for(server=app_factory(transcribe_model="whisper-1"))
    response = await transcribe(client, audio(1200))
    assert response.status_code == 200, response.text
    assert [upload["model"] for upload in fake_model.transcriptions] == ["whisper-1"]


@pytest.mark.parametrize(
    "mime_type, filename, content_type",
    [
        ("audio/ogg;codecs=opus", "speech.ogg", "audio/ogg"),
        ("audio/mp4", "speech.mp4", "audio/mp4"),
        ("audio/mpeg", "speech.mp3", "audio/mpeg"),
        ("audio/wav", "speech.wav", "audio/wav"),
        ("Audio/WebM; codecs=opus", "speech.webm", "audio/webm"),
    ],
)
async def test_audio_types_keep_their_extension(
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    mime_type: str,
    filename: str,
    content_type: str,
) -> None:
    """The provider recognises audio by file extension: each type is sent with its own."""
    response = await transcribe(client_for(), audio(1100), mime_type)
    assert response.status_code == 200, response.text
    (upload,) = fake_model.transcriptions
    assert (upload["filename"], upload["content_type"]) == (filename, content_type)
    assert response.json() == {"text": f"heard 1100 bytes of {content_type}"}


@pytest.mark.parametrize(
    "mime_type",
    ["video/mp4", "text/plain", "application/octet-stream", "", "audio/" + "x" * 2048],
    ids=["video", "text", "octet-stream", "empty", "2KB-garbage"],
)
async def test_unsupported_audio_type_is_400(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    mime_type: str,
) -> None:
    """A type the provider cannot read is refused before any upload (and not echoed whole)."""
    client = client_for()
    response = await transcribe(client, audio(1024), mime_type)
    assert response.status_code == 400, response.text
    assert error_of(response)["code"] == "unsupported_audio"
    assert len(response.content) < 1024
    assert fake_model.transcriptions == []
    await assert_healthy(client, app_server)


@pytest.mark.parametrize("size", [4097, 5000, 200_000], ids=["limit+1", "5000", "200KB"])
async def test_audio_over_max_audio_bytes_is_413(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    size: int,
) -> None:
    """Audio over MAX_AUDIO_BYTES is a 413 JSON error, whether the body is read whole
    (just over) or refused while it is read (far over); nothing is uploaded."""
    server = app_factory(**SMALL_LIMITS)
    client = client_for(server=server)
    response = await transcribe(client, audio(size))
    assert response.status_code == 413, response.text
    assert error_of(response)["code"] == "too_large"
    assert fake_model.transcriptions == []
    await assert_healthy(client, server)


async def test_audio_of_exactly_max_audio_bytes_passes_the_request_limit(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    """MAX_AUDIO_BYTES of audio is accepted although its base64 is over MAX_REQUEST_BYTES."""
    server = app_factory(**SMALL_LIMITS)
    encoded = audio(SMALL_LIMITS["max_audio_bytes"])
    assert len(encoded) > SMALL_LIMITS["max_request_bytes"]
    response = await transcribe(client_for(server=server), encoded)
    assert response.status_code == 200, response.text
    assert response.json() == {"text": "heard 4096 bytes of audio/webm"}
    assert [upload["size"] for upload in fake_model.transcriptions] == [4096]


async def test_other_requests_stay_within_max_request_bytes(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    """The room made for audio is for transcriptions only: a message of the same size is a
    413 and creates nothing."""
    server = app_factory(**SMALL_LIMITS)
    client = client_for(server=server)
    transcription_size = len(json.dumps(transcribe_body(audio(4096))))
    text = "x" * transcription_size
    body = {"type": "threads.create", "params": {"input": user_input(text)}}
    response = await client.http.post(client.url, json=body, headers=client.headers)
    assert response.status_code == 413, response.text
    assert error_of(response)["code"] == "too_large"
    assert (await client.request("threads.list", {}))["data"] == []
    assert fake_model.requests == []


@pytest.mark.parametrize(
    "audio_base64",
    ["not base64 at all!", "QUJDRA", "QUJD\nRA==", "QUJD" + "é" * 8],
    ids=["punctuation", "bad-padding", "newline", "non-ascii"],
)
async def test_invalid_base64_is_400(
    client_for: Callable[..., ChatKitClient], fake_model: FakeModel, audio_base64: str
) -> None:
    """Audio that is not valid base64 is a 400 JSON error; nothing is uploaded."""
    response = await transcribe(client_for(), audio_base64)
    assert response.status_code == 400, response.text
    assert error_of(response)["code"] == "invalid_request"
    assert fake_model.transcriptions == []


PROVIDER_FAILURES: list[tuple[str, Fault, int, str]] = [
    ("500", Fault(status=500), 502, "answered with an error (500)"),
    ("503", Fault(status=503), 502, "answered with an error (503)"),
    ("401", Fault(status=401), 502, "answered with an error (401)"),
    ("429", Fault(status=429, retry_after="7"), 429, "busy"),
    ("400", Fault(status=400), 400, "could not read the audio (400)"),
    ("413", Fault(status=413), 400, "could not read the audio (413)"),
]


@pytest.mark.parametrize(
    "name, fault, status, message", PROVIDER_FAILURES, ids=[f[0] for f in PROVIDER_FAILURES]
)
async def test_provider_failure_is_a_readable_json_error(
    app_server: AppServer,
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    name: str,
    fault: Fault,
    status: int,
    message: str,
) -> None:
    """A provider error is a JSON `transcription_failed` with a fitting status (the audio's
    fault 400, busy 429 with its Retry-After, anything else 502), never a 500."""
    client = client_for()
    fake_model.faults.append(fault)
    response = await transcribe(client, audio(2000))
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == "transcription_failed"
    assert message in error["message"]
    assert response.headers.get("retry-after") == fault.retry_after
    assert len(fake_model.transcriptions) == 1  # tried once (no retries in tests)
    await assert_healthy(client, app_server)

    fake_model.faults.clear()  # the next recording goes through again
    assert (await transcribe(client, audio(10))).status_code == 200


@pytest.mark.parametrize("key", ["", None], ids=["empty", "unset"])
async def test_no_api_key_is_503(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
    key: str | None,
) -> None:
    """Without OPENAI_API_KEY (and OPENAI_BASE_URL: OpenAI's API) the app runs and dictation
    says why it cannot work."""
    server = app_factory(openai_api_key=key, openai_base_url=None)
    client = client_for(server=server)
    response = await transcribe(client, audio(1000))
    assert response.status_code == 503, response.text
    error = error_of(response)
    assert error["code"] == "transcription_failed"
    assert "no OpenAI API key" in error["message"]
    assert fake_model.transcriptions == []
    await assert_healthy(client, server)


async def test_hung_provider_is_504_after_openai_timeout(
    app_factory: Callable[..., AppServer],
    client_for: Callable[..., ChatKitClient],
    fake_model: FakeModel,
) -> None:
    """A provider that never answers is a 504 once OPENAI_TIMEOUT has passed."""
    server = app_factory(openai_timeout=0.5)
    client = client_for(server=server)
    fake_model.faults.append(Fault(hang=True))
    response = await transcribe(client, audio(1000))
    assert response.status_code == 504, response.text
    error = error_of(response)
    assert error["code"] == "transcription_failed"
    assert "did not answer in time" in error["message"]
    await assert_healthy(client, server)


async def test_unreachable_provider_is_502(
    app_factory: Callable[..., AppServer], client_for: Callable[..., ChatKitClient]
) -> None:
    """A provider that refuses connections is a 502 JSON error."""
    server = app_factory(openai_base_url=CLOSED_PORT_URL)
    client = client_for(server=server)
    response = await transcribe(client, audio(1000))
    assert response.status_code == 502, response.text
    error = error_of(response)
    assert error["code"] == "transcription_failed"
    assert "Could not reach" in error["message"]
    await assert_healthy(client, server)


async def test_transcribe_needs_authentication(
    app_server: AppServer, fake_model: FakeModel
) -> None:
    """Without a valid token nothing is transcribed (401)."""
    async with httpx.AsyncClient() as http:
        response = await http.post(app_server.url + "/chatkit", json=transcribe_body(audio(1000)))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert fake_model.transcriptions == []
