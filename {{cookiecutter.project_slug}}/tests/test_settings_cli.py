"""Settings refuse weak secrets and unsafe production setups; the command line mints tokens
and fails readably, in one line."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from {{ cookiecutter.project_slug }}.context import verify_token
from {{ cookiecutter.project_slug }}.settings import ENV_FILE, Settings, describe_invalid
from tests.support.app import TEST_AUTH_SECRET, AppServer
from tests.support.commands import run

PACKAGE = "{{ cookiecutter.project_slug }}"


def make_settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize("secret", ["", "change-me", "secret", "short-but-random-9f3a"])
def test_placeholder_or_short_auth_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValidationError, match="AUTH_SECRET must be a random string"):
        make_settings(auth_secret=secret)


def test_database_url_must_be_postgres_or_embedded() -> None:
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        make_settings(auth_secret=TEST_AUTH_SECRET, database_url="mysql://x@y/z")
    assert make_settings(auth_secret=TEST_AUTH_SECRET).database_url == "embedded"


def test_cors_origins_from_a_comma_separated_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    settings = make_settings(auth_secret=TEST_AUTH_SECRET)
    assert settings.cors_origins == ["https://a.example", "https://b.example"]


def test_chat_page_is_never_served_in_production() -> None:
    settings = make_settings(
        auth_secret=TEST_AUTH_SECRET,
        chat_page=True,
        environment="production",
        database_url="postgresql://app@db/app",
        public_url="https://chat.example.com",
    )
    assert settings.serves_chat_page is False


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"AUTH_SECRET", "DATABASE_URL"}}
    return run([sys.executable, "-m", PACKAGE, *args], env={**clean, **env})


def test_token_command_prints_a_token_for_the_user(tmp_path: Any) -> None:
    done = run_cli("token", "alice", AUTH_SECRET=TEST_AUTH_SECRET)
    assert done.returncode == 0, done.stderr
    user = verify_token(done.stdout.strip(), make_settings(auth_secret=TEST_AUTH_SECRET))
    assert user.id == "alice"


def test_bad_configuration_is_one_readable_line() -> None:
    done = run_cli("token", "alice", AUTH_SECRET="change-me")
    assert done.returncode == 2
    assert done.stderr.startswith("error: invalid configuration: AUTH_SECRET")
    assert "Traceback" not in done.stderr


async def test_cors_preflight_allows_configured_origins_only(
    app_factory: Callable[..., AppServer],
) -> None:
    server = app_factory(cors_origins=["https://app.example"])
    headers = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    async with httpx.AsyncClient() as http:
        allowed = await http.options(
            server.url + "/chatkit", headers={**headers, "Origin": "https://app.example"}
        )
        refused = await http.options(
            server.url + "/chatkit", headers={**headers, "Origin": "https://evil.example"}
        )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in refused.headers


async def test_no_cors_headers_by_default(app_server: AppServer) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(
            app_server.url + "/health", headers={"Origin": "https://x.example"}
        )
    assert "access-control-allow-origin" not in response.headers


WEAK_SECRETS = {
    "one character": ("a" * 64, "only 1 different characters"),
    "a placeholder, repeated": ("change-me-" * 5, "placeholder word 'changeme'"),
    "placeholder words": ("change-me-change-me-change-me-change-me", "placeholder word"),
    "a password, repeated": ("passwordpasswordpasswordpassword", "placeholder word 'password'"),
    "repeated words": ("correct-horse-battery-" * 2, "repeats a pattern"),
    "a repeated unit": ("0123456789abcdef" * 3, "repeats a pattern"),
    "mostly one character": ("x" * 60 + "9f3a0b7c1d2e", "repeats a pattern"),
    "few characters": ("test-secret-" + "x" * 40, "only 7 different characters"),
    "alternating runs": ("a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6", "interleaves simple patterns"),
    "a pangram": ("the quick brown fox jumps over the lazy dog!", "reads as words or a sentence"),
    "a pangram, run together": ("Thequickbrownfoxjumpsoverthelazydog", "reads as words"),
    "the documentation UUID": ("123e4567-e89b-12d3-a456-426614174000", "from documentation"),
    "Swagger's example UUID": ("3FA85F64-5717-4562-B3FC-2C963F66AFA6", "from documentation"),
    "the RFC's example UUID": ("f81d4fae-7dec-11d0-a765-00a0c91e6bf6", "from documentation"),
}


@pytest.mark.parametrize("secret, reason", WEAK_SECRETS.values(), ids=WEAK_SECRETS.keys())
def test_weak_auth_secrets_are_refused(secret: str, reason: str) -> None:
    """Long enough but not random: refused, saying why."""
    with pytest.raises(ValidationError, match="AUTH_SECRET must be a random string") as caught:
        make_settings(auth_secret=secret)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    "generate",
    [
        lambda: secrets.token_urlsafe(48),
        lambda: secrets.token_hex(32),
        lambda: str(uuid.uuid4()) + str(uuid.uuid4()),
    ],
    ids=["token_urlsafe(48), as the project generator writes", "token_hex(32)", "two uuid4"],
)
def test_generated_auth_secrets_are_accepted(generate: Any) -> None:
    """What the generator (and the error message) suggests always passes, run after run."""
    for _ in range(300):
        secret = generate()
        assert make_settings(auth_secret=secret).auth_secret.get_secret_value() == secret


def test_weak_auth_secret_is_one_readable_line() -> None:
    done = run_cli("token", "alice", AUTH_SECRET="change-me-" * 5)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: invalid configuration: AUTH_SECRET: AUTH_SECRET must")
    assert "'changeme'" in done.stderr and f"python -m {PACKAGE} secret" in done.stderr
    assert f"settings come from the environment, then {ENV_FILE}" in done.stderr


def test_a_missing_auth_secret_says_where_settings_come_from_and_how_to_make_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What `main` prints when AUTH_SECRET is in neither the environment nor `.env`."""
    monkeypatch.delenv("AUTH_SECRET", raising=False)
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None)  # type: ignore[call-arg]
    line = "error: " + describe_invalid(refused.value)
    assert line.startswith("error: invalid configuration: AUTH_SECRET: Field required ("), line
    assert f"settings come from the environment, then {ENV_FILE}" in line
    assert f"make a secret with `python -m {PACKAGE} secret` and put AUTH_SECRET=<it> there" in line
    assert "\n" not in line


