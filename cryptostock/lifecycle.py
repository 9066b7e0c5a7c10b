"""What every daemon shares: logging, build info, metrics + health server, SIGTERM/SIGINT handling."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from loguru import logger

from cryptostock.settings import CommonSettings
from monitoring.health import Health
from monitoring.logger import flush_logs, setup_logging
from monitoring.server import set_build_info, start_metrics_server
from monitoring.tracing import configure_tracing, shutdown_tracing

SHUTDOWN_TIMEOUT = 8.0  # seconds for all of a daemon's parts to stop, together


@dataclass
class DaemonContext:
    service: str
    health: Health
    stop: asyncio.Event
    metrics_url: str


def setup_logging_from(settings: CommonSettings, service: str, *, console: bool = True) -> None:
    """Logging as the command's settings say (every command: daemons, and one-shot ones without the
    console, whose console gets their result line)."""
    setup_logging(
        service=service,
        level=settings.log_level,
        json=settings.log_format == "json",
        log_dir=settings.log_dir,
        retention_days=settings.log_retention_days,
        security_retention_days=settings.log_security_retention_days,
        sample_rate=settings.log_sample_rate,
        console=console,
    )


@asynccontextmanager
async def daemon_context(service: str, settings: CommonSettings) -> AsyncIterator[DaemonContext]:
    """Set up a daemon's monitoring; `stop` is set by SIGTERM or SIGINT."""
    setup_logging_from(settings, service)
    traced = configure_tracing(service)  # OTEL_* variables; off unless an exporter or endpoint is set
    set_build_info(service)
    health = Health()
    await health.start()
    server = start_metrics_server(port=settings.metrics_port, addr=settings.metrics_addr, health=health)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _on_signal, sig, stop)
    log = logger.bind(component="daemon", service=service)
    log.info("{} started; metrics and health on {}", service, server.url)
    if traced:
        log.info("tracing on: spans exported as OTEL_* variables say (see docs/operations.md)")
    try:
        yield DaemonContext(service=service, health=health, stop=stop, metrics_url=server.url)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        server.stop()
        await health.stop()
        shutdown_tracing()  # exports the spans still pending
        log.info("{} stopped", service)
        flush_logs()


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    logger.bind(component="daemon").info("received {}: stopping", sig.name)
    stop.set()
