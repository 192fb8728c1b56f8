"""Dictation: `input.transcribe` sends the recording to OpenAI's transcription endpoint
(TRANSCRIBE_MODEL); bad audio is refused before it leaves (400/413), the endpoint checks
RATE_LIMIT_TRANSCRIPTIONS_PER_MINUTE first, and each transcription is metered."""

from __future__ import annotations

import base64
import binascii
import logging

import openai
from chatkit.types import AudioInput, InputTranscribeParams, TranscriptionResult
from openai.types.audio.transcription import UsageTokens

from ..errors import AppError, MissingApiKeyError
from ..ops.usage import TranscriptionCall
from .model import ModelGateway

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = {
    "audio/webm": "webm",
    "audio/ogg": "ogg",
    "audio/mp4": "mp4",
    "audio/m4a": "m4a",
    "audio/x-m4a": "m4a",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/flac": "flac",
}
UNREADABLE_AUDIO = frozenset({400, 413, 415, 422})  # the audio's fault: a 400, not a 502


class DictationError(AppError):
    """Dictation failed; `status` says whose fault it is."""

    code = "transcription_failed"


def decoded_size(audio_base64: str) -> int:
    """How many bytes `audio_base64` decodes to (without decoding it)."""
    length = len(audio_base64.rstrip())
    return length * 3 // 4 - audio_base64.rstrip()[-2:].count("=")


def check_audio(params: InputTranscribeParams, max_bytes: int) -> None:
    """Refuse audio this server will not send on (before anything is decoded)."""
    media_type = params.mime_type.split(";", 1)[0].strip().lower()
    if media_type not in AUDIO_EXTENSIONS:
        allowed = ", ".join(sorted(AUDIO_EXTENSIONS))
        raise DictationError(
            f"unsupported audio type {media_type[:60]!r}; allowed: {allowed}",
            code="unsupported_audio",
        )
    if decoded_size(params.audio_base64) > max_bytes:
        raise DictationError(f"audio over {max_bytes} bytes", status=413, code="too_large")
    try:
        base64.b64decode(params.audio_base64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DictationError("audio_base64 is not valid base64", code="invalid_request") from exc


async def transcribe(
    gateway: ModelGateway, audio: AudioInput
) -> tuple[TranscriptionResult, TranscriptionCall]:
    """The text spoken in `audio` and what it cost, or DictationError with a fitting status."""
    model = gateway.settings.transcribe_model
    media_type = audio.media_type.strip().lower()
    filename = f"speech.{AUDIO_EXTENSIONS.get(media_type, 'webm')}"
    try:
        result = await gateway.client.audio.transcriptions.create(
            model=model, file=(filename, audio.data, media_type)
        )
    except MissingApiKeyError as exc:
        raise DictationError(
            "The server has no OpenAI API key (set OPENAI_API_KEY).", status=503
        ) from exc
    except openai.RateLimitError as exc:
        wait = exc.response.headers.get("retry-after")
        raise DictationError(
            "The transcription service is busy; try again in a moment.",
            status=429,
            headers={"Retry-After": wait} if wait else None,
        ) from exc
    except openai.APITimeoutError as exc:
        raise DictationError(
            "The transcription service did not answer in time.", status=504
        ) from exc
    except openai.APIConnectionError as exc:
        raise DictationError("Could not reach the transcription service.", status=502) from exc
    except openai.APIStatusError as exc:
        logger.warning("transcription failed: provider answered %s", exc.status_code)
        if exc.status_code in UNREADABLE_AUDIO:
            raise DictationError(
                f"The transcription service could not read the audio ({exc.status_code})."
            ) from exc
        raise DictationError(
            f"The transcription service answered with an error ({exc.status_code}).", status=502
        ) from exc
    usage = getattr(result, "usage", None)  # tokens for the gpt-4o models, none for whisper-1
    tokens = (usage.input_tokens, usage.output_tokens) if isinstance(usage, UsageTokens) else (0, 0)
    return TranscriptionResult(text=result.text), TranscriptionCall(model, len(audio.data), *tokens)
