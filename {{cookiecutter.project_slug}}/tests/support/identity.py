"""Identity providers on loopback for the sign-in tests: a real OpenID provider
(`oidc-provider-mock`, RS256 ID tokens through the authorization-code flow) and `KeyServer`,
a small discovery + JWKS server whose keys we hold, for the tokens a provider will not make."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
import werkzeug.serving
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "chat-app"
"""The client ID the tests sign in with: the provider's ID tokens carry it as `aud`."""


class OpenIDProvider:
    """`oidc-provider-mock` served on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self) -> None:
        # Imported here: it (Flask, authlib) costs the other tests. authlib puts an "always"
        # filter first for its deprecation of authlib.jose, which no ini filter can override.
        with warnings.catch_warnings(record=True):
            import oidc_provider_mock

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self.server = werkzeug.serving.make_server(
            "127.0.0.1", 0, oidc_provider_mock.app(), threaded=True
        )
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> OpenIDProvider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def id_token(self, sub: str, client_id: str = AUDIENCE, **claims: Any) -> str:
        """Sign `sub` in through the authorization-code flow and return the ID token."""
        redirect = "http://127.0.0.1/callback"
        with httpx.Client(base_url=self.issuer, timeout=10) as http:
            http.put(f"/users/{sub}", json=claims).raise_for_status()
            query = {
                "client_id": client_id,
                "redirect_uri": redirect,
                "response_type": "code",
                "scope": "openid email profile",
                "state": uuid.uuid4().hex,
            }
            login = http.post("/oauth2/authorize", params=query, data={"sub": sub})
            assert login.status_code == 302, login.text
            code = parse_qs(urlsplit(login.headers["location"]).query)["code"][0]
            form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect}
            answer = http.post("/oauth2/token", data=form, auth=(client_id, "any-secret"))
            answer.raise_for_status()
            return str(answer.json()["id_token"])


@pytest.fixture(scope="session")
def openid_provider() -> Iterator[OpenIDProvider]:
    provider = OpenIDProvider().start()
    yield provider
    provider.stop()


@functools.cache
def rsa_key(name: str = "first") -> rsa.RSAPrivateKey:
    """An RSA key made once per test process (making one takes ~50 ms)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(private_key: Any, kid: str, alg: str) -> dict[str, Any]:
    """The public half of `private_key` as a JWK with this `kid` and `alg`."""
    algorithm = jwt.get_algorithm_by_name(alg)
    jwk: dict[str, Any] = json.loads(algorithm.to_jwk(private_key.public_key()))
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


class KeyServer(ThreadingHTTPServer):
    """Discovery and JWKS on 127.0.0.1, serving `keys`; counts the JWKS fetches. `stop()`
    closes the port (the provider unreachable); `cache_control` is what the JWKS answer says."""

    daemon_threads = True

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        super().__init__(("127.0.0.1", 0), KeyHandler)
        self.issuer = f"http://127.0.0.1:{self.server_address[1]}/tenant"
        self.keys = keys
        self.jwks_fetches = 0
        self.cache_control = "public, max-age=600"
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> KeyServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=5)

    def token(self, claims: dict[str, Any] | None = None, **options: Any) -> str:
        return issuer_token(self.issuer, claims, **options)


def issuer_token(
    issuer: str,
    claims: dict[str, Any] | None = None,
    *,
    key: Any = None,
    kid: str | None = "rsa-1",
    alg: str = "RS256",
) -> str:
    """A token from `issuer` for AUDIENCE, valid 10 minutes, signed with `key` (the first RSA
    key by default); `claims` win, and a claim given as None is left out."""
    now = int(time.time())
    payload = {"iss": issuer, "aud": AUDIENCE, "sub": "someone", "iat": now, "exp": now + 600}
    payload = {
        name: value for name, value in (payload | (claims or {})).items() if value is not None
    }
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(payload, key or rsa_key(), algorithm=alg, headers=headers)


class KeyHandler(BaseHTTPRequestHandler):
    server: KeyServer

    def do_GET(self) -> None:
        base = self.server.issuer
        if self.path == "/tenant/.well-known/openid-configuration":
            self.answer({"issuer": base, "jwks_uri": f"{base}/keys"}, "max-age=600")
        elif self.path == "/tenant/keys":
            self.server.jwks_fetches += 1
            self.answer({"keys": self.server.keys}, self.server.cache_control)
        else:
            self.send_error(404)

    def answer(self, document: dict[str, Any], cache_control: str) -> None:
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", cache_control)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per request
        pass


def standard_keys() -> list[dict[str, Any]]:
    """An RSA and an EC key, as a provider that signs with both publishes them."""
    return [public_jwk(rsa_key(), "rsa-1", "RS256"), public_jwk(ec_key(), "ec-1", "ES256")]


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer(standard_keys()).start()
    yield server
    server.stop()
