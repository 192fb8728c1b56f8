"""Issuer tokens (identity/provider.py, context.authenticate) against loopback providers: a real
OpenID provider, and KeyServer for what a provider will not sign (ES256, rotation, forgeries,
floods, outages). Every refusal is a 401 with its reason in words; no keys and no provider: 503."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from {{ cookiecutter.project_slug }}.context import AuthError, authenticate, create_token
from {{ cookiecutter.project_slug }}.identity.provider import (
    MAX_CACHE_SECONDS,
    MIN_CACHE_SECONDS,
    IssuerKeys,
    ProviderUnavailable,
    cache_seconds,
)
from {{ cookiecutter.project_slug }}.settings import Settings
from tests.support.app import TEST_AUTH_SECRET
from tests.support.identity import (
    AUDIENCE,
    KeyServer,
    OpenIDProvider,
    ec_key,
    issuer_token,
    public_jwk,
    rsa_key,
)


class Clock:
    """A monotonic clock the test moves forward."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def settings_for(issuer: str, **overrides: Any) -> Settings:
    values = {"auth_secret": TEST_AUTH_SECRET, "auth_issuer": issuer, "auth_audience": AUDIENCE}
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def keys(key_server: KeyServer, clock: Clock) -> Any:
    issuer_keys = IssuerKeys(key_server.issuer, clock=clock, timeout=2.0)
    yield issuer_keys
    await issuer_keys.close()


