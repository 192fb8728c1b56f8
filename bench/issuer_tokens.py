"""Issuer tokens for the benchmark: an OpenID provider's discovery document and JWKS served on
127.0.0.1, and RS256 tokens signed with its key, so a bench row measures the app verifying
them (AUTH_ISSUER) instead of its own HS256 tokens.

Runs in the baked project's virtualenv (standard library + PyJWT and cryptography, which the
project depends on). driver/main.py starts it and adds `app_env()` (AUTH_ISSUER,
AUTH_AUDIENCE) to ours; driver/phases.py's issuer-token row signs its users in with `token`.

`python bench/issuer_tokens.py` serves until interrupted and prints the settings and one token.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "bench-chat-app"
KID = "bench-rsa-1"
TOKEN_LIFETIME_SECONDS = 3600


class IssuerServer(ThreadingHTTPServer):
    """Discovery and JWKS for one RS256 key; `jwks_fetches` counts what the apps fetched."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), _Handler)
        self.issuer = f"http://{host}:{self.server_address[1]}"
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        algorithm = jwt.get_algorithm_by_name("RS256")
        public = json.loads(algorithm.to_jwk(self.private_key.public_key()))
        self.jwks = {"keys": [{**public, "kid": KID, "alg": "RS256", "use": "sig"}]}
        self.jwks_fetches = 0
        self._tokens: dict[str, str] = {}
        self._thread = threading.Thread(target=self.serve_forever, args=(0.1,), daemon=True)

    def start(self) -> IssuerServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=5)

    def app_env(self) -> dict[str, str]:
        """What the served app needs to accept this issuer's tokens."""
        return {"AUTH_ISSUER": self.issuer, "AUTH_AUDIENCE": AUDIENCE}

    def token(self, user: str) -> str:
        """An RS256 token for `user` (its `sub`), valid an hour; made once per user."""
        if user not in self._tokens:
            now = int(time.time())
            claims = {
                "iss": self.issuer,
                "aud": AUDIENCE,
                "sub": user,
                "email": f"{user}@bench.example.com",
                "iat": now,
                "exp": now + TOKEN_LIFETIME_SECONDS,
            }
            self._tokens[user] = jwt.encode(
                claims, self.private_key, algorithm="RS256", headers={"kid": KID}
            )
        return self._tokens[user]


class _Handler(BaseHTTPRequestHandler):
    server: IssuerServer

    def do_GET(self) -> None:
        if self.path == "/.well-known/openid-configuration":
            document: dict[str, Any] = {
                "issuer": self.server.issuer,
                "jwks_uri": f"{self.server.issuer}/jwks",
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        elif self.path == "/jwks":
            self.server.jwks_fetches += 1
            document = self.server.jwks
        else:
            self.send_error(404)
            return
        body = json.dumps(document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "public, max-age=3600")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the bench's output


if __name__ == "__main__":
    server = IssuerServer().start()
    for name, value in server.app_env().items():
        print(f"{name}={value}")
    print(f"token for bench-user: {server.token('bench-user')}")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
