"""The generated project's fake OpenAI server, plus two control routes for the benchmark.

Run with the baked project's Python: `python bench/fake_model.py --project DIR --port P`.
It imports `tests/support/fake_openai.py` from the baked project (the same fake its tests use) and
adds:

- `POST /bench/config` with `{"tokens", "delay", "first_token_delay"}`: the answer's shape for
  the requests that follow (the driver switches between a realistic and a zero-delay model);
- `GET /bench/requests?last=N`: how many requests the fake saw, and the last N bodies
  (the scale-out check reads what the model was sent); `DELETE /bench/requests` forgets them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def build_app(project: Path, tokens: int, delay: float, first_token_delay: float) -> Any:
    """The fake's Starlette app with the benchmark routes added."""
    from driver import generated  # bench/ is on the path: this script is in it
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    fakes = generated.fake_openai(project)
    model = fakes.FakeModel(tokens=tokens, delay=delay, first_token_delay=first_token_delay)
    fake = fakes.FakeOpenAI(model)

    async def configure(request: Request) -> JSONResponse:
        body = await request.json()
        for name in ("tokens", "delay", "first_token_delay"):
            if name in body:
                setattr(model, name, type(getattr(model, name))(body[name]))
        return JSONResponse(
            {"tokens": model.tokens, "delay": model.delay, "first": model.first_token_delay}
        )

    async def requests(request: Request) -> JSONResponse:
        if request.method == "DELETE":
            # Keep the count: the fake numbers its response and item ids by it, and a
            # store with globally unique item ids must not see an id twice.
            model.requests[:] = [{}] * len(model.requests)
            model.paths.clear()
            model.first_token_at.clear()
            return JSONResponse({"count": len(model.requests)})
        last = int(request.query_params.get("last", "0"))
        bodies = [b for b in model.requests[-last:] if b] if last > 0 else []
        return JSONResponse(
            {"count": len(model.requests), "completed": model.completed, "last": bodies}
        )

    fake.app.router.routes.extend(
        [
            Route("/bench/config", configure, methods=["POST"]),
            Route("/bench/requests", requests, methods=["GET", "DELETE"]),
        ]
    )
    return fake.app


def main() -> None:
    """Serve the fake model on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True, help="the baked project")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    args = parser.parse_args()
    import uvicorn

    app = build_app(args.project, args.tokens, args.delay, args.first_token_delay)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