def segment(value: dict[str, Any] | bytes) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forged(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT will not make: `alg: none`, or HS256 keyed with a public key."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    if secret is None:
        return signing_input + "."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{segment(mac)}"


async def refusal(token: str, settings: Settings, keys: IssuerKeys | None) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await authenticate(token, settings, keys)
    assert caught.value.status == 401
    return caught.value


async def test_a_real_provider_id_token_signs_its_user_in(openid_provider: OpenIDProvider) -> None:
    """oidc-provider-mock's RS256 ID token (discovery, JWKS, no `kid` in the header)."""
    token = openid_provider.id_token("alice", email="alice@example.com", name="Alice")
    settings = settings_for(openid_provider.issuer)
    keys = IssuerKeys(openid_provider.issuer)
    try:
        user = await authenticate(token, settings, keys)
        assert (user.id, user.name, user.claims["email"]) == ("alice", "Alice", "alice@example.com")
        other = openid_provider.id_token("alice", client_id="another-app")
        assert (await refusal(other, settings, keys)).extra["reason"] == "wrong_audience"
    finally:
        await keys.close()


async def test_rs256_and_es256_tokens_carry_their_claims(
    key_server: KeyServer, keys: IssuerKeys
) -> None:
    settings = settings_for(key_server.issuer)
    rs = key_server.token({"sub": "u-rs", "email": "rs@example.com", "groups": ["a"]})
    es = key_server.token({"sub": "u-es"}, key=ec_key(), kid="ec-1", alg="ES256")
    user = await authenticate(rs, settings, keys)
    assert user.id == "u-rs" and user.claims["groups"] == ["a"] and user.email == "rs@example.com"
    assert (await authenticate(es, settings, keys)).id == "u-es"
    oid = key_server.token({"sub": "pairwise", "oid": "stable-id"})
    assert (
        await authenticate(oid, settings_for(key_server.issuer, auth_user_claim="oid"), keys)
    ).id == "stable-id"
    assert key_server.jwks_fetches == 1  # both keys from one fetch, then the cache


def cases(server: KeyServer) -> Iterator[tuple[str, str, str]]:
    """(name, token, reason) for each token the issuer path must refuse."""
    now = int(time.time())
    yield "expired", server.token({"exp": now - 3600}), "expired"
    yield "nbf in the future", server.token({"nbf": now + 3600}), "not_yet_valid"
    yield "iat in the future", server.token({"iat": now + 3600}), "not_yet_valid"
    yield "wrong audience", server.token({"aud": "another-app"}), "wrong_audience"
    yield "no audience", server.token({"aud": None}), "wrong_audience"
    yield "wrong issuer", server.token({"iss": server.issuer + "-other"}), "wrong_issuer"
    yield "unknown kid", server.token(kid="nobody-has-it"), "unknown_key"
    yield "signed by another key", server.token(key=rsa_key("other")), "bad_signature"
    yield "RS384 (not listed)", server.token(alg="RS384"), "algorithm_not_allowed"
    yield (
        "ES256 naming the RSA key",
        server.token(key=ec_key(), alg="ES256"),
        ("algorithm_not_allowed"),
    )
    claims = {"iss": server.issuer, "aud": AUDIENCE, "sub": "x", "exp": now + 600}
    yield (
        "alg none",
        forged({"alg": "none", "kid": "rsa-1"}, claims, None),
        ("algorithm_not_allowed"),
    )
    public_pem = (
        rsa_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    yield (
        "HS256 keyed with the public key",
        forged({"alg": "HS256", "kid": "rsa-1"}, claims, public_pem),
        "algorithm_not_allowed",
    )
    yield "no exp", server.token({"exp": None}), "malformed"
    yield "garbage", "not.a.token", "malformed"


async def test_every_bad_token_is_a_401_with_its_reason_and_never_logged(
    key_server: KeyServer, keys: IssuerKeys, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(key_server.issuer)
    refused, expected = [], []
    with caplog.at_level(logging.DEBUG):
        for name, token, reason in cases(key_server):
            error = await refusal(token, settings, keys)
            refused.append((name, error.extra.get("reason"), error.message))
            expected.append((name, reason))
            signature = token.split(".")[-1]
            assert token not in caplog.text and (not signature or signature not in caplog.text)
    assert [(name, reason) for name, reason, _ in refused] == expected, refused
    words = {reason: message for _, reason, message in refused}
    assert words["expired"] == "token expired"
    assert words["wrong_audience"].startswith(("wrong audience", "token has no aud"))
    assert words["wrong_issuer"] == "wrong issuer"
    assert words["unknown_key"].startswith("unknown key")
    assert words["bad_signature"] == "bad signature"
    assert words["algorithm_not_allowed"].startswith("algorithm not allowed")


async def test_hs256_tokens_keep_working_beside_the_issuer(
    key_server: KeyServer, keys: IssuerKeys
) -> None:
    """The `token` command's tokens still sign in; one claiming the issuer's `iss` does not."""
    settings = settings_for(key_server.issuer)
    assert (await authenticate(create_token("dev", settings=settings), settings, keys)).id == "dev"
    claiming = create_token("dev", settings=settings, claims={"iss": key_server.issuer})
    assert (await refusal(claiming, settings, keys)).extra["reason"] == "algorithm_not_allowed"
    no_issuer = Settings(_env_file=None, auth_secret=TEST_AUTH_SECRET)  # type: ignore[call-arg]
    assert (await refusal(key_server.token(), no_issuer, None)).extra["reason"] == (
        "algorithm_not_allowed"
    )


async def test_without_an_issuer_a_token_is_decoded_once(
    monkeypatch: pytest.MonkeyPatch, key_server: KeyServer
) -> None:
    """No AUTH_ISSUER: one verified decode per request, no unverified look first (it cost
    a second parse on every request); other algorithms and garbage are still refused."""
    decoded: list[str] = []
    for name in ("decode", "decode_complete"):
        real = getattr(jwt, name)

        def counting(token: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            decoded.append(token)
            return _real(token, *args, **kwargs)

        monkeypatch.setattr(jwt, name, counting)
    no_issuer = Settings(_env_file=None, auth_secret=TEST_AUTH_SECRET)  # type: ignore[call-arg]
    user = await authenticate(create_token("dev", settings=no_issuer), no_issuer, None)
    assert user.id == "dev" and len(decoded) == 1
    assert (await refusal(key_server.token(), no_issuer, None)).extra["reason"] == (
        "algorithm_not_allowed"
    )
    assert (await refusal("not.a.token", no_issuer, None)).extra["reason"] == "malformed"


async def test_a_rotated_key_is_fetched_when_a_token_names_it(
    key_server: KeyServer, keys: IssuerKeys, clock: Clock
) -> None:
    settings = settings_for(key_server.issuer)
    await authenticate(key_server.token(), settings, keys)
    key_server.keys = [*key_server.keys, public_jwk(rsa_key("rotated"), "rsa-2", "RS256")]
    clock.now += 20  # past the unknown-kid interval (15 s)
    rotated = key_server.token({"sub": "new-key"}, key=rsa_key("rotated"), kid="rsa-2")
    assert (await authenticate(rotated, settings, keys)).id == "new-key"
    assert key_server.jwks_fetches == 2


async def test_a_kid_flood_costs_one_fetch_per_interval(
    key_server: KeyServer, keys: IssuerKeys, clock: Clock
) -> None:
    settings = settings_for(key_server.issuer)
    await authenticate(key_server.token(), settings, keys)

    async def flood() -> set[Any]:
        tokens = [key_server.token(kid=uuid.uuid4().hex) for _ in range(40)]
        results = await asyncio.gather(
            *(authenticate(t, settings, keys) for t in tokens), return_exceptions=True
        )
        return {getattr(result, "extra", {}).get("reason") for result in results}

    assert await flood() == {"unknown_key"} and key_server.jwks_fetches == 1  # just fetched
    clock.now += 20
    assert await flood() == {"unknown_key"} and key_server.jwks_fetches == 2  # one for all 40
    assert await flood() == {"unknown_key"} and key_server.jwks_fetches == 2


async def test_concurrent_cold_requests_share_one_fetch(
    key_server: KeyServer, keys: IssuerKeys
) -> None:
    settings = settings_for(key_server.issuer)
    token = key_server.token()
    users = await asyncio.gather(*(authenticate(token, settings, keys) for _ in range(30)))
    assert {user.id for user in users} == {"someone"} and key_server.jwks_fetches == 1


def test_cache_control_is_honoured_between_a_floor_and_a_ceiling() -> None:
    assert cache_seconds("public, max-age=900, must-revalidate") == 900
    assert cache_seconds("no-cache, max-age=0") == MIN_CACHE_SECONDS
    assert cache_seconds("max-age=31536000") == MAX_CACHE_SECONDS
    assert MIN_CACHE_SECONDS < cache_seconds(None) < MAX_CACHE_SECONDS


async def test_stale_keys_refresh_in_the_background_and_outlive_an_outage(
    key_server: KeyServer, keys: IssuerKeys, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(key_server.issuer)
    key_server.cache_control = "max-age=120"
    token = key_server.token()
    await authenticate(token, settings, keys)
    clock.now += 121  # stale: this request is served from the cache, a refresh starts
    await authenticate(token, settings, keys)
    await asyncio.sleep(0.3)
    assert key_server.jwks_fetches == 2
    key_server.stop()  # the provider is gone
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            clock.now += 200
            assert (await authenticate(token, settings, keys)).id == "someone"
            await asyncio.sleep(0.05)
    failures = [r for r in caplog.records if "could not be fetched" in r.getMessage()]
    assert len(failures) == 1, caplog.text  # once per outage, not per request
    assert key_server.issuer + "/keys" in failures[0].getMessage()
    assert "stay in use" in failures[0].getMessage()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_no_keys_and_no_provider_is_a_quick_503_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    issuer = f"http://127.0.0.1:{closed_port()}/gone"
    settings = settings_for(issuer)
    keys = IssuerKeys(issuer)
    token = issuer_token(issuer)
    try:
        with caplog.at_level(logging.WARNING):
            started = time.monotonic()
            for _ in range(5):
                with pytest.raises(ProviderUnavailable) as caught:
                    await authenticate(token, settings, keys)
            assert time.monotonic() - started < 2
        assert caught.value.status == 503 and "Retry-After" in caught.value.headers
        logged = [
            r.getMessage() for r in caplog.records if "could not be fetched" in r.getMessage()
        ]
        assert len(logged) == 1 and issuer + "/.well-known/openid-configuration" in logged[0]
        assert keys.fetches == 1  # the others came within the pause after a failure
    finally:
        await keys.close()


async def test_a_provider_that_never_answers_is_a_503_within_the_timeout() -> None:
    with socket.socket() as silent:  # listens, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        issuer = f"http://127.0.0.1:{silent.getsockname()[1]}"
        keys = IssuerKeys(issuer, timeout=0.5)
        try:
            started = time.monotonic()
            with pytest.raises(ProviderUnavailable):
                await authenticate(
                    issuer_token(issuer),
                    settings_for(issuer),
                    keys,
                )
            assert time.monotonic() - started < 2
        finally:
            await keys.close()


async def test_a_discovery_document_for_another_issuer_is_refused(
    key_server: KeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    """AUTH_ISSUER with a trailing slash the provider's `iss` lacks: the discovery document
    names another issuer, so no key of it is trusted (tokens would all say "wrong issuer")."""
    keys = IssuerKeys(key_server.issuer + "/")
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(ProviderUnavailable):
            await authenticate(issuer_token(keys.issuer), settings_for(keys.issuer), keys)
    finally:
        await keys.close()
    assert "names issuer" in caplog.text and "not AUTH_ISSUER" in caplog.text


def test_settings_refuse_an_issuer_without_audience_and_symmetric_algorithms() -> None:
    with pytest.raises(ValueError, match="AUTH_AUDIENCE is required"):
        settings_for("https://login.example.com/", auth_audience="")
    with pytest.raises(ValueError, match="asymmetric algorithms only"):
        settings_for("https://login.example.com/", auth_algorithms="RS256,HS256")
    with pytest.raises(ValueError, match="http:// only on loopback"):
        settings_for("http://login.example.com/")
    ok = settings_for("https://login.example.com/", auth_audience="api://chat, other")
    assert ok.auth_audience == ["api://chat", "other"] and ok.auth_algorithms == ["RS256", "ES256"]
