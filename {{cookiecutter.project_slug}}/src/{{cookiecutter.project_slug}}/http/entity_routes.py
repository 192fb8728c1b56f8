"""`GET /entities?q=` (ChatKit.js `entities.onTagSearch`), `GET /entities/preview`
(`entities.onRequestPreview`) and `GET /chatkit/options` (what the composer offers: models and
tools), all for the bearer token's user."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from ..agent.assistant import tool_menu
from ..agent.composer import model_options
from ..agent.entity_types import EntityScope, preview_entity, search_entities
from ..context import UNSAFE_CHARACTERS, RequestContext, get_request_context
from ..errors import AppError
from ..settings import Settings

MAX_QUERY_CHARS = 200

router = APIRouter()


def refuse_control_characters(*values: str) -> None:
    """400 for a parameter PostgreSQL cannot take (NUL) or logs would hide (control chars)."""
    if any(UNSAFE_CHARACTERS.search(value) for value in values):
        raise AppError("parameters may not contain control characters", code="invalid_query")


@router.get("/entities")
async def entities(
    request: Request,
    context: Annotated[RequestContext, Depends(get_request_context)],
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS)] = "",
) -> JSONResponse:
    """The user's entities matching `q` (ChatKit `Entity` objects), at most 20."""
    refuse_control_characters(q)
    scope = EntityScope(request.app.state.store, context)
    found = await search_entities(scope, q.strip())
    return JSONResponse([entity.as_json() for entity in found])


@router.get("/entities/preview")
async def entity_preview(
    request: Request,
    context: Annotated[RequestContext, Depends(get_request_context)],
    entity_type: Annotated[str, Query(alias="type", max_length=MAX_QUERY_CHARS)],
    entity_id: Annotated[str, Query(alias="id", max_length=MAX_QUERY_CHARS)],
) -> JSONResponse:
    """`{"preview": <Basic widget> | null}` for one of the user's entities."""
    refuse_control_characters(entity_type, entity_id)
    scope = EntityScope(request.app.state.store, context)
    return JSONResponse({"preview": await preview_entity(scope, entity_type, entity_id)})


@router.get("/chatkit/options")
async def composer_options(
    request: Request, context: Annotated[RequestContext, Depends(get_request_context)]
) -> JSONResponse:
    """What the composer offers: `models` (MODELS) and `tools` (assistant.TOOL_MENU and the
    hosted tools that are on)."""
    settings: Settings = request.app.state.settings
    body: dict[str, Any] = {
        "models": model_options(settings),
        "tools": [option.as_json() for option in tool_menu(settings)],
    }
    return JSONResponse(body)
