"""Who is asking: the request context, the user, and bearer-token authentication: the app's
own HS256 tokens (AUTH_SECRET) and, with AUTH_ISSUER, your identity provider's (identity/)."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeGuard

import jwt
from fastapi import Request

from .errors import AppError
from .identity.provider import IssuerKeys, TokenRefused, refusal_for, verify_issuer_token
from .settings import LANGUAGE_TAG, Settings

ALGORITHM = "HS256"
MAX_APP_CONTEXT_CHARS = 2000
"""Longest value an APP_CONTEXT_HEADERS header may carry (a long page URL fits)."""
MAX_ACCEPT_LANGUAGE_CHARS = 500
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
    claims: Mapping[str, Any] = field(default_factory=lambda: NO_CLAIMS, compare=False, repr=False)
    """The token's verified claims, read-only (`context.user.claims.get("email")`)."""


NO_CLAIMS: Mapping[str, Any] = MappingProxyType({})


@dataclass(slots=True)
class RequestContext:
    """What the ChatKit server and store know about the current request. `cache`: rows the
    store read in this request (the turn itself rides on chat/turn.py's TurnContext)."""

    request: Request | None
    user: User
    cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False, compare=False)
    app_context: dict[str, str] = field(default_factory=dict)
    """The APP_CONTEXT_HEADERS this request sent, by lower-case name (the model sees them)."""
    locale: str = "en"
    """The user's language tag, from `Accept-Language` (else DEFAULT_LOCALE)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """The ChatKit request's own `metadata` (client-sent: as trustworthy as the user's text)."""


class AuthError(AppError):
    """Credentials are missing or invalid (401)."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str, reason: str | None = None) -> None:
        extra: dict[str, Any] = {"reason": reason} if reason else {}
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"}, **extra)

    @classmethod
    def refused(cls, refusal: TokenRefused) -> AuthError:
        return cls(refusal.message, refusal.reason)


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
    """The user of one of the app's own HS256 tokens (AUTH_SECRET), or AuthError (expired, bad
    signature, no `sub`/`exp`...). `authenticate` takes issuer tokens too."""
    try:
        claims = jwt.decode(
            token,
            settings.auth_secret.get_secret_value(),
            algorithms=[ALGORITHM],
            options={"require": ["sub", "exp"]},
        )
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as exc:
        # PyJWT lets some odd claim values (e.g. an infinite `iat`) through as plain errors.
        raise AuthError.refused(refusal_for(exc)) from exc
    if settings.auth_issuer is not None and claims.get("iss") == settings.auth_issuer:
        raise AuthError(
            "algorithm not allowed: the issuer's tokens are never HS256", "algorithm_not_allowed"
        )
    return user_from_claims(claims, "sub", settings)


def user_from_claims(claims: dict[str, Any], user_claim: str, settings: Settings) -> User:
    """The User of verified claims (AuthError: `exp` too far away, no clean user claim)."""
    try:
        expires = float(claims["exp"])
    except (KeyError, ValueError, TypeError, OverflowError) as exc:
        raise AuthError("token has no valid expiry (exp)", "malformed") from exc
    if not expires < time.time() + settings.token_max_ttl_seconds:  # `not <`: NaN is refused
        raise AuthError(
            "token lifetime too long (exp beyond TOKEN_MAX_TTL_SECONDS)", "lifetime_too_long"
        )
    subject = claims.get(user_claim)
    if not is_clean_text(subject, MAX_USER_ID_CHARS):
        raise AuthError(f"token has no valid user id ({user_claim})", "no_user")
    name, email = claims.get("name"), claims.get("email")
    return User(
        id=subject,
        name=name if is_clean_text(name, MAX_CLAIM_CHARS) else None,
        email=email if is_clean_text(email, MAX_CLAIM_CHARS) else None,
        claims=MappingProxyType(claims),
    )


