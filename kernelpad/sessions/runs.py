"""Runs: each session's kernels (one per language), the code they run within limits, what
the participants are told around a run, and the record of every run."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kernelpad import metrics
from kernelpad.kernels.execution import MIN_TIME_LIMIT
from kernelpad.kernels.languages import InstalledLanguage, LanguageRegistry
from kernelpad.kernels.pool import KernelPool
from kernelpad.kernels.run_loop import Limits
from kernelpad.kernels.runner import KernelRunner, RunReport
from kernelpad.logs import about
from kernelpad.sessions.access import Access, Action
from kernelpad.sessions.events import KernelStatus, TestScore
from kernelpad.sessions.kept_kernels import KeptKernels
from kernelpad.sessions.models import Execution
from kernelpad.sessions.room.registry import Rooms
from kernelpad.sessions.room.watch import Run
from kernelpad.sessions.run_notices import notices_of
from kernelpad.sessions.storage.store import SessionStore

log = logging.getLogger(__name__)

# How a run of a test cell went: (session id, the cell's grade_id, the run) -> the result.
VisibleTest = Callable[[str, str | None, Execution], Awaitable[TestScore | None]]


@dataclass(frozen=True)
class RunSettings:
    """The limits of every run (seconds and characters), and how many may wait per kernel."""

    time_limit: float = 10.0
    interrupt_grace: float = 5.0
    input_limit: float = 300.0
    max_output: int = 1_000_000
    flood_limit: int = 10_000_000
    queue_size: int = 10
    #: A stopping server leaves its sessions' kernels running where they can outlive it.
    keep_kernels: bool = False
    #: How long a session's kernel waits for a server to take it back once none holds it
    #: (seconds; local kernels: a gateway keeps its kernels as long as it likes).
    reattach_grace: float = 300.0

    @property
    def let_go_within(self) -> float:
        """Seconds a run in progress has to end when its kernel is left for the next server:
        an interrupt's grace, and one more."""
        return self.interrupt_grace + 1

    def limits(self, time_limit_ms: int | None, hosts: float | None = None) -> Limits:
        """A run's limits: the time it asks for, within the host's limit for the interview
        (``hosts``, seconds) and the server's cap."""
        cap = min(self.time_limit, hosts) if hosts else self.time_limit
        asked = cap if time_limit_ms is None else time_limit_ms / 1000
        return Limits(
            time_limit=max(min(asked, cap), MIN_TIME_LIMIT),
            interrupt_grace=self.interrupt_grace,
            max_output=self.max_output,
            input_limit=self.input_limit,
            flood_limit=self.flood_limit,
        )


