"""Kernels in local processes, started and watched through jupyter_client.

Each kernel has a folder of its own in the runtime folder: its connection file and, for the
kernels that talk over ZeroMQ's ``ipc`` transport, its Unix sockets. A sandboxed kernel (see
:mod:`kernelpad.kernels.sandbox`) always does: its network is cut off, so a kernel that only
speaks TCP is relayed by its keeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from pathlib import Path
from typing import Any

import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager

from kernelpad.errors import KernelStartFailed
from kernelpad.kernels.base import KernelBackend
from kernelpad.kernels.kept import KeptKernelManager, KeptProvisioner, Lease, kernel_info_once_idle
from kernelpad.kernels.kernel_output import KernelOutput
from kernelpad.kernels.languages import InstalledLanguage
from kernelpad.kernels.local_kernel import LocalKernel, remove_kernel_folder
from kernelpad.kernels.runtime import kernel_folder, lease_path
from kernelpad.kernels.sandbox import HOME, Sandbox
from kernelpad.kernels.seccomp import program_fd

log = logging.getLogger(__name__)

# Settings of the server that must not reach code run in a kernel: its own, the Hub's token,
# the gateway's token, the database's password.
_PRIVATE_ENV_PREFIXES = ("KERNELPAD_", "JUPYTERHUB_", "JUPYTER_GATEWAY_", "DATABASE_URL")


class LocalKernelBackend(KernelBackend):
    """Starts kernels from the kernelspecs installed on this machine, each under a keeper that
    lets them outlive this server; takes back those an earlier server left."""

    keeps_kernels = True

    def __init__(
        self,
        runtime_dir: Path,
        spec_manager: KernelSpecManager,
        data_dir: Path,
        start_timeout: float = 60.0,
        sandbox: Sandbox | None = None,
        nice: int = 0,
    ) -> None:
        self.runtime_dir = runtime_dir
        self.spec_manager = spec_manager
        self.data_dir = data_dir
        self.start_timeout = start_timeout
        self.sandbox = sandbox
        self.nice = nice

    def _kernel_env(self, language: InstalledLanguage) -> dict[str, str]:
        if self.sandbox is not None:
            env = self.sandbox.environment(dict(os.environ))
            data_dir = HOME  # its own /tmp: the server's data dir is not in the box
        else:
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

    def _manager(
        self, kernel_id: str, language: InstalledLanguage, folder: Path
    ) -> KeptKernelManager:
        name = folder.name
        # Unix socket paths are limited to about 100 bytes: keep the names short.
        ipc = language.transport == "ipc" or self.sandbox is not None
        options: dict[str, Any] = {"transport": "ipc", "ip": str(folder / "k")} if ipc else {}
        manager = KeptKernelManager(
            kernel_name=language.kernel_name,
            kernel_spec_manager=self.spec_manager,
            connection_file=str(folder / "kernel.json"),
            # One ZeroMQ context for every kernel, as jupyter_server's kernel manager has: a
            # context of its own is two threads of this server's per kernel, and one that a
            # kernel let go for the next server would never have closed.
            context=zmq.asyncio.Context.instance(),
            **options,
        )
        manager.folder, manager.wait, manager.nice = folder, self.start_timeout, self.nice
        if self.sandbox is not None:
            manager.sandbox, manager.name = self.sandbox, name
            manager.relay = language.transport != "ipc"
            # A signal would reach the sandbox's own processes, not the kernel: every
            # sandboxed kernel is interrupted by message (ipykernel and kernelpad's own take it).
            spec = manager.kernel_spec
            if spec is not None:
                spec.interrupt_mode = "message"
        return manager

    async def start(self, language: InstalledLanguage) -> LocalKernel:
        kernel_id = uuid.uuid4().hex
        workdir = kernel_folder(self.runtime_dir, kernel_id)
        await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
        manager = self._manager(kernel_id, language, workdir)
        client: AsyncKernelClient | None = None
        output: KernelOutput | None = None
        lease: Lease | None = None
        try:
            streams: dict[str, Any] = {}
            handed: list[int] = []  # descriptors for the kernel only
            try:
                if self.sandbox is not None:
                    # Its own output (its logs) goes to a pipe the server reads: not to the
                    # server's stdout or log, which it must not write into or reach through
                    # /proc, nor to a file, which would be host disk outside its quota.
                    output, write_end = await KernelOutput.open(kernel_id[:12])
                    handed.append(write_end)
                    streams = {"stdout": write_end, "stderr": write_end}
                    if self.sandbox.seccomp is not None:
                        manager.seccomp_fd = program_fd(self.sandbox.seccomp)
                        handed.append(manager.seccomp_fd)
                        streams["pass_fds"] = (manager.seccomp_fd,)
                env = self._kernel_env(language)
                await manager.start_kernel(cwd=str(workdir), env=env, **streams)
            finally:
                # The kernel has its copies, or never will.
                for fd in handed:
                    os.close(fd)
            lease = await Lease.take(lease_path(workdir), self.start_timeout, manager.is_alive)
            if lease is None:
                raise RuntimeError("its keeper did not answer")
            client = manager.client(context=manager.context)
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
            if self.sandbox is not None:
                # Its sockets and files are made: from now on nothing in its folder is the
                # kernel's to change.
                await asyncio.to_thread(self.sandbox.seal, workdir)
        except BaseException as exc:
            # Also on cancellation: a half-started kernel must not outlive its start.
            if client is not None:
                client.stop_channels()
            with contextlib.suppress(Exception):
                await asyncio.shield(manager.shutdown_kernel(now=True))
            if lease is not None:
                lease.release()
            if output is not None:
                # Its keeper passes on its last words as it goes.
                await output.ended(timeout=1.0)
                if output.total:
                    # Its start's own words (no candidate's code has run in it): why, often.
                    log.warning(
                        "kernel %s did not start; its last output: %r",
                        kernel_id[:12],
                        output.tail()[-2048:],
                    )
                output.close()
            await asyncio.to_thread(remove_kernel_folder, workdir, self.sandbox)
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
        return LocalKernel(
            kernel_id,
            language,
            manager,
            client,
            workdir,
            language_info,
            lease,
            self.sandbox,
            output,
        )

    async def attach(self, kernel_id: str, language: InstalledLanguage) -> LocalKernel | None:
        folder = kernel_folder(self.runtime_dir, kernel_id)
        lease = await Lease.take(lease_path(folder))
        if lease is None:
            return None  # its keeper is gone, and has taken the kernel with it
        manager = self._manager(kernel_id, language, folder)
        try:
            manager.load_connection_file()
        except (OSError, ValueError):
            lease.release()
            return None
        manager.provisioner = KeptProvisioner(
            lease, kernel_id=kernel_id, kernel_spec=manager.kernel_spec, parent=manager
        )
        client = manager.client(context=manager.context)
        client.start_channels(hb=False, control=False)
        info = await kernel_info_once_idle(manager, client, self.start_timeout)
        if info is None:
            log.warning("kernel %s was kept, but does not answer: stopping it", kernel_id[:12])
            client.stop_channels()
            with contextlib.suppress(Exception):
                await manager.shutdown_kernel(now=True)
            lease.release()
            await asyncio.to_thread(remove_kernel_folder, folder, self.sandbox)
            return None
        language_info = info["content"].get("language_info", {})
        return LocalKernel(
            kernel_id, language, manager, client, folder, language_info, lease, self.sandbox
        )