async def authenticate(token: str, settings: Settings, issuer_keys: IssuerKeys | None) -> User:
    """A bearer token's user, checked by the path its `alg` and `iss` select (never guessed):
    HS256 with AUTH_SECRET, or AUTH_ISSUER's keys. AuthError (401), ProviderUnavailable (503)."""
    if settings.auth_issuer is None:  # one path, one decode: PyJWT refuses any alg but HS256
        return verify_token(token, settings)
    try:
        unverified = jwt.decode_complete(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise AuthError("malformed token", "malformed") from exc
    header, payload = unverified["header"], unverified["payload"]
    alg = header.get("alg")
    issuer = payload.get("iss") if isinstance(payload, dict) else None
    if alg == ALGORITHM and (settings.auth_issuer is None or issuer != settings.auth_issuer):
        return verify_token(token, settings)
    if settings.auth_issuer is None or issuer_keys is None:
        raise AuthError(
            f"algorithm not allowed (the app's tokens are {ALGORITHM})", "algorithm_not_allowed"
        )
    if issuer != settings.auth_issuer:
        raise AuthError("wrong issuer", "wrong_issuer")
    if alg not in settings.auth_algorithms:
        raise AuthError("algorithm not allowed (see AUTH_ALGORITHMS)", "algorithm_not_allowed")
    try:
        claims = await verify_issuer_token(token, header, issuer_keys, settings.auth_audience)
    except TokenRefused as refusal:
        raise AuthError.refused(refusal) from None
    return user_from_claims(claims, settings.auth_user_claim, settings)


def bearer_token(request: Request) -> str:
    """The token from `Authorization: Bearer <token>`, or AuthError."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing bearer token")
    return token.strip()


async def get_user(request: Request) -> User:
    """FastAPI dependency: the authenticated user, or a 401 (503: no provider keys) JSON error."""
    state = request.app.state
    issuer_keys = getattr(state, "issuer_keys", None)  # an app not built by create_app: none
    return await authenticate(bearer_token(request), state.settings, issuer_keys)


def read_app_context(request: Request, names: list[str]) -> dict[str, str]:
    """The APP_CONTEXT_HEADERS the request carries; a value too long or with control
    characters is a 400 (the model would get it verbatim)."""
    found: dict[str, str] = {}
    for name in names:
        value = request.headers.get(name, "").strip()
        if not value:
            continue
        if not is_clean_text(value, MAX_APP_CONTEXT_CHARS):
            raise AppError(
                f"header {name} must be at most {MAX_APP_CONTEXT_CHARS} characters of text "
                "without control characters",
                code="invalid_app_context",
            )
        found[name] = value
    return found


def parse_locale(header: str | None, default: str) -> str:
    """The preferred language tag of an `Accept-Language` header (`fr-CA,fr;q=0.9` gives
    `fr-CA`), or `default` when it names none that is valid."""
    choices: list[tuple[float, int, str]] = []
    for position, entry in enumerate((header or "")[:MAX_ACCEPT_LANGUAGE_CHARS].split(",")):
        tag, _, params = entry.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        if weight > 0 and LANGUAGE_TAG.fullmatch(tag.strip()):
            choices.append((-weight, position, tag.strip()))
    if not choices:
        return default
    return normalize_tag(min(choices)[2])


def normalize_tag(tag: str) -> str:
    """`EN-us` -> `en-US`, `zh-hant-tw` -> `zh-Hant-TW` (the usual case of each subtag)."""
    language, *rest = tag.split("-")
    subtags = [language.lower()]
    for subtag in rest:
        if len(subtag) == 2 and subtag.isalpha():
            subtags.append(subtag.upper())
        elif len(subtag) == 4 and subtag.isalpha():
            subtags.append(subtag.title())
        else:
            subtags.append(subtag.lower())
    return "-".join(subtags)


async def get_request_context(request: Request) -> RequestContext:
    """FastAPI dependency: the RequestContext for this request (user, app context, locale)."""
    settings: Settings = request.app.state.settings
    user = await get_user(request)
    return RequestContext(
        request=request,
        user=user,
        app_context=read_app_context(request, settings.app_context_headers),
        locale=parse_locale(request.headers.get("accept-language"), settings.default_locale),
    )
