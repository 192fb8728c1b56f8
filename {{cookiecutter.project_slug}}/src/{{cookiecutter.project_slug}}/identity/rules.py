"""What the AUTH_ISSUER settings must be (settings.py asks, before the app starts)."""

from __future__ import annotations

import re
from typing import Annotated, Protocol
from urllib.parse import urlsplit

from pydantic import BeforeValidator
from pydantic_settings import NoDecode

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""What AUTH_ALGORITHMS may list: a provider's public key must never verify an HS256 token."""
CLAIM_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,99}")
AUDIENCE = re.compile(r"[^\s,]{1,500}")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def split_commas(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def blank_is_none(value: object) -> object:
    return value.strip() or None if isinstance(value, str) else value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(split_commas)]
ProviderURL = Annotated[str | None, BeforeValidator(blank_is_none)]


class IdentitySettings(Protocol):
    auth_issuer: str | None
    auth_jwks_url: str | None
    auth_audience: list[str]
    auth_algorithms: list[str]
    auth_user_claim: str


def check_provider_url(url: str) -> str | None:
    """Why `url` cannot be an issuer or key URL (https, or http on loopback only), or None."""
    parts = urlsplit(url)
    if not parts.hostname or parts.query or parts.fragment or parts.username:
        return "must be a URL such as https://login.example.com/ (no query, no credentials)"
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return None
    return "must be https:// (http:// only on loopback: localhost, 127.0.0.1, ::1)"


def identity_problems(settings: IdentitySettings) -> list[str]:
    """What is wrong with the AUTH_* settings of an identity provider (empty: nothing)."""
    problems = [
        f"{name} {problem}"
        for name, url in (
            ("AUTH_ISSUER", settings.auth_issuer),
            ("AUTH_JWKS_URL", settings.auth_jwks_url),
        )
        if url is not None and (problem := check_provider_url(url))
    ]
    refused = [name for name in settings.auth_algorithms if name not in ASYMMETRIC_ALGORITHMS]
    if refused or not settings.auth_algorithms:
        problems.append(
            f"AUTH_ALGORITHMS: {', '.join(refused) or 'an empty list'} refused; issuer tokens take "
            f"asymmetric algorithms only ({', '.join(sorted(ASYMMETRIC_ALGORITHMS))})"
        )
    if not CLAIM_NAME.fullmatch(settings.auth_user_claim):
        problems.append("AUTH_USER_CLAIM must be one claim name, such as sub or oid")
    if not all(AUDIENCE.fullmatch(audience) for audience in settings.auth_audience):
        problems.append("AUTH_AUDIENCE: each value is one audience, without spaces")
    if settings.auth_issuer is None:
        named = {"AUTH_JWKS_URL": settings.auth_jwks_url, "AUTH_AUDIENCE": settings.auth_audience}
        problems += [f"{name} needs AUTH_ISSUER" for name, value in named.items() if value]
    elif not settings.auth_audience:
        problems.append(
            "AUTH_AUDIENCE is required with AUTH_ISSUER: the `aud` your provider gives this app's "
            "tokens (without it, a token made for another app of the tenant would work here)"
        )
    return problems
