"""All configuration in one place, read from the environment and `.env`."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent


def find_project_root() -> Path:
    """The project folder: where pyproject.toml sits for a source checkout, else the cwd."""
    candidate = PACKAGE_DIR.parents[1]
    if (candidate / "pyproject.toml").is_file():
        return candidate
    return Path.cwd()


PROJECT_ROOT = find_project_root()

DEFAULT_MODEL = {{ cookiecutter.model | tojson }}
EMBEDDED = "embedded"
PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "secret", "your-secret", "please-change-me", "auth-secret"}
)
MIN_SECRET_LENGTH = 32
MIN_SECRET_DISTINCT = 10
PLACEHOLDER_WORDS = (
    "changeme",
    "replaceme",
    "yoursecret",
    "mysecret",
    "secretkey",
    "placeholder",
    "password",
    "example",
)
"""Words that give a hand-made secret away (compared without case and punctuation)."""
KEYGEN_COMMAND = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'


def repeats_itself(text: str) -> bool:
    """Whether `text` is a short unit repeated (`abcabcab`), or mostly made of repeats: more
    than a quarter of its 3-character windows occur earlier too (`change-me-change-me-x7`)."""
    length = len(text)
    for period in range(1, length // 2 + 1):
        if text.startswith(text[period:]):
            return True
    windows = [text[i : i + 3] for i in range(length - 2)]
    return len(set(windows)) < 0.75 * len(windows)


def secret_weakness(secret: str) -> str | None:
    """Why `secret` is too weak to sign tokens with, or None when it looks random.

    A random secret of 32+ characters passes every check (`secrets.token_urlsafe(48)`, what
    the project generator writes, and `secrets.token_hex(32)` always do); a hand-made one
    usually fails one: too short, a placeholder word, too few different characters, or a
    repeated pattern.
    """
    if secret.strip().lower() in PLACEHOLDER_SECRETS:
        return "this one is a placeholder"
    if len(secret) < MIN_SECRET_LENGTH:
        return f"this one has {len(secret)}"
    letters = re.sub(r"[^a-z0-9]", "", secret.lower())
    for word in PLACEHOLDER_WORDS:
        if word in letters:
            return f"this one contains the placeholder word {word!r}"
    distinct = len(set(secret))
    if distinct < MIN_SECRET_DISTINCT:
        return f"this one uses only {distinct} different characters"
    if repeats_itself(secret):
        return "this one repeats a pattern"
    return None


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
HEADER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,4}")
"""A BCP 47 language tag, simplified: a language, then up to four subtags (`pt-BR`)."""

EMBEDDED_DATA_DIR = PROJECT_ROOT / ".postgres"
"""Where DATABASE_URL=embedded keeps its development PostgreSQL."""


class Settings(BaseSettings):
    """Runtime settings. Every field maps to the upper-case environment variable."""

    model_config = SettingsConfigDict(
        env_file=(PROJECT_ROOT / ".env", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    database_url: str = EMBEDDED
    """`postgresql://...`, or `embedded` for a development server kept in the project."""
    embedded_data_dir: Path = EMBEDDED_DATA_DIR
    db_pool_min_size: int = Field(default=1, ge=0)
    db_pool_max_size: int = Field(default=10, ge=1)
    db_pool_timeout: float = Field(default=5.0, gt=0)
    """Seconds a request waits for a database connection before it gets a 503."""

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = DEFAULT_MODEL
    openai_api: Literal["responses", "chat_completions"] = "responses"
    openai_timeout: float = Field(default=60.0, gt=0)
    openai_max_retries: int = Field(default=2, ge=0, le=10)
    agents_tracing: bool = False
    """Send Agents SDK traces to OpenAI (off by default: traces hold conversation text)."""
    history_items: int = Field(default=20, ge=1, le=1000)
    """How many of the newest thread items the model sees."""
    generate_titles: bool = True
    transcribe_model: str = "gpt-4o-mini-transcribe"
    """Model for dictation (`input.transcribe`), at the same OPENAI_BASE_URL."""
    instructions: str = "You are a helpful assistant. Answer clearly and concisely."
    models: Annotated[list[str], NoDecode] = []
    """The models the composer's picker may choose (`inference_options.model`); empty:
    OPENAI_MODEL alone. See `allowed_models`."""
    app_context_headers: Annotated[list[str], NoDecode] = []
    """Request headers (e.g. `x-page-url,x-org-id`) that become the request context's
    `app_context`, reach the model each turn and are allowed by CORS."""
    default_locale: str = "en"
    """The locale when a request has no usable `Accept-Language` header."""

    auth_secret: SecretStr
    token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    token_max_ttl_seconds: int = Field(default=7 * 24 * 3600 + 3600, ge=60)
    """Bearer tokens whose `exp` is further away than this are refused (401)."""

    environment: Literal["development", "production"] = "development"
    cors_origins: Annotated[list[str], NoDecode] = []
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_attachment_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_audio_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    """Largest dictation recording accepted (the request may be a third larger: base64)."""
    max_attachments_per_message: int = Field(default=10, ge=1, le=1000)
    """Distinct attachments one message may carry (a repeated id counts once); more get 400."""
    max_message_chars: int = Field(default=20_000, ge=1)
    """Characters of text one message may hold (text parts, tags, quoted text); more get 400."""
    max_model_input_bytes: int = Field(default=20 * 1024 * 1024, ge=0)
    """Attachment bytes sent inline in one model request; the rest become short notes."""
    rate_limit_messages_per_minute: int = Field(default=30, ge=0)
    """Messages (new, added or retried) per user per minute, in bursts up to that; 0: no limit."""
    max_concurrent_streams_per_user: int = Field(default=4, ge=0)
    """Streamed answers one user may have running at once; 0: no limit."""
    user_daily_tokens: int = Field(default=0, ge=0)
    """Model tokens (input + output) per user per UTC day; 0: no budget."""
    public_url: str | None = None
    """The app's public base URL, for attachment links (default: each request's own; required
    in production)."""
    attachment_link_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    """How long an image preview link works (links are re-signed whenever they are read)."""
    attachment_orphan_hours: int = Field(default=24, ge=1)
    """`db prune` deletes attachments never sent in a message once they are this old."""
    chat_page: bool = {{ "True" if cookiecutter.chat_page else "False" }}
    chatkit_domain_key: str = "domain_pk_localhost_dev"
    log_level: str = "INFO"
    log_format: Literal["console", "json"] | None = None
    """`console` (readable lines) or `json` (one object per line); unset: console in
    development, json in production (see `effective_log_format`)."""
    metrics: bool = False
    """Serve Prometheus metrics at /metrics (off: no route, no cost)."""
    metrics_token: SecretStr | None = None
    """When set, /metrics asks for `Authorization: Bearer <METRICS_TOKEN>`; unset, it answers
    loopback clients only."""
    otel_exporter_otlp_endpoint: str | None = None
    """OpenTelemetry collector (OTLP over HTTP, e.g. http://localhost:4318): when set, the app
    sends traces there (needs the `otel` extra: `pip install .[otel]`)."""

    @field_validator("auth_secret")
    @classmethod
    def _reject_weak_secret(cls, value: SecretStr) -> SecretStr:
        weakness = secret_weakness(value.get_secret_value())
        if weakness is not None:
            raise ValueError(
                f"AUTH_SECRET must be a random string of at least {MIN_SECRET_LENGTH} characters; "
                f"{weakness} (generate one with: {KEYGEN_COMMAND})"
            )
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError("PUBLIC_URL must be an http(s) URL such as https://chat.example.com")
        return value.strip()

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        problems = []
        if self.token_max_ttl_seconds < self.token_ttl_seconds:
            problems.append(
                f"TOKEN_MAX_TTL_SECONDS ({self.token_max_ttl_seconds}) must be at least "
                f"TOKEN_TTL_SECONDS ({self.token_ttl_seconds}), or the app refuses its own tokens"
            )
        if self.environment == "production" and self.database_url == EMBEDDED:
            problems.append(
                "DATABASE_URL=embedded is for development only; with ENVIRONMENT=production "
                "set DATABASE_URL to your PostgreSQL server (postgresql://...)"
            )
        if self.environment == "production" and self.public_url is None:
            problems.append(
                "PUBLIC_URL is required with ENVIRONMENT=production (attachment links are built "
                "from it, never from a request's Host header), e.g. https://chat.example.com"
            )
        if self.models and self.openai_model not in self.models:
            problems.append(
                f"MODELS must include OPENAI_MODEL ({self.openai_model!r}): it answers messages "
                "that name no model and makes the titles"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            names = [str(name).strip() for name in value if str(name).strip()]
            for name in names:
                if not MODEL_NAME.fullmatch(name):
                    raise ValueError(f"MODELS: {name!r} is not a model name")
            return list(dict.fromkeys(names))
        return value

    @field_validator("app_context_headers", mode="before")
    @classmethod
    def _split_headers(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            names = [str(name).strip().lower() for name in value if str(name).strip()]
            for name in names:
                if not HEADER_NAME.fullmatch(name):
                    raise ValueError(f"APP_CONTEXT_HEADERS: {name!r} is not a header name")
                if name in CREDENTIAL_HEADERS:
                    raise ValueError(
                        f"APP_CONTEXT_HEADERS: {name!r} carries credentials, which never go "
                        "to the model"
                    )
            return list(dict.fromkeys(names))
        return value

    @field_validator("default_locale")
    @classmethod
    def _check_locale(cls, value: str) -> str:
        if not LANGUAGE_TAG.fullmatch(value.strip()):
            raise ValueError("DEFAULT_LOCALE must be a language tag such as en, fr or pt-BR")
        return value.strip()

    @property
    def allowed_models(self) -> list[str]:
        """The models a message may ask for: MODELS, or OPENAI_MODEL alone."""
        return self.models or [self.openai_model]

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        value = value.strip()
        if value != EMBEDDED and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("DATABASE_URL must be a postgresql:// URL or 'embedded'")
        return value

    @property
    def serves_chat_page(self) -> bool:
        """The development chat page is never served in production."""
        return self.chat_page and self.environment == "development"

    @field_validator("log_format", "metrics_token", "otel_exporter_otlp_endpoint", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def effective_log_format(self) -> Literal["console", "json"]:
        """LOG_FORMAT, or its default for ENVIRONMENT (console in development, else json)."""
        if self.log_format is not None:
            return self.log_format
        return "console" if self.environment == "development" else "json"


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()  # type: ignore[call-arg]
