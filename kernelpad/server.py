"""One running kernelpad: storage, kernels, sessions and the HTTP server, started and stopped
together.

Stopping is the important half: every kernel this server started is shut down before it exits,
whether it stops on SIGTERM, SIGINT or a test's teardown.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import socket
import tempfile
from pathlib import Path

import tornado.httpserver
import tornado.netutil
import tornado.web

from kernelpad.config import Settings
from kernelpad.kernels import orphans
from kernelpad.kernels.languages import LanguageRegistry
from kernelpad.kernels.local import LocalKernelBackend
from kernelpad.kernels.pool import KernelPool
from kernelpad.sessions.manager import SessionManager
from kernelpad.sessions.store import SessionStore
from kernelpad.web.app import make_app

log = logging.getLogger(__name__)


class CannotListen(RuntimeError):
    """The address or port cannot be served (most often: already in use)."""


class KernelpadServer:
    """Starts and stops everything one kernelpad process holds."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = SessionStore(settings.database_path)
        self.registry = LanguageRegistry(allow=settings.languages)
        self.manager: SessionManager | None = None
        self.app: tornado.web.Application | None = None
        self.http: tornado.httpserver.HTTPServer | None = None
        self.port: int | None = None
        self._runtime_dir: Path | None = None
        self._sockets: list[socket.socket] = []

    async def start(self) -> int:
        """Open the database, find the languages, fill the pool, listen; return the port."""
        settings = self.settings
        # Claim the port first: a port in use should fail before any kernel starts.
        try:
            self._sockets = tornado.netutil.bind_sockets(settings.port, settings.host)
        except OSError as exc:
            raise CannotListen(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}"
            ) from exc
        self.port = self._sockets[0].getsockname()[1]
        version = await self.store.open()
        log.info("database %s at schema version %d", settings.database_path, version)
        await self.registry.refresh()
        for item in self.registry.installed():
            if item.available:
                log.info("language %s: kernel %s", item.language.id, item.kernel_name)
            else:
                log.warning(
                    "language %s unavailable: %s", item.language.id, item.unavailable_reason
                )
        # Kernels' Unix sockets need a short path; /tmp gives one wherever the data dir is.
        await asyncio.to_thread(orphans.sweep, Path(tempfile.gettempdir()))
        self._runtime_dir = Path(tempfile.mkdtemp(prefix=orphans.RUNTIME_PREFIX))
        orphans.claim(self._runtime_dir)
        log.info("kernel runtime files in %s", self._runtime_dir)
        backend = LocalKernelBackend(
            self._runtime_dir,
            self.registry.spec_manager,
            settings.data_dir,
            settings.kernel_start_timeout,
        )
        pool = KernelPool(backend, self.registry, settings.kernel_pool_size)
        self.manager = SessionManager(settings, self.store, self.registry, pool)
        await self.manager.start()
        self.app = app = make_app(settings, self.manager)
        # The handlers stream bodies and answer oversized ones with a JSON 413; this is only the
        # hard stop for a client that keeps sending.
        self.http = tornado.httpserver.HTTPServer(
            app, max_body_size=max(64 * 1024 * 1024, 4 * settings.max_request_size), xheaders=True
        )
        self.http.add_sockets(self._sockets)
        log.info("%s listening on http://%s:%d", settings.app_name, settings.host, self.port)
        return self.port

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop listening, shut every kernel down, answer requests under way, close the
        database."""
        if self.http is not None:
            self.http.stop()
        else:
            for sock in self._sockets:
                sock.close()
        if self.manager is not None:
            # Runs in progress end now, as stopped; their answers and history records follow.
            await self.manager.close()
        if self.http is not None:
            in_flight = self.app.settings["in_flight"] if self.app else set()
            deadline = asyncio.get_running_loop().time() + drain_timeout
            while in_flight and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            await self.http.close_all_connections()
        await self.store.close()
        if self._runtime_dir is not None:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
        log.info("%s stopped; all kernels shut down", self.settings.app_name)


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    server = KernelpadServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
        await stop.wait()
        log.info("signal received: shutting down")
    finally:
        await server.stop()
