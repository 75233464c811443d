"""Fixtures that start real kernelpad servers on loopback, with real kernels and SQLite files
(and a real PostgreSQL server for the tests that store in it).

Each test module gets its own server (``server`` fixture, module scope) so that tests in a module
share its started kernels; a module needing other settings overrides ``server_settings``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")

from kernelpad.cli import loop_factory  # noqa: E402
from kernelpad.config import Settings  # noqa: E402
from kernelpad.server import KernelpadServer  # noqa: E402
from kernelpad.sessions.manager import SessionManager  # noqa: E402
from tests import processes  # noqa: E402
from tests.postgresql import PostgreSQLServer, postgresql_server  # noqa: E402


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Every async test, its in-process servers and clients, runs on the event loop kernelpad
    serves on by default (uvloop); ``test_lifecycle`` serves on Python's own as well."""
    return {"uvloop": loop_factory()}


@dataclass
class Response:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """A small JSON client of one kernelpad server."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.client = AsyncHTTPClient(force_instance=True)

    async def request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        body: bytes | str | None = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> Response:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            body = json.dumps(json_body)
        if body is not None:
            # A JSON client: a body is JSON unless a test says otherwise.
            all_headers.setdefault("Content-Type", "application/json")
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        request = HTTPRequest(
            self.base_url + path,
            method=method,
            body=body,
            headers=all_headers,
            request_timeout=timeout,
            allow_nonstandard_methods=True,
        )
        try:
            response = await self.client.fetch(request, raise_error=False)
        except HTTPClientError as exc:  # pragma: no cover - only without a response
            raise AssertionError(f"{method} {path}: no response: {exc}") from exc
        return Response(response.code, response.headers, response.body or b"")

    async def get(self, path: str, **kw: Any) -> Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json_body: Any = None, **kw: Any) -> Response:
        return await self.request("POST", path, json_body, **kw)

    async def put(self, path: str, json_body: Any = None, **kw: Any) -> Response:
        return await self.request("PUT", path, json_body, **kw)

    async def patch(self, path: str, json_body: Any = None, **kw: Any) -> Response:
        return await self.request("PATCH", path, json_body, **kw)

    async def delete(self, path: str, **kw: Any) -> Response:
        return await self.request("DELETE", path, **kw)

    async def create_session(self, **fields: Any) -> dict[str, Any]:
        response = await self.post("/api/v1/sessions", {"host_name": "Grace", **fields})
        assert response.status == 201, response.body
        session: dict[str, Any] = response.json
        return session

    async def execute(self, session_id: str, code: str, **fields: Any) -> dict[str, Any]:
        response = await self.post(
            f"/api/v1/sessions/{session_id}/execute", {"code": code, **fields}
        )
        assert response.status == 200, response.body
        result: dict[str, Any] = response.json
        return result

    def close(self) -> None:
        self.client.close()


@dataclass
class RunningServer:
    server: KernelpadServer
    settings: Settings
    api: Api

    @property
    def base_url(self) -> str:
        return self.api.base_url

    @property
    def manager(self) -> SessionManager:
        """The session manager of the server now running (it has one once started)."""
        manager = self.server.manager
        assert manager is not None, "the server has not started"
        return manager


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a server under test: any free port, its own data dir, no rate limit."""
    values: dict[str, Any] = {
        "port": 0,
        "data_dir": data_dir,
        "rate_limit_executions_per_minute": 0,
        "interrupt_grace": 1.0,
        "kernel_pool_size": {"python": 1},
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_server(settings: Settings) -> AsyncIterator[RunningServer]:
    server = KernelpadServer(settings)
    port = await server.start()
    api = Api(f"http://127.0.0.1:{port}")
    running = RunningServer(server, settings, api)
    try:
        yield running
    finally:
        api.close()
        # The server now running: a test may have restarted it.
        await running.server.stop()


@pytest.fixture(scope="module")
def server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of the module's server; override in a module for other limits."""
    return make_settings(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
async def server(server_settings: Settings) -> AsyncIterator[RunningServer]:
    async with running_server(server_settings) as running:
        yield running


@pytest.fixture(scope="module")
def api(server: RunningServer) -> Api:
    return server.api


async def eventually(predicate: Callable[[], Any], what: str, timeout: float = 30) -> None:
    """Poll ``predicate`` (plain or async) until it is true: for waiting on a state, never for
    asserting how long something takes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie not yet reaped counts as exited)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


# Servers in their own process, for signals and restarts.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``python -m kernelpad`` in a child process."""

    def __init__(self, data_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log = data_dir / f"server-{self.port}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log, "wb")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kernelpad",
                "--port",
                str(self.port),
                "--data-dir",
                str(data_dir),
                "--rate-limit-executions-per-minute",
                "0",
                *args,
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self.base_url = f"http://127.0.0.1:{self.port}"

    def wait_listening(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()}")
            # The port is bound before start-up is done: wait for an answer, not a connection.
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.base_url}/api/v1/health", timeout=2),
            ):
                return
            time.sleep(0.1)
        raise AssertionError(f"server did not listen: {self.log.read_text()}")

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._log_file.close()

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it; SIGKILL only if it does not exit."""
        processes.stop(self.proc)
        self.wait()


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[type[ServerProcess]]:
    """Start servers with ``server_process(data_dir, *flags)``; all are killed at the end.
    The test's servers share a runtime folder of their own (unless a flag names one), so that
    a kernel one leaves for the next (a server killed) is the test's alone, and goes with it."""
    started: list[ServerProcess] = []
    runtime = Path(tempfile.mkdtemp(prefix="kp-"))  # short: Unix sockets' paths are

    def start(data_dir: Path = tmp_path / "data", *args: str) -> ServerProcess:
        if "--kernel-runtime-dir" not in args:
            args = (*args, "--kernel-runtime-dir", str(runtime))
        proc = ServerProcess(data_dir, *args)
        started.append(proc)
        proc.wait_listening()
        return proc

    yield start  # type: ignore[misc]
    for proc in started:
        proc.stop()
    for process in psutil.process_iter(["cmdline"]):
        if str(runtime) in " ".join(process.info["cmdline"] or []):
            with contextlib.suppress(psutil.Error):
                process.kill()
    shutil.rmtree(runtime, ignore_errors=True)


# PostgreSQL, for the tests that store in it (tests/postgresql.py).


@pytest.fixture(scope="session")
def postgresql() -> Iterator[PostgreSQLServer]:
    """A throw-away PostgreSQL server on loopback, started for the first test that needs it."""
    with postgresql_server(free_port()) as server:
        yield server


@pytest.fixture
def postgresql_url(postgresql: PostgreSQLServer) -> str:
    """The URL of a new, empty PostgreSQL database."""
    return postgresql.new_database()
