"""The server's side of a kernel's keeper (:mod:`kernelpad.kernels.keeper`): the manager that
starts a kernel under its keeper, the lease a server holds on each of its local kernels, and
what jupyter_client needs to drive a kernel that another server started."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import shutil
import signal
import socket
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning.local_provisioner import LocalProvisioner

from kernelpad.kernels import keeper_command
from kernelpad.kernels.keeper import GREETING
from kernelpad.kernels.runtime import lease_path
from kernelpad.kernels.sandbox import Sandbox

log = logging.getLogger(__name__)


class KeptKernelManager(AsyncKernelManager):
    """jupyter_client's manager, launching kernels under a keeper of their own (which outlives
    this server: :mod:`kernelpad.kernels.keeper`), in their sandbox if there is one."""

    sandbox: Sandbox | None = None
    name = ""
    folder: Path = Path()
    relay = False  # a TCP kernel behind its keeper's relay
    seccomp_fd: int | None = None  # where bwrap reads the seccomp filter from
    wait = 60.0  # how long the keeper waits for this server to take the lease
    let_go = False  # the kernel is left for the next server: its files are not this one's
    nice = 0  # the kernel's niceness (see niced)

    def cleanup_connection_file(self) -> None:
        # Also called when the manager is collected: a kernel left for the next server
        # needs its connection file.
        if not self.let_go:
            super().cleanup_connection_file()

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        command = niced(super().format_kernel_cmd(extra_arguments), self.nice)
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


def niced(command: list[str], nice: int) -> list[str]:
    """``command`` run ``nice`` steps below normal priority, and everything it starts, with
    no way back up (raising priority takes a capability no kernel has). Only the kernel: in
    the sandbox its keeper, which relays every message of a TCP kernel, keeps the server's.

    Where the scheduler groups processes by session (Linux's autogroup, on in most
    distributions' kernels), a process's niceness only counts against its own session's,
    and a kernel has a session of its own (the sandbox's; without the sandbox, the one
    jupyter_client starts for its keeper, which is then niced with it): the session's
    niceness is set too. Code that starts a session of its own (``setsid``) starts it at
    normal priority, as every kernel's was before this setting."""
    if nice == 0:
        return command
    program = shutil.which("nice")
    if program is None:
        log.warning("kernels run at the server's priority: 'nice' (coreutils) is not installed")
        return command
    # Without autogroup the file is missing or ignored: the process's niceness is all there is.
    autogroup = 'echo "$0" > /proc/self/autogroup 2>/dev/null; exec "$@"'
    return ["/bin/sh", "-c", autogroup, str(nice), program, "-n", str(nice), *command]


class Lease:
    """A connection to a kernel's keeper: while it is open, the kernel is this server's."""

    def __init__(self, sock: socket.socket, keeper_pid: int) -> None:
        self._sock = sock
        #: The keeper's pid, which is its process group's (jupyter_client starts it alone).
        self.keeper_pid = keeper_pid

    @classmethod
    async def take(
        cls,
        path: Path,
        timeout: float = 0.0,
        launched: Callable[[], Awaitable[bool]] | None = None,
    ) -> Lease | None:
        """Connect to the keeper at ``path``, trying for ``timeout`` seconds while
        ``launched()`` says its process runs (a keeper just launched is not listening yet);
        None if none answers or it has a holder already. Connecting to a Unix socket does not
        block."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
            except OSError:
                sock.close()
                if loop.time() >= deadline or (launched is not None and not await launched()):
                    return None
                await asyncio.sleep(0.02)
                continue
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            pid, uid, _ = struct.unpack("3i", creds)
            sock.setblocking(False)
            try:
                # The keeper greets the holder it keeps, and closes a second one's at once.
                greeting = await asyncio.wait_for(loop.sock_recv(sock, len(GREETING)), 5.0)
            except (OSError, TimeoutError):
                greeting = b""
            if uid != os.geteuid() or greeting != GREETING:
                sock.close()
                return None
            return cls(sock, pid)

    @property
    def held(self) -> bool:
        """Whether the keeper is there: a closed connection reads as end of file."""
        try:
            ready, _, _ = select.select([self._sock], [], [], 0)
            return not ready or self._sock.recv(1, socket.MSG_PEEK) != b""
        except OSError:
            return False

    def keep(self, seconds: float) -> None:
        """Have the keeper wait ``seconds`` for another server once this one is gone."""
        with contextlib.suppress(OSError):
            self._sock.send(f"keep {seconds:g}\n".encode())

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()


class KeptProvisioner(LocalProvisioner):
    """jupyter_client's local provisioner for a kernel this server did not launch: what it
    knows is the keeper's pid and process group, not a ``Popen``. Signals and kills go to the
    group, as for a kernel launched here."""

    def __init__(self, lease: Lease, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lease = lease
        self.pid = self.pgid = self.keeper_pid = lease.keeper_pid

    @property
    def has_process(self) -> bool:
        return self.lease.held

    async def poll(self) -> int | None:
        return None if self.lease.held else 0

    async def wait(self) -> int | None:
        while self.lease.held:
            await asyncio.sleep(0.05)
        return 0

    async def send_signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.keeper_pid, signum)

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)


async def kernel_info_once_idle(
    manager: AsyncKernelManager, client: AsyncKernelClient, timeout: float
) -> dict[str, Any] | None:
    """The ``kernel_info_reply`` of a kernel taken back. A kernel still busy with the run the
    last server started answers only after it: that run is interrupted (its cell says already
    that the server restarted while it ran), so that the next one does not wait behind it."""
    try:
        reply: dict[str, Any] = await client.kernel_info(reply=True, timeout=2.0)
        return reply
    except TimeoutError:
        pass
    await manager.interrupt_kernel()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        try:
            reply = await client.kernel_info(reply=True, timeout=left)
        except TimeoutError:
            return None
        # A request queued behind an interrupted run may be answered "aborted".
        if reply["content"].get("status") == "ok":
            return reply
    return None
