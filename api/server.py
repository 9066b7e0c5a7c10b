"""The API's HTTP server: uvicorn inside the daemon's event loop, with the limits of `ApiSettings`.

The listening socket is bound before the application starts (a busy port is a one-line ConfigError).
uvicorn's own handling of X-Forwarded-For is off: only the application honours forwarding headers, and
only from `ApiSettings.trusted_proxies` (uvicorn would trust 127.0.0.1 by default, letting any local
client pick its address and so its rate-limit bucket).
"""

from __future__ import annotations

import contextlib
import errno
import resource
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI
from loguru import logger

from api.deps import ApiContext
from api.protocol import ConnectionLimits, guarded_protocol
from api.settings import ApiSettings
from core.errors import ConfigError

# File descriptors left for everything but API connections (store, cache, logs, metrics server...).
FD_SHARE_FOR_CONNECTIONS = 0.5
LISTEN_QUEUE = 2048  # connections the kernel holds until accepted


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn that leaves SIGTERM/SIGINT to the daemon, which stops every component in order, and says
    "API ready" only once it accepts connections."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for sock in sockets or ():
            # asyncio listens with `backlog`, which is also how many connections it accepts at once:
            # keep that small (see accept_batch) and the kernel's queue long.
            sock.listen(LISTEN_QUEUE)
        if self.started:
            host, port = self.config.host, self.config.port
            logger.bind(component="api").info("API ready on http://{}:{}/", host, port)


def bind_api_socket(host: str, port: int) -> socket.socket:
    """The API's listening socket, bound before the application starts: a busy port is a one-line
    ConfigError, never a started-then-failed server. Created as a TCP socket (IPPROTO_TCP), so that
    asyncio sets TCP_NODELAY on accepted connections: without it, each response on a kept-alive
    connection waits ~40 ms for the client's delayed ACK."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"API port {port} on {host} is already in use; choose another with --port (cryptostock api)"
                " or --api-port (cryptostock run)"
            ) from None
        raise ConfigError(f"cannot serve the API on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def connection_limit(settings: ApiSettings) -> int:
    """`max_connections`, lowered to half the process's file-descriptor limit: running out of
    descriptors would stop accepting altogether, probes included."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return settings.max_connections
    share = max(1, int(soft * FD_SHARE_FOR_CONNECTIONS))
    if share < settings.max_connections:
        logger.bind(component="api").warning(
            "at most {} API connections (max_connections {}): the file-descriptor limit is {}; raise it"
            " (ulimit -n, LimitNOFILE=) to allow more",
            share,
            settings.max_connections,
            soft,
        )
    return min(settings.max_connections, share)


def accept_batch(max_connections: int) -> int:
    """How many connections asyncio accepts in one go (it passes uvicorn's `backlog` on): each is closed
    to make room at the connection limit only a few loop iterations after its accept, so a burst of
    thousands accepted at once would run out of file descriptors first, and asyncio then stops accepting
    for a second (probes included)."""
    return max(16, min(LISTEN_QUEUE, max_connections // 8))


class ApiServer:
    """uvicorn serving `app` (made by `api.app.create_app`, whose settings and metrics it uses) inside
    our event loop."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        context: ApiContext = app.state.api
        settings = context.settings
        limits = ConnectionLimits(
            header_timeout=settings.header_timeout,
            body_timeout=settings.body_timeout,
            send_timeout=settings.send_timeout,
            max_connections=connection_limit(settings),
            max_body_bytes=settings.max_body_bytes,
        )
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=guarded_protocol(limits, context.metrics.http_shed),
            ws="websockets-sansio",
            lifespan="on",
            log_config=None,
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=settings.keep_alive_timeout,  # type: ignore[arg-type]
            h11_max_incomplete_event_size=settings.max_header_bytes,
            backlog=accept_batch(limits.max_connections),
        )
        self._server = _EmbeddedUvicorn(config)

    async def serve(self) -> None:
        config = self._server.config
        sock = bind_api_socket(config.host, config.port)
        try:
            await self._server.serve(sockets=[sock])
        finally:
            sock.close()
        if not self._server.started:
            raise ConfigError(f"API could not listen on {config.host}:{config.port}")

    def stop(self) -> None:
        self._server.should_exit = True

    def started(self) -> bool:
        """True once the API accepts connections."""
        return bool(self._server.started)
