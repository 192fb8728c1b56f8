"""Tokens from your identity provider (AUTH_ISSUER): its discovery document, the cached JWKS
keys (rotation, refetch limits, outages) and the checks an issuer token passes. `context.py`
routes a token here by its header and issuer; docs/design_decisions.md says why."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import jwt

from ..errors import AppError
from .rules import check_provider_url

logger = logging.getLogger(__name__)

# Why each of these: docs/design_decisions.md, "Authentication".
LEEWAY_SECONDS = 60
FETCH_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 2.0
DEFAULT_CACHE_SECONDS = 600.0
MIN_CACHE_SECONDS = 60.0
MAX_CACHE_SECONDS = 3600.0
UNKNOWN_KID_INTERVAL_SECONDS = 15.0
RETRY_AFTER_FAILURE_SECONDS = 5.0
MAX_DOCUMENT_BYTES = 512 * 1024
MAX_KEYS = 100
SIGNING_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})  # never `oct`: no shared-secret key
CACHE_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


class ProviderUnavailable(AppError):
    """The provider's keys cannot be fetched and none are cached (503)."""

    status = 503
    code = "identity_provider_unavailable"

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            "the identity provider's signing keys cannot be fetched right now; try again shortly",
            headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
        )


class TokenRefused(Exception):
    """Why a token is refused: `reason` for machines (`expired`...), `message` in words."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class FetchFailed(Exception):
    """A discovery or JWKS fetch that gave no usable answer (the reason, never a token)."""


class SigningKey:
    """One published key, parsed for an algorithm on first use (then reused)."""

    __slots__ = ("alg", "data", "kid", "prepared")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        kid, alg = data.get("kid"), data.get("alg")
        self.kid = kid if isinstance(kid, str) else None
        self.alg = alg if isinstance(alg, str) else None
        self.prepared: dict[str, Any] = {}

    def for_algorithm(self, alg: str) -> Any:
        """The public key object for `alg`, or None when this key cannot verify it."""
        if alg not in self.prepared:
            try:
                self.prepared[alg] = jwt.PyJWK(self.data, algorithm=alg).key
            except (jwt.PyJWTError, ValueError, TypeError, KeyError):
                self.prepared[alg] = None
        return self.prepared[alg]


def parse_jwks(document: object) -> list[SigningKey]:
    """The usable signing keys of a JWKS document (FetchFailed when it has none)."""
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise FetchFailed("the answer is not a JWKS document (no `keys` list)")
    usable = [
        SigningKey(key)
        for key in keys[:MAX_KEYS]
        if isinstance(key, dict)
        and key.get("kty") in SIGNING_KEY_TYPES
        and key.get("use", "sig") == "sig"
    ]
    if not usable:
        raise FetchFailed("the JWKS document holds no asymmetric signing key")
    return usable


def cache_seconds(cache_control: str | None) -> float:
    """How long to keep keys: the answer's max-age, held between the floor and the ceiling."""
    match = CACHE_MAX_AGE.search(cache_control or "")
    seconds = float(match.group(1)) if match else DEFAULT_CACHE_SECONDS
    return min(max(seconds, MIN_CACHE_SECONDS), MAX_CACHE_SECONDS)


