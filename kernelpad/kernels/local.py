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
from typing import Any, cast

import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager

from kernelpad.errors import KernelStartFailed
from kernelpad.kernels import keeper_command
from kernelpad.kernels.base import MAX_CONTENT_SIZE, Inbox, KernelBackend, KernelHandle, Message
from kernelpad.kernels.kept import KeptProvisioner, Lease, kernel_info_once_idle
from kernelpad.kernels.kernel_output import KernelOutput
from kernelpad.kernels.languages import InstalledLanguage
from kernelpad.kernels.runtime import kernel_folder, lease_path, remove_kernel_files
from kernelpad.kernels.sandbox import HOME, Sandbox
from kernelpad.kernels.seccomp import program_fd
from kernelpad.kernels.wire import read_message

log = logging.getLogger(__name__)

# Settings of the server that must not reach code run in a kernel: its own, the Hub's token,
# the gateway's token, the database's password.
_PRIVATE_ENV_PREFIXES = ("KERNELPAD_", "JUPYTERHUB_", "JUPYTER_GATEWAY_", "DATABASE_URL")


class _KernelManager(AsyncKernelManager):
    """jupyter_client's manager, launching kernels under a keeper of their own (which outlives
    this server: :mod:`kernelpad.kernels.keeper`), in their sandbox if there is one."""

    sandbox: Sandbox | None = None
    name = ""
    folder: Path = Path()
    relay = False  # a TCP kernel behind its keeper's relay
    seccomp_fd: int | None = None  # where bwrap reads the seccomp filter from
    wait = 60.0  # how long the keeper waits for this server to take the lease
    let_go = False  # the kernel is left for the next server: its files are not this one's

    def cleanup_connection_file(self) -> None:
        # Also called when the manager is collected: a kernel left for the next server
        # needs its connection file.
        if not self.let_go:
            super().cleanup_connection_file()

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        command = super().format_kernel_cmd(extra_arguments)
        cgroups: list[Path] = []
        # A TCP kernel's keeper relays it, in the network namespace the box then shares.
        relay = Path(self.connection_file) if self.sandbox is not None and self.relay else None
        if self.sandbox is not None:
            # The connection file is written by now (jupyter_client writes it first).
            joins = self.sandbox.prepare(self.name, self.folder, Path(self.connection_file))
            network = relay is None
            command = self.sandbox.wrap(command, self.folder, joins, self.seccomp_fd, network)
            cgroups = [join.parent for join in joins]
        lease = lease_path(self.folder)
        keep = keeper_command.command(
            lease, self.folder, self.wait, cgroups, self.seccomp_fd, relay
        )
        return keep + command


