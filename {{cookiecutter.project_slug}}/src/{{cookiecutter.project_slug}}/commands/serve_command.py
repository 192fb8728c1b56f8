"""`serve`: uvicorn with connection limits and timeouts, after checking the configuration can
serve (packages installed, port free, /metrics not exposed)."""

from __future__ import annotations

import argparse
import errno
import functools
import socket
import sys
from typing import Any

from ..settings import Settings, get_settings

PACKAGE = __name__.split(".")[0]


def http_protocol(header_timeout: float, max_header_bytes: int) -> Any:
    """uvicorn's httptools protocol with a header deadline and size limit, or "auto" (h11,
    size-limited only) when httptools is not installed."""
    try:
        from ..compat.uvicorn_http import HeaderGuardProtocol
    except ImportError:
        return "auto"
    return functools.partial(
        HeaderGuardProtocol, header_timeout=header_timeout, max_header_bytes=max_header_bytes
    )


def missing_package(settings: Settings) -> str | None:
    """What the configuration needs but is not installed (one line), or None."""
    from ..dev.embedded import MISSING_MESSAGE, embedded_available
    from ..settings import EMBEDDED

    if settings.database_url == EMBEDDED and not embedded_available():
        return MISSING_MESSAGE
    if settings.otel_exporter_otlp_endpoint:
        from ..ops.tracing import missing_packages

        return missing_packages()
    return None


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port, so uvicorn could not bind it."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError:
        return False  # uvicorn reports a host it cannot resolve itself
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def unsafe_to_serve(settings: Settings, host: str) -> str | None:
    """Why `serve --host host` must not start with these settings (one line), or None."""
    from ..ops.metrics import is_loopback_host

    if settings.metrics and settings.metrics_token is None and not is_loopback_host(host):
        return (
            f"METRICS=true without METRICS_TOKEN would serve /metrics to anyone who reaches "
            f"--host {host}: set METRICS_TOKEN, or bind to 127.0.0.1"
        )
    return None


def serve_options(args: argparse.Namespace) -> dict[str, Any]:
    """What `serve` hands to uvicorn.run besides the app (connection limits and timeouts)."""
    from ..ops.logs import logging_config

    return {
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "reload": args.reload,
        "timeout_keep_alive": args.keep_alive,
        "limit_concurrency": args.limit_concurrency or None,
        "backlog": args.backlog,
        "h11_max_incomplete_event_size": args.max_header_bytes,
        "http": http_protocol(args.header_timeout, args.max_header_bytes),
        "log_level": get_settings().log_level.lower(),
        # uvicorn's own lines (startup, access) in the app's format, in every process it starts
        "log_config": logging_config(get_settings().log_level, get_settings().effective_log_format),
    }


def serve_command(args: argparse.Namespace) -> int:
    """Run the app under uvicorn until stopped; exit 2 when the configuration cannot serve."""
    import uvicorn

    get_settings()  # fail fast, with a clear message, on bad configuration
    problem = missing_package(get_settings()) or unsafe_to_serve(get_settings(), args.host)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.port and port_in_use(args.host, args.port):
        print(
            f"error: port {args.port} on {args.host} is in use (is the app already running?): "
            f"stop that process, or serve on another port with --port {args.port + 1}",
            file=sys.stderr,
        )
        return 2
    uvicorn.run(f"{PACKAGE}.main:app", **serve_options(args))
    return 0