class IssuerKeys:
    """The provider's signing keys, fetched without blocking the event loop and cached; a
    failed fetch keeps the keys held (503 when there are none), logged once per outage."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str | None = None,
        *,
        timeout: float = FETCH_TIMEOUT_SECONDS,
        unknown_kid_interval: float = UNKNOWN_KID_INTERVAL_SECONDS,
        retry_after_failure: float = RETRY_AFTER_FAILURE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        self.configured_jwks_url = jwks_url
        self.jwks_url = jwks_url
        self.fetches = 0  # attempts so far: one JWKS request each (after discovery if needed)
        self._timeout = timeout
        self._unknown_kid_interval = unknown_kid_interval
        self._retry_after_failure = retry_after_failure
        self._clock = clock
        self._keys: list[SigningKey] = []
        self._fresh_until = -math.inf
        self._last_fetch = -math.inf
        self._no_fetch_until = -math.inf
        self._failing = False
        self._inflight: asyncio.Future[None] | None = None
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT_SECONDS, timeout)),
            follow_redirects=False,
            headers={"Accept": "application/json"},
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def keys_for(self, kid: str | None, alg: str) -> list[Any]:
        """The keys that may have signed this token: `kid`'s, or without one all for `alg`."""
        if not self._keys:
            await self._refresh()  # cold: wait for the keys (one fetch for all), 503 without
        elif self._clock() >= self._fresh_until:
            self._start_fetch()  # stale: refresh in the background, these serve meanwhile
        named, usable = self._match(kid, alg)
        since_fetch = self._clock() - self._last_fetch
        if not named and kid is not None and since_fetch >= self._unknown_kid_interval:
            await self._refresh()  # maybe the provider has rotated its keys since
            named, usable = self._match(kid, alg)
        if not named:
            raise TokenRefused("unknown_key", "unknown key: the provider publishes no such kid")
        if not usable:
            raise TokenRefused(
                "algorithm_not_allowed", f"algorithm not allowed: the token's key is not {alg}"
            )
        return usable

    def _match(self, kid: str | None, alg: str) -> tuple[list[SigningKey], list[Any]]:
        named = [key for key in self._keys if kid is None or key.kid == kid]
        fitting = (key.for_algorithm(alg) for key in named if key.alg in (None, alg))
        return named, [key for key in fitting if key is not None]

    def _start_fetch(self) -> asyncio.Future[None] | None:
        """The fetch under way (started now if none is), or None just after a failed one."""
        if self._inflight is None and self._clock() >= self._no_fetch_until:
            self._inflight = asyncio.ensure_future(self._fetch())
        return self._inflight

    async def _refresh(self) -> None:
        """Wait for a fetch shared by every request waiting; 503 when no keys are held."""
        if (fetch := self._start_fetch()) is not None:
            # shield: a request that gives up (client gone) must not cancel the others' fetch
            await asyncio.shield(fetch)
        if not self._keys:
            raise ProviderUnavailable(max(self._no_fetch_until - self._clock(), 1.0))

    async def _fetch(self) -> None:
        self.fetches += 1
        self._last_fetch = self._clock()
        url = self.jwks_url or self.discovery_url
        try:
            async with asyncio.timeout(self._timeout):
                if self.jwks_url is None:
                    self.jwks_url = await self._discover()
                url = self.jwks_url
                document, cache_control = await self._get(url)
            keys = parse_jwks(document)
        except Exception as exc:  # whatever went wrong: keep the old keys, never a 500
            self._failed(url, exc)
            return
        finally:
            self._inflight = None
        if self._failing:
            logger.warning("identity provider keys fetched again from %s", url)
        self._failing = False
        self._keys = keys
        self._fresh_until = self._clock() + cache_seconds(cache_control)
        self._no_fetch_until = -math.inf

    def _failed(self, url: str, exc: Exception) -> None:
        self._no_fetch_until = self._clock() + self._retry_after_failure
        if self.configured_jwks_url is None:
            self.jwks_url = None  # discover again next time: the provider may have moved it
        if not self._failing:  # once per outage, not once per request
            why = str(exc) if isinstance(exc, FetchFailed) else type(exc).__name__
            if isinstance(exc, TimeoutError):
                why = f"no answer within {self._timeout:g} s"
            effect = (
                "the keys fetched before stay in use"
                if self._keys
                else "issuer tokens get 503 until it answers"
            )
            logger.error(
                "identity provider keys could not be fetched from %s: %s; %s", url, why, effect
            )
        self._failing = True

    async def _discover(self) -> str:
        document, _ = await self._get(self.discovery_url)
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            named = document.get("issuer") if isinstance(document, dict) else None
            named = str(named)[:200]
            raise FetchFailed(f"the discovery document names issuer {named!r}, not AUTH_ISSUER")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or check_provider_url(jwks_uri) is not None:
            raise FetchFailed("the discovery document has no https jwks_uri")
        return jwks_uri

    async def _get(self, url: str) -> tuple[object, str | None]:
        async with self._http.stream("GET", url) as response:
            if response.status_code != 200:
                raise FetchFailed(f"HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise FetchFailed(f"the answer is over {MAX_DOCUMENT_BYTES} bytes")
            try:
                return json.loads(body), response.headers.get("cache-control")
            except ValueError:
                raise FetchFailed("the answer is not JSON") from None


async def verify_issuer_token(
    token: str, header: dict[str, Any], keys: IssuerKeys, audience: Sequence[str]
) -> dict[str, Any]:
    """The verified claims of a token from AUTH_ISSUER, or TokenRefused: signature by the
    provider's key, `iss`, `aud`, `exp` required, `nbf` and `iat` not in the future."""
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or (kid is not None and not isinstance(kid, str)):
        raise TokenRefused("malformed", "malformed token header")
    bad_signature: TokenRefused | None = None
    for key in await keys.keys_for(kid, alg):
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=list(audience),
                issuer=keys.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as exc:
            refusal = refusal_for(exc)
            if refusal.reason != "bad_signature":
                raise refusal from exc
            bad_signature = refusal  # without a `kid`, the next key may be the one
            continue
        issued = claims.get("iat")
        if isinstance(issued, int | float) and issued > time.time() + LEEWAY_SECONDS:
            raise TokenRefused("not_yet_valid", "token not valid yet (issued in the future)")
        return claims
    raise bad_signature or TokenRefused("bad_signature", "bad signature")


def refusal_for(exc: Exception) -> TokenRefused:
    """A PyJWT error in words (the order matters: the specific errors subclass the general)."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return TokenRefused("expired", "token expired")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return TokenRefused("not_yet_valid", "token not valid yet (nbf or iat in the future)")
    if isinstance(exc, jwt.InvalidAudienceError):
        return TokenRefused("wrong_audience", "wrong audience: the token is not for this app")
    if isinstance(exc, jwt.InvalidIssuerError):
        return TokenRefused("wrong_issuer", "wrong issuer")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        reason = {"aud": "wrong_audience", "iss": "wrong_issuer"}.get(exc.claim, "malformed")
        return TokenRefused(reason, f"token has no {exc.claim} claim")
    if isinstance(exc, jwt.InvalidSignatureError):
        return TokenRefused("bad_signature", "bad signature")
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return TokenRefused("algorithm_not_allowed", "algorithm not allowed")
    return TokenRefused("malformed", "malformed token")