class LocalKernel(KernelHandle):
    """A kernel process of this machine, with its messages pumped into one inbox."""

    def __init__(
        self,
        kernel_id: str,
        language: InstalledLanguage,
        manager: _KernelManager,
        client: AsyncKernelClient,
        workdir: Path,
        language_info: dict[str, object],
        lease: Lease,
        sandbox: Sandbox | None = None,
        output: KernelOutput | None = None,
    ) -> None:
        self.kernel_id = kernel_id
        self.language = language
        self.language_info = language_info
        self._manager = manager
        self._client = client
        self._workdir = workdir
        self._sandbox = sandbox
        self._output = output
        self._lease = lease
        self._inbox = Inbox()
        self._current: str | None = None
        self._kept: tuple[str, ...] = ()  # requests before the current one, still wanted
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
                msg = read_message(session, cast("list[bytes]", parts))  # frames copied
                parent = msg["parent_header"].get("msg_id")
                if not parent or (parent != self._current and parent not in self._kept):
                    continue
                raw = msg["content"]
                msg["content_size"] = len(raw)
                msg["content_dropped"] = len(raw) > MAX_CONTENT_SIZE
                msg["content"] = {} if msg["content_dropped"] else session.unpack(raw)
            except Exception:
                log.warning("kernel %s: dropped a malformed %s message", self.kernel_id, name)
                continue
            self._inbox.put(name, msg)

    def execute_request(self, code: str) -> str:
        # stdin is always allowed: kernelpad answers input requests itself, or stops the run.
        msg_id: str = self._client.execute(code, silent=False, store_history=True, allow_stdin=True)
        self._current, self._kept = msg_id, ()
        _sent(self._client.shell_channel)
        return msg_id

    def send_request(
        self, msg_type: str, content: dict[str, Any], keep_current: bool = False
    ) -> str:
        msg = self._client.session.msg(msg_type, content)
        # Current before it leaves: its reply cannot come before it is waited for.
        self._kept = (*self._kept, self._current) if keep_current and self._current else ()
        self._current = str(msg["header"]["msg_id"])
        self._client.shell_channel.send(msg)
        _sent(self._client.shell_channel)
        return self._current

    def input_reply(self, value: str) -> None:
        self._client.input(value)
        _sent(self._client.stdin_channel)

    def end_request(self) -> None:
        self._current, self._kept = None, ()
        self._inbox.clear()

    async def receive(self, timeout: float) -> tuple[str, Message] | None:
        return await self._inbox.next(timeout)

    async def is_alive(self) -> bool:
        return not self._closed and await self._manager.is_alive()

    async def interrupt(self) -> None:
        await self._manager.interrupt_kernel()

    @property
    def pid(self) -> int | None:
        provisioner = self._manager.provisioner
        return getattr(provisioner, "pid", None) if provisioner else None

    def outlive(self, seconds: float) -> None:
        self._lease.keep(seconds)

    async def _let_go(self) -> None:
        self._closed = True
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        self._client.stop_channels()

    async def detach(self) -> None:
        if self._closed:
            return
        self._manager.let_go = True
        await self._let_go()
        # Its keeper now waits for the next server (what ``outlive`` said), or stops it.
        self._lease.release()
        if self._output is not None:
            self._output.close()

    async def shutdown(self) -> None:
        if self._closed:
            return
        await self._let_go()
        try:
            await self._manager.shutdown_kernel(now=True)
        except Exception:
            log.warning("kernel %s did not shut down cleanly", self.kernel_id, exc_info=True)
        self._lease.release()
        if self._output is not None:
            self._output.close()
        await asyncio.to_thread(_remove_kernel_files, self._workdir, self._sandbox)


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
    ) -> None:
        self.runtime_dir = runtime_dir
        self.spec_manager = spec_manager
        self.data_dir = data_dir
        self.start_timeout = start_timeout
        self.sandbox = sandbox

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

    def _manager(self, kernel_id: str, language: InstalledLanguage, folder: Path) -> _KernelManager:
        name = folder.name
        # Unix socket paths are limited to about 100 bytes: keep the names short.
        ipc = language.transport == "ipc" or self.sandbox is not None
        options: dict[str, Any] = {"transport": "ipc", "ip": str(folder / "k")} if ipc else {}
        manager = _KernelManager(
            kernel_name=language.kernel_name,
            kernel_spec_manager=self.spec_manager,
            connection_file=str(folder / "kernel.json"),
            # One ZeroMQ context for every kernel, as jupyter_server's kernel manager has: a
            # context of its own is two threads of this server's per kernel, and one that a
            # kernel let go for the next server would never have closed.
            context=zmq.asyncio.Context.instance(),
            **options,
        )
        manager.folder, manager.wait = folder, self.start_timeout
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
            await asyncio.to_thread(_remove_kernel_files, workdir, self.sandbox)
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
            await asyncio.to_thread(_remove_kernel_files, folder, self.sandbox)
            return None
        language_info = info["content"].get("language_info", {})
        return LocalKernel(
            kernel_id, language, manager, client, folder, language_info, lease, self.sandbox
        )


def _remove_kernel_files(folder: Path, sandbox: Sandbox | None) -> None:
    remove_kernel_files(folder)
    if sandbox is not None:
        sandbox.release(folder.name)


def _sent(channel: AsyncZMQSocketChannel) -> None:
    """After jupyter_client sent on ``channel``, have its asyncio socket look at its events.

    jupyter_client sends through a blocking shadow of the socket, which pyzmq's asyncio socket
    does not see: a message that came meanwhile, whose arrival that send took in, then waited
    unseen by the pump's pending ``recv_multipart()`` until something more came on the socket.
    Seen: both replies of a Deno kernel's done probe left unread for good after an interrupt
    (one run in about a hundred under load), and the kernel given up as if it had not
    answered. Reading ``EVENTS`` through the asyncio socket schedules its event handler when
    a message waits, as its own sends do."""
    channel.socket.get(zmq.EVENTS)
