"""The run loop: one request's run as a state machine over the kernel's messages.

A run is sent, runs, and ends in one of three ways: the kernel ends it (by itself, or on an
interrupt), the kernel ignores the interrupt, or the kernel dies. :class:`Phase` names where it
is; :class:`RunLoop` moves it from phase to phase, one method per change, and checks each limit
in one place. What the run produced is an :class:`~kernelpad.kernels.outputs.OutputCollector`;
:func:`kernelpad.kernels.execution.run_code` turns the end of a run into its result.

The times below are the loop's rules; they are not settings, since they follow from how the
kernels behave, not from an interview's needs.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass
from typing import Any, Protocol

from kernelpad.kernels.base import KernelHandle, Message
from kernelpad.kernels.done_probe import DoneProbe
from kernelpad.kernels.outputs import OutputCollector

# How often a silent kernel is checked for being alive.
LIVENESS_INTERVAL = 0.25
# How long a run may go on after its input ran out (it got an end-of-file) before it is
# interrupted: enough for the code to fail on its own, not enough to wait for the time limit.
# A fresh IPython kernel's first EOFError takes 168 ms here to end its run (its first
# traceback; 30-40 ms after): at 0.5 s, a machine running 2.4x slower interrupted one.
EOF_GRACE = 2.0
# A kernel busy this long with a request is running its code, even if it said nothing else;
# one that said so (execute_input) is, this long after.
SETTLE_INTERRUPT = 0.1
CODE_STARTED_GRACE = 0.05
# How often a run waiting for a participant's input (or for a stop) looks for it.
INPUT_POLL = 0.05
# Shortest wait after a run's reply and idle status for its language's done probe to say all
# its output is out; the wait lasts until the run's time limit if that is later. The probe
# comes after that output, however much there is (hundreds of lines take Deno tens of ms), and
# after the timers due at the run's end, which are part of the run, as in a console: one that
# computes for seconds prints into this run, within its time limit. The limit ends the wait
# for a probe that cannot run (a timer's endless loop, or code that broke what the probe uses).
SETTLE_LIMIT = 2.0


@dataclass(frozen=True)
class Limits:
    """The limits of one run, in seconds and characters."""

    time_limit: float
    interrupt_grace: float
    max_output: int
    flood_limit: int
    #: How long a run may wait for someone to answer its input request; the wait does not
    #: count toward ``time_limit``.
    input_limit: float = 300.0


class RunListener(Protocol):
    """Who watches a run as it happens (the participants of its session)."""

    def started(self) -> None:
        """The code has been sent to the kernel (a queued run starts only now)."""

    def output(self, output: dict[str, Any]) -> None:
        """An output as it arrives, in nbformat's shape (a stream output holds a new piece)."""

    async def input(self, prompt: str, password: bool) -> str | None:
        """A line for an input request, once someone answers; None: no answer."""


class Phase(enum.Enum):
    """Where a run is.

    A run that goes well is ``WAITING``, ``RUNNING``, (``SETTLING``,) ``FINISHED``. A limit or
    a person's stop moves a waiting or running run to ``INTERRUPTING``, which ends as the
    kernel ends the run (``SETTLING``, ``FINISHED``) or, if it does not in time, ``GAVE_UP``.
    While ``SETTLING`` (code the run left, a timer, still runs) a limit or a stop interrupts
    the kernel too, and the run stays ``SETTLING``, now for ``interrupt_grace``: the probe,
    sent again, answers (``FINISHED``) or the kernel is given up (``GAVE_UP``); a probe left
    unanswered on a kernel kept would print its marker into a later run.
    A kernel found dead ends any phase before ``SETTLING`` as ``DIED``.
    """

    #: Sent; the kernel has not said it is busy with it yet.
    WAITING = "waiting"
    #: The kernel said it is busy with it: the time limit counts from then.
    RUNNING = "running"
    #: Interrupted; the kernel has ``interrupt_grace`` seconds to end the run.
    INTERRUPTING = "interrupting"
    #: Reply and idle are in; for a kernel that may send output after them, it is still taken
    #: until the language's done probe says all of it is out.
    SETTLING = "settling"
    #: Over: the kernel ended the run, by itself or on the interrupt.
    FINISHED = "finished"
    #: Over: the kernel ignored the interrupt, and must be restarted.
    GAVE_UP = "gave_up"
    #: Over: the kernel's process is gone.
    DIED = "died"

    @property
    def over(self) -> bool:
        return self in (Phase.FINISHED, Phase.GAVE_UP, Phase.DIED)


