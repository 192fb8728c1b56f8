"""All configuration in one place, read from the environment and `.env`."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .identity.rules import CommaList, ProviderURL, identity_problems
from .secrets_check import MIN_SECRET_LENGTH, secret_weakness

PACKAGE_DIR = Path(__file__).resolve().parent


def find_project_root() -> Path:
    """The project folder: where pyproject.toml sits for a source checkout, else the cwd."""
    candidate = PACKAGE_DIR.parents[1]
    if (candidate / "pyproject.toml").is_file():
        return candidate
    return Path.cwd()


PROJECT_ROOT = find_project_root()

DEFAULT_MODEL = "gpt-4.1"
EMBEDDED = "embedded"
STORAGE_PATTERN = r"^(postgres|s3://[\w.-]+(/[^?#@]*)?)$"
DEFAULT_CHATKIT_SCRIPT_URL = "https://cdn.platform.openai.com/deployments/chatkit/chatkit.js"
KEYGEN_COMMAND = f"python -m {__package__} secret"
"""Prints a fresh AUTH_SECRET (`secrets.token_urlsafe(48)`)."""
ENV_FILE = PROJECT_ROOT / ".env"


def settings_sources() -> str:
    """Where settings come from, for error messages."""
    state = "" if ENV_FILE.is_file() else ", not there yet"
    return f"settings come from the environment, then {ENV_FILE}{state}"


MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")
HEADER_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8}){0,4}")
"""A BCP 47 language tag, simplified: a language, then up to four subtags (`pt-BR`)."""

EMBEDDED_DATA_DIR = PROJECT_ROOT / ".postgres"
"""Where DATABASE_URL=embedded keeps its development PostgreSQL."""


def split_names(
    value: object, setting: str, pattern: re.Pattern[str], what: str, *, lower: bool = False
) -> object:
    """A comma-separated list as distinct names, each matching `pattern` (ValueError if not)."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return value
    names = [str(name).strip() for name in value if str(name).strip()]
    names = [name.lower() for name in names] if lower else names
    for name in names:
        if not pattern.fullmatch(name):
            raise ValueError(f"{setting}: {name!r} is not {what}")
    return list(dict.fromkeys(names))


