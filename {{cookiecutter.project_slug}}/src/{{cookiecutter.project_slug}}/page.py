"""The development chat page at `/` and the token endpoint it uses.

Only installed when `settings.serves_chat_page` (CHAT_PAGE on and ENVIRONMENT=development).
`GET /` serves one HTML page that loads the ChatKit web component from OpenAI's CDN and points
it at `/chatkit`. The page gets its bearer token from `POST /dev/token`, which mints one for
the fixed user DEV_USER and answers only in development, to a loopback client (127.0.0.1 or
::1) that asked for a loopback host name (no DNS rebinding) from this same origin. It is
never available in production: there, use your identity provider's tokens.
"""

from __future__ import annotations

import ipaddress
import json
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from .context import create_token
from .errors import error_response
from .settings import Settings

DEV_USER = "dev-user"
"""Who the page chats as (the `chat` command's default user too, so both see the same threads)."""
DEV_TOKEN_TTL_SECONDS = 3600
CHATKIT_SCRIPT_URL = "https://cdn.platform.openai.com/deployments/chatkit/chatkit.js"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
NO_STORE = {"Cache-Control": "no-store"}
PACKAGE = __package__ or __name__.rpartition(".")[0]


def page_config(settings: Settings) -> dict[str, Any]:
    """What the page's script needs to know (embedded in the page as JSON)."""
    return {
        "scriptUrl": CHATKIT_SCRIPT_URL,
        "apiPath": "/chatkit",
        "tokenPath": "/dev/token",
        "healthPath": "/health",
        "domainKey": settings.chatkit_domain_key,
        "user": DEV_USER,
        "serveCommand": f"uv run {PACKAGE} serve",
        "chatCommand": f"uv run {PACKAGE} chat",
    }


def render_page(settings: Settings) -> str:
    """The page's HTML with its configuration filled in."""
    template = files(PACKAGE).joinpath("static/chat.html").read_text("utf-8")
    config = json.dumps(page_config(settings)).replace("<", "\\u003c")
    return template.replace("__CHAT_PAGE_CONFIG__", config)


def is_loopback_address(host: str | None) -> bool:
    """Whether a client address is on this machine (127.0.0.0/8 or ::1)."""
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(value: str) -> str:
    """The host name of a Host header or an origin URL, without port or brackets."""
    netloc = urlsplit(value if "//" in value else f"//{value}").hostname
    return (netloc or "").lower()


def token_refusal(request: Request, settings: Settings) -> str | None:
    """Why `/dev/token` refuses this request, or None when it may answer."""
    if settings.environment != "development":
        return "development tokens are only available when ENVIRONMENT=development"
    client = request.client.host if request.client else None
    if not is_loopback_address(client):
        return (
            f"development tokens are only given to this machine (loopback), not to {client}; "
            "open the page at http://127.0.0.1:PORT/ on the machine that runs the app"
        )
    if host_name(request.headers.get("host", "")) not in LOOPBACK_NAMES:
        return "open the page through http://127.0.0.1 or http://localhost"
    origin = request.headers.get("origin")
    if origin is not None and host_name(origin) not in LOOPBACK_NAMES:
        return "development tokens are not given to other sites"
    return None


def install_chat_page(app: FastAPI, settings: Settings) -> None:
    """Add `GET /` (the chat page) and `POST /dev/token` (its development token)."""

    @app.get("/", include_in_schema=False)
    async def chat_page() -> HTMLResponse:
        """The development chat page."""
        return HTMLResponse(render_page(settings), headers=NO_STORE)

    @app.post("/dev/token", include_in_schema=False)
    async def dev_token(request: Request) -> JSONResponse:
        """A short-lived token for DEV_USER, for the chat page on this machine only."""
        refusal = token_refusal(request, settings)
        if refusal is not None:
            return error_response(403, "forbidden", refusal, headers=NO_STORE)
        token = create_token(DEV_USER, settings=settings, ttl_seconds=DEV_TOKEN_TTL_SECONDS)
        body = {"token": token, "user": DEV_USER, "expires_in": DEV_TOKEN_TTL_SECONDS}
        return JSONResponse(body, headers=NO_STORE)
