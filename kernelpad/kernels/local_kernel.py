"""A local kernel as the run loop drives it: its requests, and its messages pumped into one
inbox (see :class:`kernelpad.kernels.base.KernelHandle`). :mod:`kernelpad.kernels.local` starts
it, or takes it back from an earlier server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, cast

import zmq
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel

from kernelpad.kernels.base import MAX_CONTENT_SIZE, Inbox, KernelHandle, Message
from kernelpad.kernels.kept import KeptKernelManager, Lease
from kernelpad.kernels.kernel_output import KernelOutput
from kernelpad.kernels.languages import InstalledLanguage
from kernelpad.kernels.runtime import remove_kernel_files
from kernelpad.kernels.sandbox import Sandbox
from kernelpad.kernels.wire import read_message

log = logging.getLogger(__name__)


class LocalKernel(KernelHandle):
    """A kernel process of this machine, with its messages pumped into one inbox."""

    def __init__(
        self,
        kernel_id: str,
        language: InstalledLanguage,
        manager: KeptKernelManager,
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
        await asyncio.to_thread(remove_kernel_folder, self._workdir, self._sandbox)


def remove_kernel_folder(folder: Path, sandbox: Sandbox | None) -> None:
    """A kernel's folder removed, and its share of the sandbox given back."""
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
