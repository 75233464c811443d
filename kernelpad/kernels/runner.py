"""One session's kernel for one language, running one piece of code at a time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from kernelpad import metrics
from kernelpad.errors import QueueFull, SessionEnded
from kernelpad.kernels.base import KernelHandle, Message
from kernelpad.kernels.execution import ExecutionResult, run_code
from kernelpad.kernels.languages import InstalledLanguage
from kernelpad.kernels.pool import KernelPool
from kernelpad.kernels.run_loop import Limits, RunListener
from kernelpad.logs import about

log = logging.getLogger(__name__)

# Kernels starting for a question, kept from the garbage collector until they are up.
_background: set[asyncio.Future[None]] = set()


@dataclass
class RunReport:
    """An :class:`ExecutionResult` and what happened to the kernel around it.

    ``lost_kernel`` says why an earlier kernel of this runner was gone when the run started
    (it died while idle), ``stopped`` that the runner was closed during the run (the session
    ended or the server is shutting down), ``let_go`` that it was closed leaving its kernel
    for the next server (which keeps the variables).
    """

    result: ExecutionResult
    queued: float
    new_kernel: bool
    kernel_restarted: bool
    lost_kernel: str | None = None
    stopped: bool = False
    let_go: bool = False

    @property
    def state_kept(self) -> bool:
        return not (self.result.needs_restart or (self.stopped and not self.let_go))


class KernelRunner:
    """Owns the kernel of one (session, language) and serialises runs on it.

    Runs wait their turn in FIFO order (``asyncio.Lock`` wakes waiters in order); at most
    ``queue_size`` may wait, further ones are refused with :class:`QueueFull`. A kernel that does
    not yield to an interrupt, or dies, is replaced before the report is returned, so the next run
    finds a working kernel.
    """

    def __init__(
        self, pool: KernelPool, language: InstalledLanguage, queue_size: int, label: str
    ) -> None:
        self.pool = pool
        self.language = language
        self.queue_size = queue_size
        self.label = label
        self.kernel: KernelHandle | None = None
        self.last_used = time.monotonic()
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._closed = False
        self._stop: asyncio.Event | None = None  # set to interrupt the run in progress
        self.current: str | None = None  # the tag of the run in progress
        self._replacing = asyncio.Lock()
        self._warming = False  # a kernel is being started for a question, not a run
        self._let_go = False  # closed, its kernel left running for the next server

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    @property
    def waiting(self) -> int:
        """Runs queued behind the one in progress."""
        return self._waiting

    def check_room(self) -> None:
        """Raise :class:`QueueFull` if a run now would find the queue full."""
        if self._lock.locked() and self._waiting >= self.queue_size:
            name = self.language.language.display_name
            raise QueueFull(
                f"The {name} kernel of session {self.label} is busy and {self._waiting} run(s)"
                f" are already waiting (the limit is {self.queue_size}); try again when it is"
                " free.",
                public=f"The {name} kernel is busy and {self._waiting} run(s) are already"
                f" waiting (at most {self.queue_size} may): try again when it is free.",
            )

    async def run(
        self,
        code: str,
        limits: Limits,
        stdin: list[str] | None = None,
        listener: RunListener | None = None,
        tag: str | None = None,
    ) -> RunReport:
        """Run ``code`` once the runs before it are done; ``stdin`` answers its input requests;
        ``tag`` names the run for :meth:`interrupt`."""
        self.check_room()
        queued_at = time.monotonic()
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        # A fresh stop for this run, from the moment it holds the kernel.
        self._stop = asyncio.Event()
        self.current = tag
        try:
            queued = time.monotonic() - queued_at
            lost = None
            # Not while a restart is replacing the kernel: both would start one, and one of
            # the two would be left running, unowned.
            async with self._replacing:
                if self.kernel is not None and not await self.kernel.is_alive():
                    lost = "the kernel stopped while idle"
                    dead, self.kernel = self.kernel, None
                    await dead.shutdown()
                new_kernel = self.kernel is None
                if self.kernel is None:
                    self.kernel = await self._acquire()
                kernel = self.kernel
            try:
                result = await run_code(kernel, code, limits, stdin, listener, self._stop)
            except Exception:
                # The kernel is in an unknown state, maybe still running the code: replace it.
                await self._replace_kernel("internal error")
                raise
            restarted = False
            if result.needs_restart and not self._closed:
                await self._replace_kernel(result.status)
                restarted = True
            return RunReport(
                result,
                queued,
                new_kernel,
                restarted,
                lost,
                stopped=self._closed,
                let_go=self._let_go,
            )
        finally:
            self.current = None
            self.last_used = time.monotonic()
            self._lock.release()

    async def ask(
        self, msg_type: str, content: dict[str, Any], timeout: float
    ) -> tuple[str, Message | None]:
        """Ask the kernel a question that runs no code (``complete_request``,
        ``inspect_request``), between runs: ``("ok", reply)``, or why there is no answer:
        ``"busy"`` (a run holds the kernel: an editor asking as someone types must not wait for
        it), ``"starting"`` (no kernel yet: see :meth:`warm`), ``"timeout"``."""
        if self._warming or self.kernel is None:
            return "starting", None
        if self._lock.locked() or self._closed:
            return "busy", None
        async with self._lock:
            kernel = self.kernel
            if kernel is None:
                return "starting", None
            reply = await kernel.request(msg_type, content, timeout)
        return ("ok", reply) if reply is not None else ("timeout", None)

    def warm(self) -> asyncio.Future[None] | None:
        """Start the kernel without running anything (a question came before the first run):
        the start, unless one is under way or not needed."""
        if self._warming or self.kernel is not None or self._closed:
            return None
        self._warming = True
        task = asyncio.ensure_future(self._warm())
        _background.add(task)
        task.add_done_callback(_background.discard)
        return task

    async def _warm(self) -> None:
        try:
            async with self._lock, self._replacing:
                if self.kernel is None and not self._closed:
                    self.kernel = await self._acquire()
        except Exception:
            log.warning(
                "session %s: its %s kernel did not start",
                self.label,
                self.language.language.id,
                exc_info=True,
                extra=about(self.label, self.language.language.id),
            )
        finally:
            self._warming = False

    async def _replace_kernel(self, reason: str) -> None:
        async with self._replacing:  # two restarts at once must not both start a kernel
            await self._replace_kernel_now(reason)

    async def _replace_kernel_now(self, reason: str) -> None:
        old, self.kernel = self.kernel, None
        metrics.KERNEL_RESTARTS.labels(self.language.language.id, reason.replace(" ", "_")).inc()
        log.warning(
            "session %s: restarting its %s kernel (%s)",
            self.label,
            self.language.language.id,
            reason,
            extra=about(self.label, self.language.language.id),
        )
        if old is not None:
            await old.shutdown()
        if self._closed:
            return
        try:
            self.kernel = await self._acquire()
        except Exception:
            # The next run tries again; this one has its result already.
            log.exception(
                "session %s: no new %s kernel",
                self.label,
                self.language.language.id,
                extra=about(self.label, self.language.language.id),
            )

    async def _acquire(self) -> KernelHandle:
        kernel = await self.pool.acquire(self.language)
        if self._closed:
            # Closed while the kernel started: it must not outlive the session.
            await kernel.shutdown()
            raise SessionEnded(f"Session {self.label} ended while its kernel was starting.")
        return kernel

    def interrupt(self, tag: str | None = None) -> bool:
        """Interrupt the run in progress (once its code has started), if it is the run
        ``tag`` (default: whichever); whether there was one."""
        if self._stop is None or not self.busy or tag not in (None, self.current):
            return False
        self._stop.set()
        return True

    async def restart(self) -> None:
        """A new kernel, now: variables are gone (a run in progress ends as kernel_died)."""
        await self._replace_kernel("restart requested")

    async def detach(self, timeout: float) -> None:
        """Let go of the kernel, running, for a later server (see ``KernelHandle.detach``).
        A run in progress is stopped first, as a person's stop would (the variables stay),
        and given ``timeout`` seconds to end: it ends with a status of its own, not as a run
        whose kernel vanished."""
        self._closed = self._let_go = True
        if self._stop is not None and self.busy:
            self._stop.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._lock.acquire()
                    self._lock.release()
        kernel, self.kernel = self.kernel, None
        if kernel is not None:
            await kernel.detach()

    async def close(self) -> None:
        """Shut the kernel down; a run in progress ends as ``kernel_died``."""
        self._closed = True
        kernel, self.kernel = self.kernel, None
        if kernel is not None:
            await kernel.shutdown()
