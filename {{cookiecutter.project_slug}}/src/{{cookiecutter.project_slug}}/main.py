"""The FastAPI app: settings, store, model and ChatKit server wired to the routes (http/) and
middleware. Run it with `python -m <package> serve`, or any ASGI server: `<package>.main:app`."""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pydantic import ValidationError

from .agent.services import Services
from .chat.model import ModelGateway
from .chat.server import ChatServer
from .dev.embedded import EmbeddedPostgresMissing, resolve_url, stop_embedded
from .errors import install_error_handlers
from .http.attachment_routes import install_attachment_routes
from .http.chatkit import router as api_router
from .http.entity_routes import router as entities_router
from .http.image_routes import install_image_routes
from .http.middleware import RefuseNulMiddleware, RequestLogMiddleware
from .identity.provider import IssuerKeys
from .ops.gc_tuning import freeze_long_lived_objects
from .ops.logs import configure_logging
from .settings import EMBEDDED, Settings, describe_invalid, get_settings
from .store import PostgresStore
from .store.attachment_store import PostgresAttachmentStore, prepare_attachment
from .store.image_store import GeneratedImageStore, prepare_image

logger = logging.getLogger(__name__)

CHATKIT_HEADERS = ("Authorization", "Content-Type", "chatkit-frame-instance-id")
"""What a ChatKit front end sends cross-origin: its token, JSON, and ChatKit.js's frame id
(Accept-Language needs no permission)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Settings come from the environment and `.env` unless given."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.effective_log_format)
    store = PostgresStore(
        settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_pool_timeout,
        resolve_url=functools.partial(resolve_url, data_dir=settings.embedded_data_dir),
        # fresh links on every attachment and generated image the store hands out
        prepare_attachment=functools.partial(prepare_attachment, settings),
        prepare_image=functools.partial(prepare_image, settings),
    )
    gateway = ModelGateway(settings)
    attachments = PostgresAttachmentStore(store, settings)
    images = GeneratedImageStore(store, settings)
    metrics = None
    if settings.metrics:  # off: no route, no middleware, nothing measured
        from .ops.metrics import Metrics

        metrics = Metrics(store)
    server = ChatServer(store, gateway, attachments, images, Services(settings=settings), metrics)
    # Your identity provider's keys (AUTH_ISSUER): context.get_user reads app.state.issuer_keys.
    issuer_keys = (
        IssuerKeys(settings.auth_issuer, settings.auth_jwks_url) if settings.auth_issuer else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await store.open()
        except EmbeddedPostgresMissing as exc:  # development package not installed
            logger.error("%s", exc)
        except Exception as exc:  # store.health has said so; /health answers 503 until it is back
            logger.debug("database not reachable at startup: %s", type(exc).__name__)
        freeze_long_lived_objects()
        yield
        await gateway.close()
        if issuer_keys is not None:
            await issuer_keys.close()
        await store.close()
        if (tracing := getattr(app.state, "tracing", None)) is not None:
            tracing.shutdown()  # sends the last spans
        if settings.database_url == EMBEDDED:
            # Here: uvicorn ends the process by its signal, so exit handlers would not run.
            await asyncio.to_thread(stop_embedded, settings.embedded_data_dir)

    # The interactive docs and the schema describe every route: development only.
    docs = settings.environment == "development"
    app = FastAPI(
        title=__package__ or "chatkit",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings, app.state.store, app.state.server = settings, store, server
    app.state.issuer_keys = issuer_keys
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=[*CHATKIT_HEADERS, *settings.app_context_headers],
        )
    install_error_handlers(app)
    app.include_router(api_router)
    app.include_router(entities_router)
    install_attachment_routes(app, attachments)
    install_image_routes(app, images)
    if settings.serves_chat_page:
        from .dev.page import install_chat_page

        install_chat_page(app, settings)
    app.add_middleware(RefuseNulMiddleware)
    app.add_middleware(RequestLogMiddleware)
    if metrics is not None:
        from .ops.metrics import install_metrics

        install_metrics(app, metrics)
    if settings.otel_exporter_otlp_endpoint:  # the OpenTelemetry packages are imported only then
        from .ops.tracing import setup_tracing

        app.state.tracing = setup_tracing(app, settings)
    return app


@functools.cache
def _default_app() -> FastAPI:
    try:
        settings = get_settings()
    except ValidationError as exc:  # one line, never pydantic's (it prints the values)
        print(f"error: {describe_invalid(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    return create_app(settings)


def __getattr__(name: str) -> Any:
    """`<package>.main:app`, built on first access so importing this module reads no settings."""
    if name == "app":
        return _default_app()
    raise AttributeError(name)