def test_secret_command_prints_a_fresh_secret_the_settings_accept() -> None:
    printed = [run_cli("secret", AUTH_SECRET="") for _ in range(2)]
    assert [done.returncode for done in printed] == [0, 0], printed[0].stderr
    first, second = (done.stdout for done in printed)
    assert first.count("\n") == 1 and first != second
    secret = first.strip()
    assert len(secret) == 64 and make_settings(auth_secret=secret).auth_secret is not None


PRODUCTION = {
    "auth_secret": TEST_AUTH_SECRET,
    "environment": "production",
    "database_url": "postgresql://app@db:5432/app",
    "public_url": "https://chat.example.com",
}


def test_production_settings_are_accepted_when_complete() -> None:
    assert make_settings(**PRODUCTION).public_url == "https://chat.example.com"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"database_url": "embedded"}, "DATABASE_URL=embedded is for development only"),
        ({"public_url": None}, "PUBLIC_URL is required with ENVIRONMENT=production"),
        ({"public_url": ""}, "PUBLIC_URL is required with ENVIRONMENT=production"),
    ],
    ids=["embedded database", "no public url", "empty public url"],
)
def test_unsafe_production_settings_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_settings(**{**PRODUCTION, **change})


@pytest.mark.parametrize("url", ["chat.example.com", "ftp://chat.example.com", "https://"])
def test_public_url_must_be_an_http_url(url: str) -> None:
    with pytest.raises(ValidationError, match="PUBLIC_URL must be an http"):
        make_settings(auth_secret=TEST_AUTH_SECRET, public_url=url)


