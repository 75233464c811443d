"""Kernels in local processes, started and watched through jupyter_client.

Each kernel talks to the server over ZeroMQ's ``ipc`` transport (Unix sockets in the runtime
folder): nothing listens on a TCP port, and a kernel whose network is cut off (see the sandbox)
can still be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
from pathlib import Path

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from kernelpad.errors import KernelStartFailed
from kernelpad.kernels.base import MAX_CONTENT_SIZE, KernelBackend, KernelHandle, Message
from kernelpad.kernels.languages import InstalledLanguage
from kernelpad.kernels.orphans import death_signal_prefix

log = logging.getLogger(__name__)

# Settings of the server that must not reach code run in a kernel.
_PRIVATE_ENV_PREFIXES = ("KERNELPAD_", "JUPYTERHUB_")


class _KernelManager(AsyncKernelManager):
    """jupyter_client's manager, launching kernels that die with this server."""

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        return death_signal_prefix() + super().format_kernel_cmd(extra_arguments)


class LocalKernel(KernelHandle):
    """A kernel process of this machine, with its messages pumped into one inbox."""

    def __init__(
        self,
        kernel_id: str,
        language: InstalledLanguage,
        manager: AsyncKernelManager,
        client: AsyncKernelClient,
        workdir: Path,
        language_info: dict[str, object],
    ) -> None:
        self.kernel_id = kernel_id
        self.language = language
        self.language_info = language_info
        self._manager = manager
        self._client = client
        self._workdir = workdir
        self._inbox: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()
        self._current: str | None = None
        self._pumps = [
            asyncio.create_task(self._pump("iopub", client.iopub_channel)),
            asyncio.create_task(self._pump("shell", client.shell_channel)),
            asyncio.create_task(self._pump("stdin", client.stdin_channel)),
        ]
        self._closed = False

    async def _pump(self, name: str, channel: AsyncZMQSocketChannel) -> None:
        # Reading continuously, rather than on demand, means a message is never lost to a
        # cancelled read, and late messages of an interrupted run are simply skipped later.
        # It awaits recv_multipart() itself: get_msg() would poll first, a second wake-up per
        # message on the hot path.
        socket, session = channel.socket, channel.session
        while True:
            try:
                frames = await socket.recv_multipart()
            except asyncio.CancelledError:
                raise
            except Exception:  # socket closed under us: the kernel is going away
                if not self._closed:
                    log.debug("kernel %s: %s channel closed", self.kernel_id, name, exc_info=True)
                return
            try:
                _, parts = session.feed_identities(frames)
                # Headers first: content is decoded only for the run in progress, and only if
                # it is of a size worth decoding.
                msg = session.deserialize(parts, content=False)
                if msg["parent_header"].get("msg_id") != self._current or not self._current:
                    continue
                raw = msg["content"]
                msg["content_size"] = len(raw)
                msg["content_dropped"] = len(raw) > MAX_CONTENT_SIZE
                msg["content"] = {} if msg["content_dropped"] else session.unpack(raw)
            except Exception:
                log.warning("kernel %s: dropped a malformed %s message", self.kernel_id, name)
                continue
            self._inbox.put_nowait((name, msg))

    def execute_request(self, code: str) -> str:
        # stdin is always allowed: kernelpad answers input requests itself, or stops the run.
        msg_id: str = self._client.execute(code, silent=False, store_history=True, allow_stdin=True)
        self._current = msg_id
        return msg_id

    def input_reply(self, value: str) -> None:
        self._client.input(value)

    def end_request(self) -> None:
        self._current = None
        while not self._inbox.empty():
            self._inbox.get_nowait()

    async def receive(self, timeout: float) -> tuple[str, Message] | None:
        try:
            return self._inbox.get_nowait()
        except asyncio.QueueEmpty:
            pass
        try:
            async with asyncio.timeout(timeout):
                return await self._inbox.get()
        except TimeoutError:
            return None

    async def is_alive(self) -> bool:
        return not self._closed and await self._manager.is_alive()

    async def interrupt(self) -> None:
        await self._manager.interrupt_kernel()

    @property
    def pid(self) -> int | None:
        provisioner = self._manager.provisioner
        return getattr(provisioner, "pid", None) if provisioner else None

    async def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        self._client.stop_channels()
        try:
            await self._manager.shutdown_kernel(now=True)
        except Exception:
            log.warning("kernel %s did not shut down cleanly", self.kernel_id, exc_info=True)
        await asyncio.to_thread(shutil.rmtree, self._workdir, True)


class LocalKernelBackend(KernelBackend):
    """Starts kernels from the kernelspecs installed on this machine."""

    def __init__(
        self,
        runtime_dir: Path,
        spec_manager: KernelSpecManager,
        data_dir: Path,
        start_timeout: float = 60.0,
    ) -> None:
        self.runtime_dir = runtime_dir
        self.spec_manager = spec_manager
        self.data_dir = data_dir
        self.start_timeout = start_timeout

    def _kernel_env(self, language: InstalledLanguage) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(_PRIVATE_ENV_PREFIXES)
        }
        env.setdefault("JUPYTER_PLATFORM_DIRS", "1")
        data_dir = str(self.data_dir.resolve())
        for key, value in language.language.env.items():
            env[key] = value.replace("{data_dir}", data_dir)
        return env

    async def start(self, language: InstalledLanguage) -> LocalKernel:
        kernel_id = uuid.uuid4().hex
        # Unix socket paths are limited to about 100 bytes: keep the names short.
        sockets = self.runtime_dir / kernel_id[:12] if language.transport == "ipc" else None
        workdir = self.runtime_dir / "work" / kernel_id[:12]
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        manager = _KernelManager(
            kernel_name=language.kernel_name,
            kernel_spec_manager=self.spec_manager,
            connection_file=str(self.runtime_dir / f"kernel-{kernel_id[:12]}.json"),
            **({"transport": "ipc", "ip": str(sockets)} if sockets else {}),
        )
        client: AsyncKernelClient | None = None
        try:
            await manager.start_kernel(cwd=str(workdir), env=self._kernel_env(language))
            client = manager.client()
            client.start_channels(hb=False, control=False)  # stdin: input_request
            await client.wait_for_ready(timeout=self.start_timeout)
            info = await client.kernel_info(reply=True, timeout=self.start_timeout)
            # The language's environment, then a warm-up: a first run can cost a JVM several
            # times a later one, paid here before a session gets the kernel. Silent, so they
            # leave no execution count or history.
            for code in (language.language.startup, language.language.warmup):
                if code:
                    await client.execute_interactive(
                        code,
                        silent=True,
                        store_history=False,
                        timeout=self.start_timeout,
                        output_hook=lambda msg: None,
                    )
        except BaseException as exc:
            # Also on cancellation: a half-started kernel must not outlive its start.
            if client is not None:
                client.stop_channels()
            with contextlib.suppress(Exception):
                await asyncio.shield(manager.shutdown_kernel(now=True))
            await asyncio.to_thread(shutil.rmtree, workdir, True)
            if not isinstance(exc, Exception):
                raise
            raise KernelStartFailed(
                f"The {language.language.display_name} kernel ({language.kernel_name}) "
                f"did not start: {exc}"
            ) from exc
        log.info(
            "started %s kernel %s (pid %s)",
            language.language.id,
            kernel_id[:12],
            getattr(manager.provisioner, "pid", None),
        )
        language_info = info["content"].get("language_info", {})
        return LocalKernel(kernel_id, language, manager, client, workdir, language_info)
