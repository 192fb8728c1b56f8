"""Settings refuse placeholder secrets; the command line mints tokens and fails readably."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from {{ cookiecutter.project_slug }}.context import verify_token
from {{ cookiecutter.project_slug }}.settings import Settings

from .fixtures_app import TEST_AUTH_SECRET, AppServer

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
    settings = make_settings(auth_secret=TEST_AUTH_SECRET, chat_page=True, environment="production")
    assert settings.serves_chat_page is False


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"AUTH_SECRET", "DATABASE_URL"}}
    return subprocess.run(
        [sys.executable, "-m", PACKAGE, *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
        check=False,
    )


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
