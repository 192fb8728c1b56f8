"""All configuration in one place, read from the environment and `.env`."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
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


class Settings(BaseSettings):
    """Runtime settings. Every field maps to the upper-case environment variable."""

    model_config = SettingsConfigDict(
        env_file=(PROJECT_ROOT / ".env", ".env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    database_url: str = EMBEDDED
    """`postgresql://...`, or `embedded` for a development server kept in the project."""
    embedded_data_dir: Path = PROJECT_ROOT / ".postgres"
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

    auth_secret: SecretStr
    token_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)

    environment: Literal["development", "production"] = "development"
    cors_origins: Annotated[list[str], NoDecode] = []
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_attachment_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_audio_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    """Largest dictation recording accepted (the request may be a third larger: base64)."""
    public_url: str | None = None
    """The app's public base URL, for attachment links (default: each request's own)."""
    chat_page: bool = {{ "True" if cookiecutter.chat_page else "False" }}
    chatkit_domain_key: str = "domain_pk_localhost_dev"
    log_level: str = "INFO"

    @field_validator("auth_secret")
    @classmethod
    def _reject_placeholder_secret(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret.strip().lower() in PLACEHOLDER_SECRETS or len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"AUTH_SECRET must be a random string of at least {MIN_SECRET_LENGTH} characters "
                '(generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

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


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()  # type: ignore[call-arg]
