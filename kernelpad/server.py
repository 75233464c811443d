"""One running kernelpad: storage, kernels, sessions and the HTTP server, started and stopped
together.

Stopping is the important half: every kernel this server started is shut down before it exits,
whether it stops on SIGTERM, SIGINT or a test's teardown.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import tornado.httpserver
import tornado.netutil
import tornado.web

from kernelpad import gc_pauses
from kernelpad.config import Settings
from kernelpad.errors import KernelpadError
from kernelpad.kernel_gateway.backend import GatewayBackend
from kernelpad.kernel_gateway.client import GatewayClient, GatewaySettings, GatewayUnavailable
from kernelpad.kernels import runtime
from kernelpad.kernels.base import KernelBackend
from kernelpad.kernels.languages import LanguageRegistry
from kernelpad.kernels.local import LocalKernelBackend
from kernelpad.kernels.pool import KernelPool
from kernelpad.kernels.sandbox import Sandbox, SandboxLimits
from kernelpad.loop_lag import LagProbe
from kernelpad.sessions.access import DocumentLimits, RunLimits
from kernelpad.sessions.manager import SessionManager, SessionOptions
from kernelpad.sessions.runs import RunSettings
from kernelpad.sessions.storage.database import DatabaseUnavailable
from kernelpad.sessions.storage.factory import database_for
from kernelpad.sessions.storage.store import SessionStore
from kernelpad.web.app import make_app

log = logging.getLogger(__name__)

T = TypeVar("T")


class CannotListen(RuntimeError):
    """The address or port cannot be served (most often: already in use)."""


class NoSandbox(RuntimeError):
    """The sandbox is on but cannot be used on this machine."""


class NoGateway(RuntimeError):
    """GATEWAY_URL is set but the gateway does not answer."""


class NoRuntimeDir(RuntimeError):
    """The kernels' runtime folder cannot be made or is not safe to use."""


class NoHub(RuntimeError):
    """JupyterHub login is on but cannot work: jupyterhub missing, or the Hub's service
    environment incomplete."""


