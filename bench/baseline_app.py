"""The benchmark's baseline: a ChatKit service written exactly as the ChatKit guide shows it.

- FastAPI endpoint: `result = await server.process(await request.body(), context)`;
- `respond` loads history with `limit=20, order="asc"` (the guide's quickstart: the oldest
  twenty items, so after ten turns the model no longer sees the new message), converts it
  with `simple_to_agent_input`, runs `Runner.run_streamed` and streams
  `stream_agent_response`;
- a guide-style store: a new synchronous psycopg connection per call (the baked project's
  own `benchmarks/guide_store.py`).

The user id comes from the same HS256 bearer token the real app takes, so both services
see the same requests. Run (from the baked project, with its Python):
`BENCH_PROJECT=. BASELINE_DATABASE_URL=postgresql://... AUTH_SECRET=... OPENAI_BASE_URL=... \
 python -m uvicorn baseline_app:app --app-dir bench --port 8100`
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
from agents import Agent, Runner
from chatkit.agents import AgentContext, simple_to_agent_input, stream_agent_response
from chatkit.server import ChatKitServer, StreamingResult
from chatkit.types import ThreadMetadata, ThreadStreamEvent, UserMessageItem
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from guide import GuideContext, GuideUser, load_guide_store  # bench/ is on the path (--app-dir)

assistant = Agent(
    name="assistant",
    instructions="You are a helpful assistant.",
    model=os.environ.get("OPENAI_MODEL", "gpt-4.1"),
)


class GuideServer(ChatKitServer[Any]):
    """The guide's server: recent history, the agent, and its streamed events."""

    async def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,
        context: Any,
    ) -> AsyncIterator[ThreadStreamEvent]:
        items_page = await self.store.load_thread_items(
            thread.id, after=None, limit=20, order="asc", context=context
        )
        input_items = await simple_to_agent_input(items_page.data)
        agent_context = AgentContext(thread=thread, store=self.store, request_context=context)
        result = Runner.run_streamed(assistant, input_items, context=agent_context)
        async for event in stream_agent_response(agent_context, result):
            yield event


def _make_store() -> Any:
    guide = load_guide_store(Path(os.environ["BENCH_PROJECT"]))
    return guide.GuideStore(os.environ["BASELINE_DATABASE_URL"])


app = FastAPI()
server = GuideServer(_make_store())
SECRET = os.environ["AUTH_SECRET"]


@app.post("/chatkit")
async def chatkit_endpoint(request: Request) -> Response:
    """The guide's endpoint, with the user id taken from the bearer token."""
    token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    try:
        user_id = jwt.decode(token, SECRET, algorithms=["HS256"])["sub"]
    except (jwt.PyJWTError, KeyError) as exc:
        raise HTTPException(status_code=401, detail="unauthorized") from exc
    context = GuideContext(user=GuideUser(id=user_id))
    result = await server.process(await request.body(), context)
    if isinstance(result, StreamingResult):
        return StreamingResponse(result, media_type="text/event-stream")
    return Response(content=result.json, media_type="application/json")
