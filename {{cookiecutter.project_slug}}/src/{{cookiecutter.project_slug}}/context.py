"""Who is asking: the request context, the user, and bearer-token authentication.
For a real identity provider, replace `verify_token` (docs/design_decisions.md)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import jwt
from fastapi import Request

from .errors import AppError
from .settings import Settings

ALGORITHM = "HS256"
MAX_USER_ID_CHARS = 255
MAX_CLAIM_CHARS = 320
# Control characters and lone surrogates: not storable (NUL, surrogates) or invisible in logs.
UNSAFE_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class User:
    """The authenticated user. Only `id` is required; it scopes every row in the store."""

    id: str
    name: str | None = None
    email: str | None = None


@dataclass(slots=True)
class RequestContext:
    """What the ChatKit server and store know about the current request. `cache`: rows the
    store read in this request; `checked_action`: the widget action the endpoint parsed."""

    request: Request | None
    user: User
    cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False, compare=False)
    checked_action: Any = field(default=None, repr=False, compare=False)


class AuthError(AppError):
    """Credentials are missing or invalid (401)."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


def create_token(
    user_id: str,
    *,
    settings: Settings,
    ttl_seconds: int | None = None,
    claims: dict[str, Any] | None = None,
) -> str:
    """Mint an HS256 development token for `user_id`, signed with AUTH_SECRET."""
    now = int(time.time())
    payload: dict[str, Any] = {
        **(claims or {}),
        "sub": user_id,
        "iat": now,
        "exp": now + (ttl_seconds if ttl_seconds is not None else settings.token_ttl_seconds),
    }
    return jwt.encode(payload, settings.auth_secret.get_secret_value(), algorithm=ALGORITHM)


def is_clean_text(value: object, max_chars: int) -> TypeGuard[str]:
    """A non-blank string of at most `max_chars`, safe to store and log."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= max_chars
        and not value.isspace()
        and UNSAFE_CHARACTERS.search(value) is None
    )


def verify_token(token: str, settings: Settings) -> User:
    """The token's user, or AuthError (bad signature, no `sub`/`exp`, expired, valid beyond
    TOKEN_MAX_TTL_SECONDS, unclean `sub`). Swap this for your identity provider."""
    try:
        claims = jwt.decode(
            token,
            settings.auth_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp"]},
        )
        expires = int(claims["exp"])
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("token expired") from exc
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as exc:
        # PyJWT lets some odd claim values (e.g. an infinite `iat`) through as plain errors.
        raise AuthError("invalid token") from exc
    if expires > time.time() + settings.token_max_ttl_seconds:
        raise AuthError("token lifetime too long (exp beyond TOKEN_MAX_TTL_SECONDS)")
    subject = claims.get("sub")
    if not is_clean_text(subject, MAX_USER_ID_CHARS):
        raise AuthError("token has no valid user id (sub)")
    name, email = claims.get("name"), claims.get("email")
    return User(
        id=subject,
        name=name if is_clean_text(name, MAX_CLAIM_CHARS) else None,
        email=email if is_clean_text(email, MAX_CLAIM_CHARS) else None,
    )


def bearer_token(request: Request) -> str:
    """The token from `Authorization: Bearer <token>`, or AuthError."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing bearer token")
    return token.strip()


async def get_user(request: Request) -> User:
    """FastAPI dependency: the authenticated user, or a 401 JSON error."""
    return verify_token(bearer_token(request), request.app.state.settings)


async def get_request_context(request: Request) -> RequestContext:
    """FastAPI dependency: the RequestContext for this request."""
    return RequestContext(request=request, user=await get_user(request))