def test_token_max_ttl_must_cover_the_token_ttl() -> None:
    with pytest.raises(ValidationError, match="TOKEN_MAX_TTL_SECONDS"):
        make_settings(
            auth_secret=TEST_AUTH_SECRET, token_ttl_seconds=3600, token_max_ttl_seconds=600
        )


def test_production_with_embedded_database_is_one_readable_line() -> None:
    """Every command (`serve` too) reads the settings first: it stops at once, with one line
    naming the problem."""
    done = run_cli(
        "token",
        "alice",
        AUTH_SECRET=TEST_AUTH_SECRET,
        ENVIRONMENT="production",
        PUBLIC_URL="https://chat.example.com",
        DATABASE_URL="embedded",
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        "error: invalid configuration: DATABASE_URL=embedded is for development only"
    )


def test_token_command_refuses_a_lifetime_the_app_would_refuse() -> None:
    done = run_cli("token", "alice", "--ttl", str(30 * 24 * 3600), AUTH_SECRET=TEST_AUTH_SECRET)
    assert done.returncode == 2
    assert "TOKEN_MAX_TTL_SECONDS" in done.stderr and done.stdout == ""


SEQUENTIAL_SECRETS = [
    "abcdefghijklmnopqrstuvwxyz012345",
    "qwertyuiopasdfghjklzxcvbnm123456",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol",
    "ZYXWVUTSRQPONMLKJIHGFEDCBA987654",
    "azertyuiopqsdfghjklmwxcvbn-2026!",
]


@pytest.mark.parametrize("secret", SEQUENTIAL_SECRETS)
def test_sequences_and_keyboard_walks_are_refused(secret: str) -> None:
    """32+ characters, many different ones, no repeats: but a run along the alphabet or the
    keyboard (either way, any case) is no secret."""
    with pytest.raises(ValidationError, match="follows the alphabet or the keyboard"):
        make_settings(auth_secret=secret)


PASSWORD = "Sup3r-s3cret-DB-pa55"
WEAK = "qwertyuiopasdfghjklzxcvbnm123456"
REFUSED = {
    "a weak AUTH_SECRET": (
        {"AUTH_SECRET": WEAK, "DATABASE_URL": f"postgresql://app:{PASSWORD}@db:5432/app"},
        "error: invalid configuration: AUTH_SECRET: AUTH_SECRET must be a random string",
    ),
    "an unsafe production setup": (
        {
            "AUTH_SECRET": TEST_AUTH_SECRET,
            "ENVIRONMENT": "production",
            "DATABASE_URL": f"postgresql://app:{PASSWORD}@db:5432/app",
        },
        "error: invalid configuration: PUBLIC_URL is required with ENVIRONMENT=production",
    ),
}


@pytest.mark.parametrize("how", ["serve", "uvicorn"])
@pytest.mark.parametrize("env, first_words", REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_configuration_is_one_line_without_any_value(
    how: str, env: dict[str, str], first_words: str, tmp_path: Any
) -> None:
    """Under `serve` and under plain `uvicorn <package>.main:app` alike: one line naming the
    setting and its rule, and neither the secret nor the database password (pydantic's own
    message would print both)."""
    argv = (
        [sys.executable, "-m", PACKAGE, "serve", "--port", "0"]
        if how == "serve"
        else [sys.executable, "-m", "uvicorn", f"{PACKAGE}.main:app", "--port", "0"]
    )
    clean = {k: v for k, v in os.environ.items() if k not in {"AUTH_SECRET", "DATABASE_URL"}}
    done = run(argv, env={**clean, **env}, cwd=tmp_path)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(first_words), done.stderr
    output = done.stdout + done.stderr
    assert WEAK not in output and PASSWORD not in output and "Traceback" not in output
    assert "pa55" not in output, "not even the password's tail"


def test_settings_never_show_the_database_password() -> None:
    settings = make_settings(
        auth_secret=TEST_AUTH_SECRET, database_url=f"postgresql://app:{PASSWORD}@db:5432/app"
    )
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)
    assert TEST_AUTH_SECRET not in repr(settings)