class Settings(BaseSettings):
    """Runtime settings. Every field maps to the upper-case environment variable."""

    model_config = SettingsConfigDict(
        env_file=(ENV_FILE, ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    database_url: str = Field(default=EMBEDDED, repr=False)
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
    web_search: bool = False
    """Offer the model OpenAI's hosted web search (Responses API)."""
    file_search_vector_store_ids: Annotated[list[str], NoDecode] = []
    """Offer OpenAI's hosted file search over these vector stores (Responses API)."""
    image_generation: bool = False
    """Offer OpenAI's hosted image generation (Responses API); images are kept in PostgreSQL."""
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = (
        None
    )
    """Sent to reasoning models (unset: not sent, the model's default)."""
    reasoning_summary: Literal["auto", "concise", "detailed"] | None = None
    """Reasoning summaries to stream (Responses API; `auto` when REASONING_EFFORT is set)."""
    models: Annotated[list[str], NoDecode] = []
    """Models the composer's picker may choose; empty: OPENAI_MODEL alone."""
    app_context_headers: Annotated[list[str], NoDecode] = []
    """Request headers that become `app_context`, reach the model and pass CORS."""
    default_locale: str = "en"
    """The locale when a request has no usable `Accept-Language` header."""

    auth_secret: SecretStr
    token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    token_max_ttl_seconds: int = Field(default=7 * 24 * 3600 + 3600, ge=60)
    """Bearer tokens whose `exp` is further away than this are refused (401)."""

    # Sign-in with your identity provider (identity/): accepted beside AUTH_SECRET's tokens.
    auth_issuer: ProviderURL = None
    auth_jwks_url: ProviderURL = None
    auth_audience: CommaList = []
    auth_algorithms: CommaList = ["RS256", "ES256"]
    auth_user_claim: str = "sub"
    environment: Literal["development", "production"] = "development"
    cors_origins: Annotated[list[str], NoDecode] = []
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_attachment_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_audio_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    """Largest dictation recording accepted (the request may be a third larger: base64)."""
    max_attachments_per_message: int = Field(default=10, ge=1, le=1000)
    """Distinct attachments one message may carry (a repeated id counts once); more get 400."""
    max_message_chars: int = Field(default=20_000, ge=1)
    """Characters of text one message may hold (text parts, tags, quoted text); more get 400.
    What its tags resolve to for the model counts against it too (tags beyond stay short)."""
    max_tags_per_message: int = Field(default=20, ge=0, le=1000)
    """@-mentions (tags) one message may hold; more get 400."""
    max_model_input_bytes: int = Field(default=20 * 1024 * 1024, ge=0)
    """Bytes one model request may carry in all; the oldest items and files stay out."""
    max_tool_output_bytes: int = Field(default=64 * 1024, ge=1024)
    """Largest client tool output (`threads.add_client_tool_output`, as JSON); more get 413."""
    rate_limit_messages_per_minute: int = Field(default=30, ge=0)
    """Messages (new, added or retried) per user per minute, in bursts up to that; 0: no limit."""
    rate_limit_actions_per_minute: int = Field(default=60, ge=0)
    """Widget actions per user per minute, in bursts up to that; 0: no limit."""
    max_concurrent_streams_per_user: int = Field(default=4, ge=0)
    """Streamed answers one user may have running at once; 0: no limit."""
    user_daily_tokens: int = Field(default=0, ge=0)
    """Model tokens (input + output) per user per UTC day; 0: no budget."""
    rate_limit_transcriptions_per_minute: int = Field(default=10, ge=0)
    """Dictation requests (`input.transcribe`) per user per minute; 0: no limit."""
    public_url: str | None = None
    """The app's public base URL, for attachment links (required in production)."""
    attachment_link_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    """How long an image preview link works (links are re-signed whenever they are read)."""
    attachment_orphan_hours: int = Field(default=24, ge=1)
    """`db prune` deletes attachments never sent in a message once they are this old."""
    retention_days: int = Field(default=0, ge=0)
    """`db prune` deletes threads with no new item for this many days; 0: keep forever."""
    attachment_storage: str = Field(default="postgres", pattern=STORAGE_PATTERN)
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    max_uploads_in_flight_per_user: int = Field(default=2, ge=0)
    max_upload_bytes_in_flight: int = Field(default=256 * 1024 * 1024, ge=0)
    user_storage_bytes: int = Field(default=1024 * 1024 * 1024, ge=0)
    rate_limit_uploads_per_minute: int = Field(default=30, ge=0)
    chat_page: bool = {{ "True" if cookiecutter.chat_page else "False" }}
    chatkit_domain_key: str = "domain_pk_localhost_dev"
    chatkit_script_url: str = DEFAULT_CHATKIT_SCRIPT_URL
    log_level: str = "INFO"
    log_format: Literal["console", "json"] | None = None
    """`console` or `json`; unset: console in development, json in production."""
    metrics: bool = False
    """Serve Prometheus metrics at /metrics (off: no route, no cost)."""
    metrics_token: SecretStr | None = None
    """/metrics asks for it as a bearer token; unset, only a loopback-bound app answers."""
    otel_exporter_otlp_endpoint: str | None = None
    """OpenTelemetry collector (OTLP/HTTP, e.g. http://localhost:4318; the `otel` extra)."""

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

    @field_validator("chatkit_script_url")
    @classmethod
    def _check_chatkit_script_url(cls, value: str) -> str:
        parts, bad = urlsplit(value.strip()), re.search(r"[\s;,'\"<>]", value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or bad:  # it goes in a CSP
            raise ValueError("CHATKIT_SCRIPT_URL must be an http(s) URL of the script")
        return value.strip()

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        problems = identity_problems(self)
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
        if self.openai_api == "chat_completions":
            problems += [
                f"{name} needs OPENAI_API=responses (the Chat Completions API has no hosted tools "
                "or reasoning summaries)"
                for name, wanted in (
                    ("WEB_SEARCH", self.web_search),
                    ("FILE_SEARCH_VECTOR_STORE_IDS", self.file_search_vector_store_ids),
                    ("IMAGE_GENERATION", self.image_generation),
                    ("REASONING_SUMMARY", self.reasoning_summary),
                )
                if wanted
            ]
        if self.models and self.openai_model not in self.models:
            problems.append(
                f"MODELS must include OPENAI_MODEL ({self.openai_model!r}): it answers messages "
                "that name no model and makes the titles"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("cors_origins", "file_search_vector_store_ids", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        return split_names(value, "MODELS", MODEL_NAME, "a model name")

    @field_validator("app_context_headers", mode="before")
    @classmethod
    def _split_headers(cls, value: object) -> object:
        names = split_names(value, "APP_CONTEXT_HEADERS", HEADER_NAME, "a header name", lower=True)
        for name in names if isinstance(names, list) else []:
            if name in CREDENTIAL_HEADERS:
                raise ValueError(f"APP_CONTEXT_HEADERS: {name!r} carries credentials")
        return names

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

    @field_validator(
        "log_format",
        "metrics_token",
        "otel_exporter_otlp_endpoint",
        "reasoning_effort",
        "reasoning_summary",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def effective_log_format(self) -> Literal["console", "json"]:
        """LOG_FORMAT, or its default for ENVIRONMENT (console in development, else json)."""
        if self.log_format is not None:
            return self.log_format
        return "console" if self.environment == "development" else "json"


def describe_invalid(exc: ValidationError) -> str:
    """A refused configuration as one line (never a value), where settings come from and, when
    AUTH_SECRET is missing, how to make one."""
    problems, missing = [], set()
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        where = ".".join(str(part) for part in error["loc"]).upper()
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
        if error["type"] == "missing":
            missing.add(where)
    keygen = ""
    if "AUTH_SECRET" in missing:
        keygen = f"; make a secret with `{KEYGEN_COMMAND}` and put AUTH_SECRET=<it> there"
    return f"invalid configuration: {'; '.join(problems)} ({settings_sources()}{keygen})"


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()  # type: ignore[call-arg]
