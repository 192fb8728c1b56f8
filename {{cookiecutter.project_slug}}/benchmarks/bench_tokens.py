"""Measure what checking a bearer token costs per request: a script, not a test.

`context.authenticate` with warm keys for an RS256 and an ES256 issuer token (from a loopback
key server, tests/support/identity.py) and for the app's own HS256 token, plus PyJWT's bare
RS256 `jwt.decode` for comparison. CPU time (`time.process_time`), so a busy machine changes
the figures less. Run `uv run python benchmarks/bench_tokens.py [--rounds 5] [--tokens 3000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import jwt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, from anywhere

from {{ cookiecutter.project_slug }}.context import authenticate, create_token
from {{ cookiecutter.project_slug }}.identity.provider import IssuerKeys
from {{ cookiecutter.project_slug }}.settings import Settings
from tests.support.app import TEST_AUTH_SECRET
from tests.support.identity import AUDIENCE, KeyServer, ec_key, standard_keys


async def measure(rounds: int, count: int) -> None:
    server = KeyServer(standard_keys()).start()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        auth_secret=TEST_AUTH_SECRET,
        auth_issuer=server.issuer,
        auth_audience=AUDIENCE,
    )
    keys = IssuerKeys(server.issuer)
    tokens = {
        "RS256 issuer token": server.token({"email": "someone@example.com"}),
        "ES256 issuer token": server.token(key=ec_key(), kid="ec-1", alg="ES256"),
        "HS256 (AUTH_SECRET)": create_token("someone", settings=settings),
    }
    try:
        await authenticate(tokens["RS256 issuer token"], settings, keys)  # warm the key cache
        for name, token in tokens.items():
            runs = []
            for _ in range(rounds):
                started = time.process_time()
                for _ in range(count):
                    await authenticate(token, settings, keys)
                runs.append((time.process_time() - started) / count * 1e6)
            print(f"{name:24} {statistics.median(runs):7.1f} us CPU per token")
        public = jwt.PyJWK(standard_keys()[0], algorithm="RS256").key
        rs256 = tokens["RS256 issuer token"]
        started = time.process_time()
        for _ in range(count):
            jwt.decode(rs256, public, algorithms=["RS256"], audience=AUDIENCE, issuer=server.issuer)
        bare = (time.process_time() - started) / count * 1e6
        print(f"{'bare jwt.decode RS256':24} {bare:7.1f} us CPU per token")
        print(f"JWKS fetches: {server.jwks_fetches} (the cache served the rest)")
    finally:
        await keys.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=3000)
    args = parser.parse_args()
    asyncio.run(measure(args.rounds, args.tokens))


if __name__ == "__main__":
    main()