class Cause(enum.Enum):
    """Why a run was interrupted: it decides the run's status."""

    TIME_LIMIT = "time_limit"
    OUTPUT_FLOOD = "output_flood"
    #: A person asked (:meth:`~kernelpad.kernels.runner.KernelRunner.interrupt`).
    STOP = "stop"
    #: The code asked for input when none was left and had not ended ``EOF_GRACE`` later.
    NO_INPUT = "no_input"
    #: Nobody answered the code's input request within ``input_limit``.
    NO_ANSWER = "no_answer"


@dataclass(frozen=True)
class _Question:
    """An input request passed on to the listener, while nobody has answered it."""

    prompt: str
    password: bool
    answer: asyncio.Future[str | None]
    asked_at: float


class RunLoop:
    """One request's run, from sent to over, as a state machine over the kernel's messages.

    :meth:`run` repeats a step until the phase is over: take a participant's answer if one has
    come, check the limits, then wait for one message (no longer than the phase's deadline, nor
    so long that a dead kernel or a stop would go unseen) and handle it. Each change of phase
    is one method; each limit is one check. ``deadline`` is the one clock, meaning the phase's
    limit: the time limit (or the EOF grace, if sooner) while waiting or running, the interrupt
    grace while interrupting, the time limit or ``SETTLE_LIMIT`` after idle, whichever is
    later, while settling. ``time_end`` is when the time limit ends, whatever the phase.
    """

    def __init__(
        self,
        kernel: KernelHandle,
        msg_id: str,
        limits: Limits,
        lines: list[str],
        listener: RunListener | None = None,
        stop: asyncio.Event | None = None,
    ) -> None:
        self.kernel = kernel
        self.msg_id = msg_id
        self.limits = limits
        self.lines = lines  # the stdin lines not used yet
        self.listener = listener
        self.stop = stop
        self.outputs = OutputCollector(
            limits.max_output, listener.output if listener is not None else None
        )
        self.phase = Phase.WAITING
        self.started = time.monotonic()
        self.deadline = self.started + limits.time_limit
        # When the time limit ends: it counts from busy, and not while a person is asked.
        self.time_end = self.deadline
        self.busy_at: float | None = None  # when the kernel said it is busy with the request
        self.code_started: float | None = None  # when it said it runs the code (execute_input)
        self.reply: dict[str, Any] | None = None  # the content of the execute_reply
        self.idle = False  # the kernel's last status for the request
        # The dates the kernel put on its busy and (last) idle status for the request: its
        # own clock, which tells its time from the hops to and from it.
        self.kernel_dates: dict[str, object] = {}
        self.flooded = False  # past the flood limit: the next step interrupts
        self.cause: Cause | None = None  # set once interrupted
        self.input_missing: str | None = None
        self.question: _Question | None = None
        # While a question waits for a person, the time limit is paused: what was left of it.
        self.paused: float | None = None
        # When a run that got the end of input is interrupted unless it ended by itself.
        self.eof_end: float | None = None
        self.probe: DoneProbe | None = None  # while settling: the language's done probe
        self.interrupted_settling = False  # interrupted while settling: the grace is running

    async def run(self) -> None:
        """Run until the phase is over; the run's facts are then the attributes."""
        while not self.phase.over:
            await self._step()

    async def _step(self) -> None:
        self._take_answer()
        now = time.monotonic()
        if self.phase is Phase.INTERRUPTING or self.interrupted_settling:
            if now >= self.deadline:
                self._give_up()
                return
        else:
            cause = self._limit_reached(now)
            if cause is not None:
                await self._interrupt(cause)
                return
        # A question out there or a stop that may come is looked for often; otherwise the
        # wait only bounds how long a dead kernel goes unseen.
        poll = LIVENESS_INTERVAL if self.question is None and self.stop is None else INPUT_POLL
        item = await self.kernel.receive(min(self.deadline - now, poll))
        if item is None:
            if not await self.kernel.is_alive():
                if self.phase is Phase.SETTLING:
                    self._settled()  # the run itself ended; the next one finds the kernel dead
                else:
                    self._die()
            return
        self._handle(*item)

    # The limits, checked before each wait until the run is interrupted.

    def _limit_reached(self, now: float) -> Cause | None:
        """Why the run must be interrupted now, if it must."""
        if self.flooded:
            return Cause.OUTPUT_FLOOD
        if self.cause is None and self._stop_due(now):
            return Cause.STOP  # (a run interrupted before it settles has had its stop)
        if now >= self.deadline:
            if self.paused is not None:
                return Cause.NO_ANSWER  # the deadline is the input limit's
            # Once the input ran out the deadline is the EOF grace's, if that came first.
            return Cause.NO_INPUT if self.eof_end is not None else Cause.TIME_LIMIT
        return None

    def _stop_due(self, now: float) -> bool:
        """Whether a person's stop is to be carried out: it waits until the code has started,
        since an interrupt that hits the kernel's own machinery first is lost, and the kernel
        never answers."""
        if self.stop is None or not self.stop.is_set() or self.busy_at is None:
            return False
        return now >= self.busy_at + SETTLE_INTERRUPT or (
            self.code_started is not None and now >= self.code_started + CODE_STARTED_GRACE
        )

    # The changes of phase.

    def _busy(self) -> None:
        """WAITING -> RUNNING: the time limit starts over from now."""
        self.phase = Phase.RUNNING
        self.busy_at = time.monotonic()
        self.deadline = self.time_end = self.busy_at + self.limits.time_limit

    async def _interrupt(self, cause: Cause) -> None:
        """WAITING or RUNNING -> INTERRUPTING, for ``cause``; or SETTLING, interrupted (a run
        interrupted before keeps its first cause)."""
        if self.phase is Phase.SETTLING:
            self.interrupted_settling = True
            self.outputs.note(
                "the code had ended, but a timer or callback it left was still running;"
                " it was interrupted"
            )
        else:
            self.phase = Phase.INTERRUPTING
        self.cause = self.cause or cause
        if self.question is not None:
            # Nobody answers it now: the kernel gets the end of input (one that waits for
            # input, Deno's, takes no interrupt before it has an answer), the people's box goes.
            question, self.question, self.paused = self.question, None, None
            question.answer.cancel()
            self.kernel.input_reply(self.kernel.language.language.eof)
        await self.kernel.interrupt()
        self.kernel.interrupted_once = True
        if self.probe is not None:
            # The probe again, behind the interrupt: Deno's kernel, interrupted in a timer,
            # runs no more code (not even the probe's timer) until it takes a request.
            self.probe.send(self.kernel)
        self.deadline = time.monotonic() + self.limits.interrupt_grace

    def _give_up(self) -> None:
        """INTERRUPTING -> GAVE_UP: the interrupt grace ran out."""
        self.phase = Phase.GAVE_UP
        self._forget_question()

    def _die(self) -> None:
        """-> DIED: the kernel was silent, and its process is gone."""
        self.phase = Phase.DIED
        self._forget_question()

    def _ended(self) -> None:
        """-> SETTLING, or FINISHED for a kernel that sends nothing after idle: the reply and
        the idle status are in. Settling sends the language's done probe, silent, on the same
        kernel; the run's messages still come while it runs."""
        self._forget_question()
        probe = self.kernel.language.language.done_probe
        if not probe:
            self.phase = Phase.FINISHED
            return
        self.probe = DoneProbe(probe)
        self.probe.send(self.kernel)
        self.phase = Phase.SETTLING
        self.eof_end = None  # the run ended by itself after its end of input
        # A run interrupted already (a stop, say) has no time left to wait for.
        least = time.monotonic() + SETTLE_LIMIT
        self.deadline = least if self.cause is not None else max(least, self.time_end)

    def _settled(self) -> None:
        """SETTLING -> FINISHED: the probe's marker and reply came (or the probe failed, or
        the wait is over)."""
        self.phase = Phase.FINISHED
        self._forget_question()

    # The kernel's messages.

    def _handle(self, channel: str, msg: Message) -> None:
        # Back-ends drop other requests' messages already; the parent checks are the guarantee.
        parent = msg.get("parent_header", {}).get("msg_id")
        msg_type = msg["header"].get("msg_type")
        probe = self.probe
        if channel == "stdin":
            # While settling too: a timer the run left may ask (Deno's kernel names the request
            # it runs now as the parent, the probe's once it took that).
            ours = parent == self.msg_id or (probe is not None and probe.owns(parent))
            if ours and msg_type == "input_request":
                self._input_request(_content(msg))
        elif self.phase is Phase.SETTLING:
            if parent == self.msg_id:
                if channel == "iopub" and msg_type != "status":
                    self.outputs.handle(msg)
                    self._check_flood()
            elif probe is not None and probe.owns(parent):
                probe.take(channel, msg, self.outputs)
                self._check_flood()
                if probe.done:
                    self._settled()
        elif parent != self.msg_id:
            return
        elif channel == "shell":
            if msg_type == "execute_reply":
                self.reply = _content(msg)
                self._end_if_done()
        elif msg_type == "status":
            state = _content(msg).get("execution_state")
            self.idle = state == "idle"
            if state == "idle" or (state == "busy" and "busy" not in self.kernel_dates):
                self.kernel_dates[state] = msg["header"].get("date")
            if state == "busy" and self.phase is Phase.WAITING:
                self._busy()
            self._end_if_done()
        else:
            if msg_type == "execute_input" and self.code_started is None:
                self.code_started = time.monotonic()
            self.outputs.handle(msg)
            self._check_flood()

    def _check_flood(self) -> None:
        if self.outputs.dropped > self.limits.flood_limit and self.cause is None:
            self.flooded = True

    def _end_if_done(self) -> None:
        if self.reply is not None and self.idle:
            self._ended()

    # Input requests.

    def _input_request(self, content: dict[str, Any]) -> None:
        prompt = str(content.get("prompt", ""))
        password = bool(content.get("password", False))
        if self.lines and self.cause is None:
            self._answer(prompt, password, self.lines.pop(0))
        elif self.listener is not None and self.cause is None:
            asked = asyncio.ensure_future(self.listener.input(prompt, password))
            # A person reads the question and types: that is not the code's time. The run
            # waits up to the input limit instead, and gets the rest of its time back after.
            now = time.monotonic()
            self.question = _Question(prompt, password, asked, now)
            self.paused = max(self.deadline - now, 0.0)
            self.deadline = now + self.limits.input_limit
        else:
            self._answer(prompt, password, None)

    def _take_answer(self) -> None:
        """Pass a participant's answer on, if it has come."""
        question = self.question
        if question is None or not question.answer.done():
            return
        self.question = None
        if self.paused is not None:
            now = time.monotonic()
            self.deadline = now + self.paused
            self.time_end += now - question.asked_at
            self.paused = None
        answer = question.answer
        line = None if answer.cancelled() or answer.exception() else answer.result()
        self._answer(question.prompt, question.password, line)

    def _answer(self, prompt: str, password: bool, line: str | None) -> None:
        if line is not None and self.cause is None:
            self.kernel.input_reply(line)
            # Shown as a console shows it, but a password is not shown (nor stored).
            self.outputs.stream("stdout", f"{prompt}{'' if password else line}\n")
            return
        # Answered even after an interrupt: a kernel waiting for input (Deno's) cannot take
        # the interrupt until it has its answer.
        self.kernel.input_reply(self.kernel.language.language.eof)
        if self.input_missing is None:
            self.input_missing = prompt
        if self.eof_end is None:
            self.eof_end = time.monotonic() + EOF_GRACE
            self.deadline = min(self.deadline, self.eof_end)

    def _forget_question(self) -> None:
        if self.question is not None:
            self.question.answer.cancel()


def _content(msg: Message) -> dict[str, Any]:
    content = msg.get("content")
    return content if isinstance(content, dict) else {}
