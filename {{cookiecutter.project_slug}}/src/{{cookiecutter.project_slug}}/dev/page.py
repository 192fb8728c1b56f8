"""The development chat page at `/` and its token endpoint `POST /dev/token`: development
only, loopback only (docs/design_decisions.md, "The development chat page")."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
from importlib.resources import files
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from ..context import create_token
from ..errors import error_response
from ..settings import DEFAULT_CHATKIT_SCRIPT_URL, Settings

DEV_USER = "dev-user"  # the `chat` command's default user too: both see the same threads
DEV_TOKEN_TTL_SECONDS = 3600
CHATKIT_SCRIPT_URL = DEFAULT_CHATKIT_SCRIPT_URL  # CHATKIT_SCRIPT_URL's default
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
CHATKIT_ORIGIN = "https://cdn.platform.openai.com"
OPENAI_ORIGINS = f"{CHATKIT_ORIGIN} https://*.openai.com https://chatgpt.com"
NO_STORE = {"Cache-Control": "no-store"}
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
PACKAGE = __name__.split(".")[0]


def page_config(settings: Settings) -> dict[str, Any]:
    return {
        "scriptUrl": settings.chatkit_script_url,
        "apiPath": "/chatkit",
        "tokenPath": "/dev/token",
        "healthPath": "/health",
        "optionsPath": "/chatkit/options",
        "entitiesPath": "/entities",
        "domainKey": settings.chatkit_domain_key,
        # The composer's attachments (two-phase), within the server's limits.
        "attachments": {
            "maxCount": settings.max_attachments_per_message,
            "maxSize": settings.max_attachment_bytes,
        },
        "user": DEV_USER,
        "serveCommand": f"python3 scripts/uv.py run {PACKAGE} serve",
        "chatCommand": f"python3 scripts/uv.py run {PACKAGE} chat",
    }


def render_page(settings: Settings) -> str:
    template = files(__name__.rpartition(".")[0]).joinpath("static/chat.html").read_text("utf-8")
    config = json.dumps(page_config(settings)).replace("<", "\\u003c")
    return template.replace("__CHAT_PAGE_CONFIG__", config)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(
    html: str, public_url: str | None = None, script_url: str = CHATKIT_SCRIPT_URL
) -> str:
    """Scripts: its own (by hash) and ChatKit.js's origin (CHATKIT_SCRIPT_URL); frames and
    requests: OpenAI; framed by nothing."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in INLINE_SCRIPT.findall(html)
    )
    app = "'self'"
    if public_url:
        parts = urlsplit(public_url)
        app += f" {parts.scheme}://{parts.netloc}"
    script = origin_of(script_url)
    fonts = CHATKIT_ORIGIN if script == CHATKIT_ORIGIN else f"{script} {CHATKIT_ORIGIN}"
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {hashes} {script}",
            "style-src 'self' 'unsafe-inline'",
            f"img-src {app} data: blob: https:",
            f"font-src 'self' data: {fonts}",
            f"connect-src {app} {OPENAI_ORIGINS}",
            f"frame-src {OPENAI_ORIGINS}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def is_loopback_address(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(value: str) -> str:
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
    page = render_page(settings)
    page_headers = {
        **NO_STORE,
        "Content-Security-Policy": content_security_policy(
            page, settings.public_url, settings.chatkit_script_url
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
    }

    @app.get("/", include_in_schema=False)
    async def chat_page() -> HTMLResponse:
        return HTMLResponse(page, headers=page_headers)

    @app.post("/dev/token", include_in_schema=False)
    async def dev_token(request: Request) -> JSONResponse:
        refusal = token_refusal(request, settings)
        if refusal is not None:
            return error_response(403, "forbidden", refusal, headers=NO_STORE)
        token = create_token(DEV_USER, settings=settings, ttl_seconds=DEV_TOKEN_TTL_SECONDS)
        body = {"token": token, "user": DEV_USER, "expires_in": DEV_TOKEN_TTL_SECONDS}
        return JSONResponse(body, headers=NO_STORE)