class KernelpadServer:
    """Starts and stops everything one kernelpad process holds."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = SessionStore(database_for(settings.database_url, settings.database_path))
        self.registry = LanguageRegistry(allow=settings.languages)
        self.manager: SessionManager | None = None
        self.app: tornado.web.Application | None = None
        self.http: tornado.httpserver.HTTPServer | None = None
        self.port: int | None = None
        self._sockets: list[socket.socket] = []
        self.sandbox: Sandbox | None = None
        self.lag: LagProbe | None = None
        self.gateway: GatewayClient | None = None

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
        hub_auth = self._hub_auth()
        self.gateway = self._gateway_client()
        # Making the sandbox runs a box once (whether user namespaces can be disabled).
        self.sandbox = None if self.gateway else await asyncio.to_thread(self._sandbox)
        version = await self._open_store()
        log.info("database: %s, at schema version %d", self.store.database, version)
        if self.gateway is not None:
            self.registry.use_remote(await self._gateway_specs(self.gateway))
        else:
            await self.registry.refresh()
            if self.sandbox is not None:
                self.registry.withhold(self.sandbox.unavailable)
        for item in self.registry.installed():
            if item.available:
                log.info("language %s: kernel %s", item.language.id, item.kernel_name)
            else:
                log.warning(
                    "language %s unavailable: %s", item.language.id, item.unavailable_reason
                )
        backend: KernelBackend
        if self.gateway is not None:
            backend = GatewayBackend(self.gateway, settings.kernel_start_timeout)
        else:
            runtime_dir = await asyncio.to_thread(self._runtime)
            backend = LocalKernelBackend(
                runtime_dir,
                self.registry.spec_manager,
                settings.data_dir,
                settings.kernel_start_timeout,
                self.sandbox,
                settings.kernel_nice,
            )
        pool = KernelPool(backend, self.registry, settings.kernel_pool_size)
        self.manager = SessionManager(session_options(settings), self.store, self.registry, pool)
        await self.manager.start()
        self.app = app = make_app(settings, self.manager, hub_auth)
        # The handlers stream bodies and answer oversized ones with a JSON 413; this is only the
        # hard stop for a client that keeps sending.
        self.http = tornado.httpserver.HTTPServer(
            app, max_body_size=max(64 * 1024 * 1024, 4 * settings.max_request_size), xheaders=True
        )
        self.http.add_sockets(self._sockets)
        # What start-up made, set aside; then every pause timed (serving's, not start-up's).
        gc_pauses.settle()
        gc_pauses.watch()
        self.lag = LagProbe(asyncio.get_running_loop())
        self.lag.start()
        log.info(
            "%s listening on http://%s:%d (event loop: %s)",
            settings.app_name,
            settings.host,
            self.port,
            type(asyncio.get_running_loop()).__module__.partition(".")[0],
        )
        return self.port

    def _hub_auth(self) -> Any:
        """The Hub's OAuth client (a ``HubOAuth``) when interviewers log in through JupyterHub."""
        if not self.settings.jupyterhub_login:
            return None
        try:
            from kernelpad.web import hub
        except ImportError as exc:
            raise NoHub(
                f"JupyterHub login is on, but {exc.name or 'jupyterhub'} is not installed:"
                " pip install 'kernelpad[jupyterhub]'."
            ) from exc
        try:
            return hub.hub_auth(self.settings)
        except hub.HubNotConfigured as exc:
            raise NoHub(str(exc)) from exc

    def _gateway_client(self) -> GatewayClient | None:
        settings = self.settings
        if not settings.gateway_url:
            return None
        log.info(
            "kernels run on the gateway at %s: kernelpad's own sandbox does not apply to them",
            settings.gateway_url,
        )
        return GatewayClient(
            GatewaySettings(
                url=settings.gateway_url,
                auth_token=settings.gateway_auth_token,
                headers=settings.gateway_headers,
                request_timeout=settings.gateway_request_timeout,
                connect_timeout=settings.gateway_connect_timeout,
                validate_cert=settings.gateway_validate_cert,
                kernel_env={"KERNEL_USERNAME": settings.gateway_kernel_username},
            )
        )

    async def _open_store(self) -> int:
        """Open the database, waiting a while for a database server that is starting too."""
        return await self._patiently(self.store.open, DatabaseUnavailable)

    async def _gateway_specs(self, gateway: GatewayClient) -> dict[str, Any]:
        """The gateway's kernelspecs, waiting a while for a gateway that is starting too."""
        try:
            return await self._patiently(gateway.kernelspecs, GatewayUnavailable)
        except GatewayUnavailable as exc:
            raise NoGateway(exc.message) from exc

    async def _patiently(
        self, attempt: Callable[[], Awaitable[T]], unavailable: type[KernelpadError]
    ) -> T:
        """``attempt()``, tried again after 0.5, 1, 2, 4, 8, 8, ... s while it raises
        ``unavailable`` (a service starting along with kernelpad), the pauses adding up to
        ``startup_wait`` seconds; the last failure stops the start, and lets the port go."""
        left, pause = self.settings.startup_wait, 0.5
        while left > 0:
            try:
                return await attempt()
            except unavailable as exc:
                pause = min(pause, left)
                log.warning("%s; trying again in %g s", exc.message, pause)
                await asyncio.sleep(pause)
                left -= pause
                pause = min(pause * 2, 8)
        try:
            return await attempt()
        except unavailable:
            self._close_sockets()
            raise

    def _close_sockets(self) -> None:
        """Let the port go (a start that fails, or a stop before the HTTP server took it)."""
        for sock in self._sockets:
            sock.close()

    def _runtime(self) -> Path:
        """The kernels' runtime folder, cleared of what kernels whose keeper is gone left."""
        try:
            folder = runtime.runtime_dir(self.settings.kernel_runtime_dir)
        except (OSError, RuntimeError) as exc:
            self._close_sockets()
            raise NoRuntimeDir(str(exc)) from exc
        # Older than any start: a kernel starting now has a folder before its keeper listens.
        for name in runtime.sweep(folder, older_than=self.settings.kernel_start_timeout + 60):
            if self.sandbox is not None:
                self.sandbox.release(name)
        log.info("kernel runtime files in %s", folder)
        return folder

    def _sandbox(self) -> Sandbox | None:
        settings = self.settings
        if not settings.sandbox:
            log.warning(
                "THE SANDBOX IS OFF (SANDBOX=false): kernels run as %s, with the network and"
                " every file this user may read, the database included. Run only trusted code.",
                getpass.getuser(),
            )
            return None
        limits = SandboxLimits(
            memory_mb=settings.kernel_memory_limit_mb,
            processes=settings.kernel_max_processes,
            cpu_seconds=settings.kernel_cpu_time_limit,
            file_size_mb=settings.kernel_max_file_size_mb,
            open_files=settings.kernel_max_open_files,
            tmp_mb=settings.kernel_tmp_size_mb,
        )
        try:
            sandbox = Sandbox.create(settings.sandbox_user, limits)
        except RuntimeError as exc:
            self._close_sockets()
            raise NoSandbox(
                f"the kernel sandbox cannot be used: {exc}. Set KERNELPAD_SANDBOX=false (or"
                " --sandbox false) to run kernels unsandboxed, only where all code is trusted."
            ) from exc
        log.info("kernels run sandboxed as %s (%s)", settings.sandbox_user, sandbox.describe())
        return sandbox

    async def stop(self, drain_timeout: float = 5.0) -> None:
        """Stop listening, shut every kernel down, answer requests under way, close the
        database."""
        if self.lag is not None:
            self.lag.stop()
        if self.http is not None:
            self.http.stop()
        else:
            self._close_sockets()
        if self.manager is not None:
            # Runs in progress end now, as stopped; their answers and history records follow.
            try:
                await self.manager.close()
            except Exception:
                # What is left must still close: the pool, the connections, the database.
                log.exception("shutting sessions and kernels down failed")
        if self.http is not None:
            in_flight = self.app.settings["in_flight"] if self.app else set()
            deadline = asyncio.get_running_loop().time() + drain_timeout
            while in_flight and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            await self.http.close_all_connections()
        await self.store.close()
        if self.gateway is not None:
            self.gateway.close()
        kept = self.settings.kernels_on_exit == "keep"
        log.info(
            "%s stopped; %s",
            self.settings.app_name,
            "sessions' kernels kept for the next server" if kept else "all kernels shut down",
        )


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


def session_options(settings: Settings) -> SessionOptions:
    """The settings the sessions layer reads, as its own options (it never reads config)."""
    return SessionOptions(
        questions_dir=settings.questions_path,
        session_id_length=settings.session_id_length,
        max_participants=settings.max_participants_per_session,
        max_age_hours=settings.max_session_age_hours,
        kernel_idle_timeout=settings.kernel_idle_timeout,
        cull_interval=settings.cull_interval,
        lease_seconds=settings.session_lease_seconds,
        runs=RunSettings(
            time_limit=settings.code_execution_timeout,
            interrupt_grace=settings.interrupt_grace,
            input_limit=settings.input_timeout,
            max_output=settings.code_max_output_size,
            flood_limit=settings.output_flood_limit,
            queue_size=settings.execution_queue_size,
            keep_kernels=settings.kernels_on_exit == "keep",
            reattach_grace=settings.kernel_reattach_grace,
        ),
        run_limits=RunLimits(
            enabled=settings.enable_server_execution,
            max_code_size=settings.max_code_size,
            runs_per_minute=settings.rate_limit_executions_per_minute,
        ),
        document_limits=DocumentLimits(
            max_cell_size=settings.max_cell_size, max_notebook_size=settings.max_notebook_size
        ),
    )
