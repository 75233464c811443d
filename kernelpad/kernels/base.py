"""The small interface every kernel back-end presents, local or remote.

A session only ever holds a :class:`KernelHandle`; whether the kernel runs in a local process
started by jupyter_client or behind a Jupyter Server's REST and WebSocket API is the back-end's
business. Execution with limits (:mod:`kernelpad.kernels.execution`) is written once against this
interface, on the raw Jupyter messages, so time limits and output caps behave the same everywhere.
"""

from __future__ import annotations

import abc
import asyncio
from typing import Any

from kernelpad.kernels.languages import InstalledLanguage

Message = dict[str, Any]

#: Content larger than this (bytes) is not decoded: a back-end hands the message on with
#: ``content`` empty and ``content_dropped`` true. It bounds what one message can cost the
#: server, whatever a kernel sends.
MAX_CONTENT_SIZE = 8 * 1024 * 1024


class Inbox:
    """The messages of the request in progress, ``(channel, message)``, in arrival order:
    what a back-end's reader puts and :meth:`KernelHandle.receive` takes."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[str, Message]] = asyncio.Queue()

    def put(self, channel: str, message: Message) -> None:
        self._queue.put_nowait((channel, message))

    def clear(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    def __len__(self) -> int:
        return self._queue.qsize()

    async def next(self, timeout: float) -> tuple[str, Message] | None:
        """The next message, or None if none came within ``timeout`` seconds."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            pass
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None


class KernelHandle(abc.ABC):
    """A started kernel that code can be sent to."""

    kernel_id: str
    language: InstalledLanguage
    #: ``language_info`` of the kernel's ``kernel_info_reply`` (name, version, ...).
    language_info: dict[str, Any]
    #: Set once the kernel has been interrupted: its language's done probe then always waits
    #: for the timers due (Deno's kernel, interrupted in a timer, no longer counts the timers
    #: it has pending, and a probe that asked it would end the run before them).
    interrupted_once: bool = False

    @abc.abstractmethod
    def execute_request(self, code: str) -> str:
        """Send an ``execute_request`` on the shell channel; return its ``msg_id``.

        From then on :meth:`receive` yields only messages whose parent is this request: output
        of earlier runs or of background threads is dropped by the back-end, unread, so that it
        can neither pile up nor be mistaken for this run's.
        """

    @abc.abstractmethod
    def send_request(
        self, msg_type: str, content: dict[str, Any], keep_current: bool = False
    ) -> str:
        """Send a request of ``msg_type`` on the shell channel; return its ``msg_id``, which
        :meth:`receive` yields the messages of from then on (as for :meth:`execute_request`).

        With ``keep_current`` the messages of the requests current until now (the one
        before, and those it kept) still come too: a request that follows a run to learn when
        the kernel is done with it (a language's ``done_probe``, sent again after an interrupt)
        must not lose what the run sends meanwhile."""

    async def request(
        self, msg_type: str, content: dict[str, Any], timeout: float
    ) -> Message | None:
        """Send a shell request and wait for its reply (``kernel_info``, ``complete``,
        ``inspect``): the reply, or None if none came within ``timeout`` seconds."""
        self.send_request(msg_type, content)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while (left := deadline - loop.time()) > 0:
                got = await self.receive(left)
                if got is None:
                    return None
                if got[0] == "shell":
                    return got[1]
            return None
        finally:
            self.end_request()

    @abc.abstractmethod
    def input_reply(self, value: str) -> None:
        """Answer the current request's ``input_request`` (a ``receive``'d "stdin" message)."""

    @abc.abstractmethod
    def end_request(self) -> None:
        """The current request's run is over: drop its messages from now on (output of threads
        it started, say) instead of keeping them."""

    @abc.abstractmethod
    async def receive(self, timeout: float) -> tuple[str, Message] | None:
        """The next message for the current request as ``(channel, message)``, channel
        ``"iopub"``, ``"shell"`` or ``"stdin"``; ``None`` if nothing arrived within ``timeout``
        seconds.

        Each message carries ``content_size``, the size in bytes of its content as received;
        content over :data:`MAX_CONTENT_SIZE` is not decoded (see there).
        """

    @abc.abstractmethod
    async def is_alive(self) -> bool:
        """Whether the kernel can still answer."""

    @abc.abstractmethod
    async def interrupt(self) -> None:
        """Ask the kernel to stop what it runs, keeping its state."""

    def outlive(self, seconds: float) -> None:
        """Should this server go away without stopping the kernel (a crash, ``kill -9``, or
        :meth:`detach`), keep the kernel ``seconds`` for another server to take back. Until
        this is said, a kernel that can outlive its server does not (a pooled kernel holds
        nobody's variables). Kernels on a gateway stay as long as the gateway keeps them."""
        return None

    async def detach(self) -> None:
        """Let go of the kernel without stopping it, for a later server to take back (within
        the time :meth:`outlive` gave it)."""
        await self.shutdown()

    @abc.abstractmethod
    async def shutdown(self) -> None:
        """Stop the kernel and release everything it holds. Safe to call twice."""

    @property
    def pid(self) -> int | None:
        """The kernel's process id where it is a local process."""
        return None


class KernelBackend(abc.ABC):
    """Starts kernels for languages."""

    #: Its kernels can outlive this server (a gateway runs them, or a keeper of their own): a
    #: later server may take them back.
    keeps_kernels = False

    @abc.abstractmethod
    async def start(self, language: InstalledLanguage) -> KernelHandle:
        """Start a kernel for ``language`` and return it once it answers ``kernel_info``."""

    async def attach(self, kernel_id: str, language: InstalledLanguage) -> KernelHandle | None:
        """The kernel ``kernel_id``, started by an earlier server, if it still answers."""
        return None

    async def take_back(self, kernel_id: str, language: InstalledLanguage) -> KernelHandle | None:
        """The kernel ``kernel_id`` an earlier server let go (:meth:`attach`), counted as
        interrupted: whether that server (or the kernel_info that reached it) interrupted it is
        not known, and a kernel once interrupted may need a more careful done probe (Deno's no
        longer says whether timers are due)."""
        kernel = await self.attach(kernel_id, language)
        if kernel is not None:
            kernel.interrupted_once = True
        return kernel