class Runs:
    """The runners of every session, by (session, language).

    A session's kernel for a language starts on its first run in that language (from the
    pool), and shuts down when the session ends or the kernel sits idle too long.
    ``active_language(session_id)`` gives an active session's language, or raises.
    """

    def __init__(
        self,
        settings: RunSettings,
        access: Access,
        store: SessionStore,
        registry: LanguageRegistry,
        pool: KernelPool,
        rooms: Rooms,
        active_language: Callable[[str], Awaitable[str]],
        hold: Callable[[str], Awaitable[bool]],
    ) -> None:
        self.settings = settings
        self.access = access
        self.store = store
        self.registry = registry
        self.pool = pool
        self.rooms = rooms
        self.active_language = active_language
        #: ``hold(session_id)``: drive the session here, or raise if another process does.
        self.hold = hold
        self._runners: dict[tuple[str, str], KernelRunner] = {}
        self.kept = KeptKernels(store, registry, pool.backend, settings.reattach_grace)
        #: How a run of one of the question's tests went (set by the manager: grading's).
        self.visible_test: VisibleTest | None = None

    async def execute(
        self,
        session_id: str,
        code: str,
        role: str,
        language: str | None = None,
        time_limit_ms: int | None = None,
        stdin: list[str] | None = None,
        cell_id: str | None = None,
        author: str | None = None,
    ) -> Execution:
        """Run ``code`` in the session's kernel for ``language``, for a participant of
        ``role``, and record the run (by ``author``, a participant's client_id); ``stdin``
        holds the lines its input requests are answered with."""
        # Driven here first: the rules and language read next are then this process's to
        # keep (another's would go stale here as that one changes them).
        await self.hold(session_id)
        session_language = await self.active_language(session_id)
        self.access.check_run(session_id, role, code)
        await self.take_back(session_id)
        installed = self.registry.get(language or session_language)
        runner = self.runner(session_id, installed)
        # A run refused for a full queue does not count against the rate limit.
        runner.check_room()
        # Each participant has their own allowance (over HTTP without a participant, each
        # role shares one): one person's Shift+Enter loop must not stop the other's runs.
        self.access.count_run(session_id, author or role)
        limits = self.settings.limits(time_limit_ms, self.access.rules(session_id).time_limit)
        started_at = time.time()
        execution_id = uuid.uuid4().hex
        # Whoever has the session open watches the run, however it was started.
        room = self.rooms.loaded(session_id)
        run = None
        if room is not None:
            self.rooms.hold(room)  # loaded until the run has written its end into it
            run = room.start_run(execution_id, cell_id, installed.language.id, code)
            if runner.kernel is None:
                room.broadcast(KernelStatus(language=installed.language.id, state="starting"))
        try:
            report = await runner.run(code, limits, stdin, run, execution_id)
            execution = Execution(
                id=execution_id,
                session_id=session_id,
                language=installed.language.id,
                code=code,
                status=report.result.status,
                stdout=report.result.stdout,
                stderr=report.result.stderr,
                outputs=report.result.outputs,
                error=report.result.error,
                execution_count=report.result.execution_count,
                time_limit_ms=round(limits.time_limit * 1000),
                started_at=started_at,
                finished_at=time.time(),
                duration_ms=report.result.duration * 1000,
                queued_ms=report.queued * 1000,
                timed_out=report.result.timed_out,
                state_kept=report.state_kept,
                kernel_restarted=report.kernel_restarted,
                new_kernel=report.new_kernel,
                output_truncated=report.result.output_truncated,
                notices=await self._notices(session_id, report, installed, limits),
                cell_id=cell_id,
                author=author,
            )
            outcome = await self._outcome(run, execution) if run is not None else {}
            # The end of a cell's run is written into the cell right behind the record, in
            # the same turn of the event loop, and commits with it: the participants are told
            # once both are stored, one database round trip after the run, not two.
            recorded = self.store.add_execution(execution)
            if run is not None and cell_id is not None:
                run.finish(recorded, **outcome)
            # Retrieved even if what follows raises before it is awaited (it is, below).
            recorded.add_done_callback(_retrieved)
            await recorded
            _count(execution, report.result.kernel_time)
            await self.kept.keep(session_id, installed.language.id, runner.kernel)
            if run is not None and cell_id is None:
                run.finish(recorded, **outcome)  # only in its record, which is stored
        except BaseException:
            if run is not None:
                # Those watching must not see the cell run for ever.
                run.finish(
                    status="internal_error",
                    execution_count=None,
                    notices=["The run did not finish: kernelpad hit an error or stopped."],
                )
            raise
        finally:
            if room is not None:
                self.rooms.release(room)
        log.info(
            "session %s: %s run %s in %.1f ms",
            session_id,
            installed.language.id,
            execution.status,
            execution.duration_ms,
            extra=about(session_id, installed.language.id),
        )
        return execution

    async def _outcome(self, run: Run, execution: Execution) -> dict[str, Any]:
        """How ``run`` ended, as those watching are told (with how the question's test it
        ran went)."""
        tested: dict[str, TestScore] = {}
        if self.visible_test is not None and execution.cell_id is not None:
            grade_id = run.document.grade_id(execution.cell_id)
            test = await self.visible_test(execution.session_id, grade_id, execution)
            if test is not None:
                tested["test"] = test
        return dict(
            **tested,
            status=execution.status,
            execution_count=execution.execution_count,
            execution_time=round(execution.duration_ms, 3),
            queued_time=round(execution.queued_ms, 3),
            timed_out=execution.timed_out,
            state_kept=execution.state_kept,
            kernel_restarted=execution.kernel_restarted,
            notices=execution.notices,
        )

    async def _notices(
        self, session_id: str, report: RunReport, installed: InstalledLanguage, limits: Limits
    ) -> list[str]:
        notices = notices_of(report, installed, limits)
        if (
            report.new_kernel
            and not report.lost_kernel
            and await self.store.count_executions(session_id, installed.language.id)
        ):
            notices.insert(
                0,
                f"This run started a new {installed.language.display_name} kernel: variables"
                " from earlier runs are gone (the server restarted or the idle kernel was shut"
                " down).",
            )
        return notices

    def interrupt(
        self, session_id: str, role: str, language: str | None, execution_id: str | None = None
    ) -> bool:
        """Interrupt the session's run ``execution_id``, or whatever runs in ``language``;
        whether there was such a run (a run still waiting its turn is not interrupted)."""
        self.access.check(session_id, role, Action.INTERRUPT)
        for (session, kernel_language), runner in self._runners.items():
            mine = session == session_id and language in (None, kernel_language)
            if mine and runner.interrupt(execution_id):
                return True
        return False

    async def restart_kernel(self, session_id: str, role: str, language: str) -> None:
        """Give the session a new kernel for ``language`` (its variables are gone)."""
        self.access.check(session_id, role, Action.RESTART_KERNEL)
        runner = self._runners.get((session_id, language))
        room = self.rooms.loaded(session_id)
        if room is not None:
            room.broadcast(KernelStatus(language=language, state="restarting"))
        if runner is not None:
            await runner.restart()
        if room is not None:
            room.broadcast(KernelStatus(language=language, state="idle"))

    def kernel_states(self, session_id: str) -> dict[str, str]:
        """The state of each kernel the session has: ``busy`` or ``idle``."""
        return {
            language: "busy" if runner.busy else "idle"
            for (session, language), runner in self._runners.items()
            if session == session_id and runner.kernel is not None
        }

    def runner(self, session_id: str, language: InstalledLanguage) -> KernelRunner:
        """The runner of the session's kernel for ``language`` (made, not started, if new)."""
        key = (session_id, language.language.id)
        runner = self._runners.get(key)
        if runner is None:
            runner = KernelRunner(self.pool, language, self.settings.queue_size, label=session_id)
            self._runners[key] = runner
        return runner

    def runners(self) -> dict[tuple[str, str], KernelRunner]:
        """Every runner, by (session, language)."""
        return dict(self._runners)

    # Housekeeping

    async def close_session(self, session_id: str) -> None:
        """Shut the session's kernels down (it has ended), those an earlier server left
        running too."""
        await self.take_back(session_id)
        await asyncio.gather(*(runner.close() for runner in self._pop_runners(session_id)))
        await self.kept.forget(session_id)

    async def let_go(self, session_id: str) -> None:
        """Leave the session's kernels running for the process that drives it next (their
        ids stay stored for it); a run in progress is stopped first."""
        grace = self.settings.let_go_within
        await asyncio.gather(*(runner.detach(grace) for runner in self._pop_runners(session_id)))
        self.kept.let_go(session_id)

    def _pop_runners(self, session_id: str) -> list[KernelRunner]:
        """The session's runners, no longer this object's."""
        keys = [key for key in self._runners if key[0] == session_id]
        return [self._runners.pop(key) for key in keys]

    def busy(self, session_id: str) -> bool:
        """Whether a run of the session is in progress or waiting."""
        return any(
            runner.busy or runner.waiting
            for (session, _), runner in self._runners.items()
            if session == session_id
        )

    async def cull(self, idle_timeout: float) -> None:
        """Shut down kernels idle for longer than ``idle_timeout`` seconds."""
        now = time.monotonic()
        for key, runner in list(self._runners.items()):
            if not runner.busy and not runner.waiting and now - runner.last_used > idle_timeout:
                del self._runners[key]
                log.info("session %s: shutting down its idle %s kernel", *key, extra=about(*key))
                await runner.close()
                await self.kept.forget(*key)

    async def close(self) -> None:
        """Shut every session's kernels down (the server is stopping), or leave them running for
        the next server if they can outlive this one and the operator says so."""
        runners, self._runners = list(self._runners.values()), {}
        keep = self.settings.keep_kernels and self.pool.backend.keeps_kernels
        grace = self.settings.let_go_within
        await asyncio.gather(
            *(runner.detach(grace) if keep else runner.close() for runner in runners)
        )

    async def take_back(self, session_id: str) -> int:
        """Take back the session's kernels an earlier server left running, the first time
        this server serves the session: its next run finds its variables. Returns how many
        were taken back."""
        taken = await self.kept.take_back(
            session_id, lambda language: (session_id, language) not in self._runners
        )
        for kernel in taken:
            self.runner(session_id, kernel.language).kernel = kernel
        return len(taken)

    def kernels(self) -> dict[tuple[str, str], int]:
        """How many kernels there are, by language and state, for /metrics."""
        kernels: dict[tuple[str, str], int] = {}
        for (_, language), runner in self._runners.items():
            if runner.kernel is not None:
                state = "busy" if runner.busy else "idle"
            elif runner.busy:
                state = "starting"  # a run holds the runner while its kernel starts
            else:
                continue
            kernels[language, state] = kernels.get((language, state), 0) + 1
        return kernels

    @property
    def kernels_running(self) -> int:
        return sum(1 for runner in self._runners.values() if runner.kernel is not None)

    @property
    def running(self) -> int:
        return sum(1 for runner in self._runners.values() if runner.busy)

    @property
    def queued(self) -> int:
        return sum(runner.waiting for runner in self._runners.values())


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def _count(execution: Execution, kernel_time: float | None) -> None:
    """A finished run, for /metrics; ``kernel_time``: its time by its kernel's own clock."""
    metrics.EXECUTIONS.labels(execution.language, execution.status).inc()
    metrics.EXECUTION_SECONDS.labels(execution.language).observe(execution.duration_ms / 1000)
    if kernel_time is not None:
        metrics.KERNEL_BUSY_SECONDS.labels(execution.language).observe(kernel_time)
    if execution.timed_out:
        metrics.EXECUTION_TIMEOUTS.labels(execution.language).inc()
