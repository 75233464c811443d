"""The run loop on a scripted kernel: every way a run can end, with no kernel and no server.

A :class:`ScriptedKernel` plays what a kernel would send for one request, in order, with pauses
and with points where it waits for the run loop (an interrupt, an answer to an input request);
it records what the loop did to it. The limits are tens of milliseconds, so the timings asserted
are the loop's own rules, measured on the kernel's side. A Deno-like kernel also answers the
run's done probe (:class:`Marker`, and messages whose parent is :data:`PROBE`).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from kernelpad.kernels import run_loop
from kernelpad.kernels.base import KernelBackend, KernelHandle, Message
from kernelpad.kernels.execution import ExecutionResult, run_code
from kernelpad.kernels.languages import InstalledLanguage, Language
from kernelpad.kernels.run_loop import (
    CODE_STARTED_GRACE,
    SETTLE_INTERRUPT,
    SETTLE_LIMIT,
    Cause,
    Limits,
    Phase,
    RunLoop,
)

REQUEST = "request-1"
PROBE = "probe-1"
# The done probe sent again, after an interrupt while the run settles.
PROBE_AGAIN = "probe-2"
# Room enough that a run meant to end by itself never meets its time limit.
RELAXED = Limits(time_limit=5.0, interrupt_grace=1.0, max_output=1000, flood_limit=10_000)
TIGHT = Limits(time_limit=0.05, interrupt_grace=0.1, max_output=1000, flood_limit=10_000)
# Slack for the event loop's own delays when a time is asserted from below and above: wide
# enough for a loaded machine, narrow enough that each rule is told from the next one.
SLACK = 0.3
# The end-of-input grace where a test waits it out: shorter than kernelpad's, same rule.
GRACE = 0.4


def language(done_probe: str = "", eof: str = "\x04") -> InstalledLanguage:
    """An installed language for the fake kernel: ipykernel-like by default (nothing after idle,
    EOT as end of input); ``done_probe`` and ``eof=""`` make it Deno-like."""
    return InstalledLanguage(
        Language(
            id="fake",
            display_name="Fake",
            kernel_names=("fake",),
            file_extension=".fake",
            template="",
            done_probe=done_probe,
            eof=eof,
        ),
        kernel_name="fake",
        kernel_display_name="Fake",
        version=None,
    )


# What a script is made of.


@dataclass(frozen=True)
class Send:
    """A message from the kernel, sent as soon as the loop asks for one."""

    channel: str
    msg_type: str
    content: dict[str, Any] = field(default_factory=dict)
    parent: str = REQUEST
    date: str | None = None  # the kernel's date on it, if it dates its messages


@dataclass(frozen=True)
class Marker:
    """What the done probe prints once the run's output is all out, after ``before``: the
    marker of its sending ``of`` (the last by default), under the last sending's request."""

    before: str = ""
    of: int = -1


@dataclass(frozen=True)
class Pause:
    """Nothing from the kernel for ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Until:
    """Nothing from the kernel until ``ready(kernel)``: an interrupt, an answer."""

    ready: Callable[[ScriptedKernel], bool]


@dataclass(frozen=True)
class Flood:
    """``message`` again and again, as often as the loop asks, until the kernel is interrupted."""

    message: Send


@dataclass(frozen=True)
class Die:
    """The kernel's process is gone from here on: silence, and ``is_alive`` false."""


Step = Send | Marker | Pause | Until | Flood | Die

# The fake's probe: its code is the marker itself, which :class:`Marker` prints back.
DONE_PROBE = "{marker}"
# One that also says whether it waits for the timers due whatever the kernel says.
WAITING_PROBE = "waits={waits} {marker}"


def status(state: str, date: str | None = None) -> Send:
    return Send("iopub", "status", {"execution_state": state}, date=date)


def stream(text: str, name: str = "stdout") -> Send:
    return Send("iopub", "stream", {"name": name, "text": text})


def reply(state: str = "ok", count: int = 1, parent: str = REQUEST) -> Send:
    return Send("shell", "execute_reply", {"status": state, "execution_count": count}, parent)


def ask(prompt: str, password: bool = False) -> Send:
    return Send("stdin", "input_request", {"prompt": prompt, "password": password})


def interrupted_error() -> Send:
    return Send(
        "iopub", "error", {"ename": "KeyboardInterrupt", "evalue": "", "traceback": ["stopped"]}
    )


def interrupted() -> Until:
    return Until(lambda kernel: bool(kernel.interrupts))


def answered(count: int) -> Until:
    return Until(lambda kernel: len(kernel.input_replies) >= count)


# Scripts of runs that start and end the usual way.
BUSY = [status("busy"), Send("iopub", "execute_input", {"execution_count": 1})]
DONE = [reply(), status("idle")]


def probe_ends(probe: str = PROBE) -> list[Step]:
    """The done probe's reply and idle status, for its sending ``probe``."""
    return [reply("ok", 1, probe), Send("iopub", "status", {"execution_state": "idle"}, probe)]


# The done probe's own messages around its marker: busy, its code, its reply, idle.
PROBE_STARTS = [Send("iopub", "status", {"execution_state": "busy"}, PROBE)]
PROBE_ENDS = probe_ends()
STOPPED = [interrupted_error(), reply("error"), status("idle")]


class ScriptedKernel(KernelHandle):
    """A kernel that plays ``script`` for its one request and records what was done to it."""

    def __init__(self, script: list[Step], done_probe: str = "", eof: str = "\x04") -> None:
        self.kernel_id = "scripted"
        self.language = language(done_probe, eof)
        self.language_info = {"name": "fake"}
        self.script = list(script)
        self.alive = True
        self.requests: list[str] = []
        self.ended = False
        self.interrupts: list[float] = []  # when each came (time.monotonic)
        self.input_replies: list[str] = []
        self.input_times: list[float] = []
        self.sent: list[tuple[float, str]] = []  # (when, msg_type) of what the loop was given
        self.probes: list[dict[str, Any]] = []  # the content of each done probe's request
        self._pause_end: float | None = None

    def execute_request(self, code: str) -> str:
        self.requests.append(code)
        return REQUEST

    def send_request(
        self, msg_type: str, content: dict[str, Any], keep_current: bool = False
    ) -> str:
        # The done probe only: questions are test_runner's.
        assert (msg_type, keep_current) == ("execute_request", True)
        self.probes.append(content)
        return f"probe-{len(self.probes)}"

    def input_reply(self, value: str) -> None:
        self.input_replies.append(value)
        self.input_times.append(time.monotonic())

    def end_request(self) -> None:
        self.ended = True

    async def interrupt(self) -> None:
        self.interrupts.append(time.monotonic())

    async def is_alive(self) -> bool:
        return self.alive

    async def shutdown(self) -> None:
        self.alive = False

    def sent_at(self, msg_type: str) -> float:
        return next(when for when, sent in self.sent if sent == msg_type)

    async def receive(self, timeout: float) -> tuple[str, Message] | None:
        deadline = time.monotonic() + timeout
        while self.script:
            step = self.script[0]
            now = time.monotonic()
            if isinstance(step, Send):
                self.script.pop(0)
                return self._send(step)
            if isinstance(step, Marker):
                self.script.pop(0)
                marker = re.search(r"kernelpad-done-\w+", self.probes[step.of]["code"])
                assert marker is not None
                text = step.before + marker.group() + "\n"
                current = f"probe-{len(self.probes)}"
                return self._send(
                    Send("iopub", "stream", {"name": "stdout", "text": text}, current)
                )
            if isinstance(step, Flood):
                if not self.interrupts:
                    return self._send(step.message)
                self.script.pop(0)
            elif isinstance(step, Die):
                self.script.pop(0)
                self.alive = False
            elif isinstance(step, Pause):
                if self._pause_end is None:
                    self._pause_end = now + step.seconds
                if now >= self._pause_end:
                    self.script.pop(0)
                    self._pause_end = None
                elif deadline <= now:
                    return None
                else:
                    await asyncio.sleep(min(self._pause_end, deadline) - now)
            elif step.ready(self):
                self.script.pop(0)
            elif deadline <= now:
                return None
            else:
                await asyncio.sleep(min(0.005, deadline - now))
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        return None

    def _send(self, step: Send) -> tuple[str, Message]:
        self.sent.append((time.monotonic(), step.msg_type))
        message: Message = {
            "header": {
                "msg_type": step.msg_type,
                "msg_id": f"m{len(self.sent)}",
                **({"date": step.date} if step.date is not None else {}),
            },
            "parent_header": {"msg_id": step.parent},
            "content": step.content,
            "content_size": len(json.dumps(step.content)),
        }
        return step.channel, message


class Watcher:
    """A listener: sees the outputs, and answers input requests with ``answers`` after a short
    while (a participant typing)."""

    def __init__(self, answers: list[str | None] | None = None, delay: float = 0.02) -> None:
        self.answers = list(answers or [])
        self.delay = delay
        self.started_count = 0
        self.outputs: list[dict[str, Any]] = []
        self.asked: list[tuple[str, bool]] = []

    def started(self) -> None:
        self.started_count += 1

    def output(self, output: dict[str, Any]) -> None:
        self.outputs.append(dict(output))

    async def input(self, prompt: str, password: bool) -> str | None:
        self.asked.append((prompt, password))
        await asyncio.sleep(self.delay)
        return self.answers.pop(0)


async def run(
    kernel: ScriptedKernel,
    limits: Limits = RELAXED,
    stdin: list[str] | None = None,
    listener: Watcher | None = None,
    stop: asyncio.Event | None = None,
) -> ExecutionResult:
    result = await run_code(kernel, "code", limits, stdin, listener, stop)
    assert kernel.requests == ["code"]
    assert kernel.ended, "the request must be ended, whatever happened"
    return result


def note(text: str) -> str:
    return f"\n[kernelpad: {text}]\n"


# Runs that end by themselves.


async def test_a_run_that_ends_well_gives_its_streams_result_and_count() -> None:
    kernel = ScriptedKernel(
        [
            status("busy"),
            Send("iopub", "execute_input", {"execution_count": 7}),
            stream("out\n"),
            stream("more\n"),
            stream("err\n", "stderr"),
            # Not this request's: never part of its outputs.
            Send("iopub", "stream", {"name": "stdout", "text": "stray\n"}, parent="other"),
            Send("shell", "execute_reply", {"status": "error"}, parent="other"),
            Send(
                "iopub",
                "execute_result",
                {"data": {"text/plain": "42"}, "metadata": {}, "execution_count": 7},
            ),
            reply("ok", 7),
            status("idle"),
            stream("after idle\n"),  # a kernel without a settle time is not waited for
        ]
    )
    watcher = Watcher()
    result = await run(kernel, listener=watcher)
    assert result.status == "ok"
    assert (result.stdout, result.stderr) == ("out\nmore\n", "err\n")
    expected = [
        {"output_type": "stream", "name": "stdout", "text": "out\nmore\n"},
        {"output_type": "stream", "name": "stderr", "text": "err\n"},
        {
            "output_type": "execute_result",
            "data": {"text/plain": "42"},
            "metadata": {},
            "execution_count": 7,
        },
    ]
    assert result.outputs == expected
    assert result.execution_count == 7
    assert not (result.timed_out or result.interrupted or result.needs_restart)
    assert not result.output_truncated and result.output_size == len("out\nmore\nerr\n")
    assert result.error is None and result.input_missing is None
    assert kernel.interrupts == [] and kernel.input_replies == []
    assert watcher.started_count == 1
    # The listener gets each piece of a stream as it comes.
    assert [o.get("text") for o in watcher.outputs] == ["out\n", "more\n", "err\n", None]


@pytest.mark.parametrize(
    ("busy", "idle", "seconds"),
    [
        # ipykernel dates to the microsecond, Deno's kernel to the millisecond.
        ("2026-12-05T10:00:00.001000Z", "2026-12-05T10:00:00.008500Z", 0.0075),
        ("2026-12-05T10:00:00.001Z", "2026-12-05T10:00:00.013Z", 0.012),
        ("2026-12-05T10:00:00.001+00:00", "2026-12-05T11:00:00.001+01:00", 0.0),
        # Not dates, one zone missing, or running backwards: not counted.
        ("yesterday", "2026-12-05T10:00:00.008Z", None),
        ("2026-12-05T10:00:00.001", "2026-12-05T10:00:00.008Z", None),
        ("2026-12-05T10:00:00.009Z", "2026-12-05T10:00:00.008Z", None),
        (None, "2026-12-05T10:00:00.008Z", None),
    ],
)
async def test_the_kernels_own_time_is_read_from_its_busy_and_last_idle_dates(
    busy: str | None, idle: str | None, seconds: float | None
) -> None:
    """From the kernel's first busy status to its last idle one, by the dates it put on them:
    a second busy (a kernel's own request inside the run) does not move the start."""
    kernel = ScriptedKernel(
        [
            status("busy", busy),
            status("idle", "2026-12-05T10:00:00.003Z"),
            status("busy", "2026-12-05T10:00:00.004Z"),
            stream("x"),
            reply(),
            status("idle", idle),
        ]
    )
    result = await run(kernel)
    assert result.status == "ok"
    if seconds is None:
        assert result.kernel_time is None
    else:
        assert result.kernel_time == pytest.approx(seconds, abs=1e-9)


async def test_a_kernel_that_dates_nothing_has_no_time_of_its_own() -> None:
    result = await run(ScriptedKernel([*BUSY, *DONE]))
    assert result.kernel_time is None


async def test_the_reply_gives_the_count_when_nothing_else_did() -> None:
    kernel = ScriptedKernel([status("busy"), reply("ok", 12), status("idle")])
    result = await run(kernel)
    assert (result.status, result.execution_count, result.outputs) == ("ok", 12, [])


async def test_an_error_is_structured_and_in_stderr_but_shown_once() -> None:
    traceback = ["\x1b[31mTraceback (most recent call last)\x1b[0m", "ValueError: boom"]
    kernel = ScriptedKernel(
        [
            *BUSY,
            stream("before\n"),
            Send(
                "iopub",
                "error",
                {"ename": "ValueError", "evalue": "boom", "traceback": traceback},
            ),
            reply("error"),
            status("idle"),
        ]
    )
    result = await run(kernel)
    assert result.status == "error"
    plain = "Traceback (most recent call last)\nValueError: boom"
    assert result.error == {
        "ename": "ValueError",
        "evalue": "boom",
        "traceback": traceback,
        "traceback_text": plain,
    }
    assert result.stdout == "before\n"
    assert result.stderr == plain + "\n"
    # The notebook shows the traceback once: the error, not a stderr output too.
    assert [o["output_type"] for o in result.outputs] == ["stream", "error"]
    assert not result.interrupted and kernel.interrupts == []


async def test_reply_and_idle_end_the_run_in_either_order() -> None:
    kernel = ScriptedKernel([*BUSY, stream("x"), status("idle"), reply()])
    result = await run(kernel)
    assert (result.status, result.stdout) == ("ok", "x")


# The time limit and the interrupt grace.


async def test_the_time_limit_interrupts_and_the_kernel_stops() -> None:
    kernel = ScriptedKernel([*BUSY, stream("tick\n"), interrupted(), *STOPPED])
    result = await run(kernel, TIGHT)
    assert result.status == "timeout"
    assert result.timed_out and result.interrupted and not result.needs_restart
    assert len(kernel.interrupts) == 1
    assert result.stdout == "tick\n"
    assert result.error is not None and result.error["ename"] == "KeyboardInterrupt"
    waited = kernel.interrupts[0] - kernel.sent_at("status")
    assert TIGHT.time_limit <= waited < TIGHT.time_limit + SLACK


async def test_the_time_limit_counts_from_the_kernel_saying_busy() -> None:
    # The kernel takes longer to start than the limit, but runs the code for less.
    limits = Limits(time_limit=0.1, interrupt_grace=0.1, max_output=1000, flood_limit=10_000)
    kernel = ScriptedKernel([Pause(0.06), *BUSY, Pause(0.06), *DONE])
    result = await run(kernel, limits)
    assert (result.status, kernel.interrupts) == ("ok", [])


async def test_a_kernel_that_never_says_busy_is_timed_from_the_request() -> None:
    kernel = ScriptedKernel([interrupted(), *STOPPED])
    started = time.monotonic()
    result = await run(kernel, TIGHT)
    assert result.status == "timeout" and len(kernel.interrupts) == 1
    assert kernel.interrupts[0] - started >= TIGHT.time_limit


async def test_an_ignored_interrupt_gives_up_after_the_grace_and_needs_a_restart() -> None:
    kernel = ScriptedKernel([*BUSY, stream("spinning\n")])
    result = await run(kernel, TIGHT)
    assert result.needs_restart and result.timed_out and result.interrupted
    # No reply came: the status says timeout, the restart is needs_restart's to say.
    assert result.status == "timeout"
    assert len(kernel.interrupts) == 1
    assert result.duration >= TIGHT.time_limit + TIGHT.interrupt_grace
    assert result.stdout == "spinning\n"


async def test_the_loop_ends_in_gave_up_for_an_ignored_interrupt() -> None:
    kernel = ScriptedKernel([*BUSY])
    loop = RunLoop(kernel, kernel.execute_request("code"), TIGHT, [])
    await loop.run()
    assert (loop.phase, loop.cause, loop.reply) == (Phase.GAVE_UP, Cause.TIME_LIMIT, None)


async def test_a_kernel_saying_busy_after_the_interrupt_does_not_restart_the_clock() -> None:
    # Slower to start than the time limit: interrupted before it said busy, it never stops.
    kernel = ScriptedKernel([Pause(0.08), *BUSY])
    result = await run(kernel, TIGHT)
    assert (result.status, result.needs_restart, len(kernel.interrupts)) == ("timeout", True, 1)


async def test_the_kernel_stopping_late_within_the_grace_keeps_it() -> None:
    kernel = ScriptedKernel([*BUSY, interrupted(), Pause(0.05), *STOPPED])
    result = await run(kernel, TIGHT)
    assert (result.status, result.needs_restart, len(kernel.interrupts)) == ("timeout", False, 1)


# Input requests.


async def test_input_requests_are_answered_from_the_stdin_lines_and_echoed() -> None:
    kernel = ScriptedKernel(
        [
            *BUSY,
            ask("First? "),
            answered(1),
            ask("Password: ", password=True),
            answered(2),
            stream("hi a\n"),
            *DONE,
        ]
    )
    result = await run(kernel, stdin=["a", "secret", "unused"])
    assert kernel.input_replies == ["a", "secret"]
    # A password is not shown.
    assert result.stdout == "First? a\nPassword: \nhi a\n"
    assert (result.status, result.input_missing, result.interrupted) == ("ok", None, False)


async def test_input_requests_without_stdin_lines_go_to_the_listener() -> None:
    kernel = ScriptedKernel(
        [*BUSY, ask("First? "), answered(1), ask("Second? "), answered(2), *DONE]
    )
    watcher = Watcher(["y"])
    result = await run(kernel, stdin=["from stdin"], listener=watcher)
    assert kernel.input_replies == ["from stdin", "y"]
    assert watcher.asked == [("Second? ", False)]
    assert result.stdout == "First? from stdin\nSecond? y\n"
    assert result.status == "ok" and result.input_missing is None


async def test_a_listener_with_no_answer_gets_the_end_of_input() -> None:
    kernel = ScriptedKernel([*BUSY, ask("Name? "), answered(1), stream("no name\n"), *DONE])
    watcher = Watcher([None])
    result = await run(kernel, listener=watcher, stop=asyncio.Event())
    assert kernel.input_replies == ["\x04"]
    # The code ended by itself once its input ran out: its own status stands.
    assert (result.status, result.input_missing, result.interrupted) == ("ok", "Name? ", False)
    assert result.stdout == "no name\n"


async def test_no_line_left_gets_an_end_of_file_then_an_interrupt_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run_loop, "EOF_GRACE", GRACE)
    kernel = ScriptedKernel([*BUSY, ask("Name? "), answered(1), interrupted(), *STOPPED])
    result = await run(kernel)
    assert kernel.input_replies == ["\x04"]
    assert len(kernel.interrupts) == 1
    waited = kernel.interrupts[0] - kernel.input_times[0]
    assert GRACE <= waited < GRACE + SLACK
    assert result.status == "error"
    assert result.input_missing == "Name? "
    assert result.interrupted and not result.timed_out and not result.needs_restart
    assert result.stderr.endswith(
        note(
            "the code asked for input ('Name?') but no line was left to give it, so it was"
            " stopped; send the lines it reads in 'stdin'"
        )
    )


async def test_a_deno_like_kernel_gets_an_empty_line_as_end_of_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run_loop, "EOF_GRACE", 0.05)
    kernel = ScriptedKernel(
        [*BUSY, ask(""), answered(1), interrupted(), reply("error"), status("idle")],
        eof="",
    )
    result = await run(kernel)
    assert kernel.input_replies == [""]
    assert (result.status, result.input_missing, len(kernel.interrupts)) == ("error", "", 1)
    # No prompt to quote.
    assert result.stderr == note(
        "the code asked for input but no line was left to give it, so it was stopped; send the"
        " lines it reads in 'stdin'"
    )


async def test_code_reading_to_the_end_of_its_input_ends_by_itself() -> None:
    kernel = ScriptedKernel(
        [*BUSY, ask(""), answered(1), ask(""), answered(2), stream("1 line\n"), *DONE]
    )
    result = await run(kernel, stdin=["5"])
    assert kernel.input_replies == ["5", "\x04"]
    assert (result.status, result.input_missing, kernel.interrupts) == ("ok", "", [])
    assert result.stdout == "5\n1 line\n"


async def test_a_stop_while_a_question_waits_ends_it_with_the_end_of_input() -> None:
    # Someone stops the run while another is still typing the answer: the kernel gets the end
    # of input with the interrupt (one that waits for input, Deno's, takes the interrupt only
    # once it has an answer), and the late answer is used nowhere.
    kernel = ScriptedKernel([*BUSY, ask("Name? "), answered(1), *STOPPED], eof="")
    watcher = Watcher(["too late"], delay=0.5)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(0.2, stop.set)
    result = await run(kernel, listener=watcher, stop=stop)
    assert kernel.input_replies == [""]
    assert len(kernel.interrupts) == 1
    assert abs(kernel.interrupts[0] - kernel.input_times[0]) < SLACK
    assert result.status == "error" and result.interrupted
    assert "too late" not in result.stdout


async def test_input_asked_for_after_the_interrupt_gets_no_line() -> None:
    kernel = ScriptedKernel([*BUSY, interrupted(), ask("More? "), answered(1), *STOPPED])
    result = await run(kernel, TIGHT, stdin=["unused"])
    assert kernel.input_replies == ["\x04"]
    assert (result.status, result.input_missing, len(kernel.interrupts)) == ("timeout", "More? ", 1)
    assert "unused" not in result.stdout


# Output.


async def test_an_output_flood_is_interrupted() -> None:
    limits = Limits(time_limit=5.0, interrupt_grace=1.0, max_output=100, flood_limit=1000)
    kernel = ScriptedKernel([*BUSY, Flood(stream("x" * 100)), reply("error"), status("idle")])
    result = await run(kernel, limits)
    assert result.status == "output_limit"
    assert result.interrupted and not result.timed_out and not result.needs_restart
    assert len(kernel.interrupts) == 1
    # Interrupted after the first message that took the dropped output past the flood limit:
    # 1100 characters dropped, in the twelfth message.
    assert sum(1 for _, sent in kernel.sent if sent == "stream") == 12
    assert result.output_truncated and result.output_size == 1200
    assert result.stdout == "x" * 100 + (
        "\n[kernelpad: output truncated, 100 of 1200 characters shown; the limit is 100"
        " characters]\n"
    )


async def test_output_past_the_cap_but_within_the_flood_limit_is_only_cut() -> None:
    limits = Limits(time_limit=5.0, interrupt_grace=1.0, max_output=10, flood_limit=1000)
    kernel = ScriptedKernel([*BUSY, stream("a" * 8), stream("b" * 8), *DONE])
    result = await run(kernel, limits)
    assert (result.status, result.interrupted, kernel.interrupts) == ("ok", False, [])
    assert result.stdout.startswith("a" * 8 + "bb\n[kernelpad: output truncated, 10 of 16")


# The kernel's death.


async def test_a_kernel_that_dies_ends_the_run() -> None:
    kernel = ScriptedKernel([*BUSY, stream("last words\n"), Die()])
    result = await run(kernel)
    assert result.status == "kernel_died"
    assert result.needs_restart and not result.interrupted and kernel.interrupts == []
    assert result.stdout == "last words\n"
    assert result.stderr == note("the kernel died during this run")
    # Seen at the first silence: no time limit is waited for.
    assert result.duration < run_loop.LIVENESS_INTERVAL + SLACK


async def test_a_kernel_that_dies_on_the_interrupt_ends_the_run() -> None:
    kernel = ScriptedKernel([*BUSY, interrupted(), Die()])
    result = await run(kernel, TIGHT)
    assert (result.status, result.timed_out, result.needs_restart) == ("kernel_died", True, True)
    assert len(kernel.interrupts) == 1


# A person's stop.


async def stop_later(stop: asyncio.Event, delay: float) -> float:
    await asyncio.sleep(delay)
    stop.set()
    return time.monotonic()


async def test_a_stop_after_the_code_started_interrupts_it() -> None:
    kernel = ScriptedKernel([*BUSY, stream("working\n"), interrupted(), *STOPPED])
    stop = asyncio.Event()
    stopping = asyncio.ensure_future(stop_later(stop, 0.15))
    result = await run(kernel, stop=stop)
    stopped_at = await stopping
    assert len(kernel.interrupts) == 1
    assert stopped_at <= kernel.interrupts[0] < stopped_at + SLACK
    # The kernel's own status stands: a stop is no time limit.
    assert result.status == "error" and result.error is not None
    assert result.interrupted and not result.timed_out and not result.needs_restart


async def test_a_stop_before_the_code_started_waits_for_the_kernel_to_run_it() -> None:
    kernel = ScriptedKernel([Pause(0.05), status("busy"), interrupted(), *STOPPED])
    stop = asyncio.Event()
    stop.set()
    result = await run(kernel, stop=stop)
    assert len(kernel.interrupts) == 1
    # Busy but silent: the code is taken to have started SETTLE_INTERRUPT later.
    waited = kernel.interrupts[0] - kernel.sent_at("status")
    assert SETTLE_INTERRUPT <= waited < SETTLE_INTERRUPT + SLACK
    assert (result.status, result.timed_out) == ("error", False)


async def test_a_stop_before_the_code_started_goes_sooner_once_it_says_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The busy rule made long, so that the execute_input rule is told from it on any machine.
    monkeypatch.setattr(run_loop, "SETTLE_INTERRUPT", 2.0)
    kernel = ScriptedKernel([*BUSY, interrupted(), *STOPPED])
    stop = asyncio.Event()
    stop.set()
    result = await run(kernel, stop=stop)
    waited = kernel.interrupts[0] - kernel.sent_at("execute_input")
    assert CODE_STARTED_GRACE <= waited < CODE_STARTED_GRACE + SLACK
    assert result.status == "error" and len(kernel.interrupts) == 1


async def test_a_stop_is_never_sent_to_a_kernel_that_never_said_busy() -> None:
    kernel = ScriptedKernel([Pause(0.15), stream("done\n"), *DONE])
    stop = asyncio.Event()
    stop.set()
    result = await run(kernel, stop=stop)
    assert (result.status, result.interrupted, kernel.interrupts) == ("ok", False, [])


# The done probe after idle (Deno's kernel sends output after its idle status).


def late(text: str, parent: str = PROBE) -> Send:
    """Output of the run that comes after its idle status; once the kernel took the probe, it
    names the probe's request as its parent."""
    return Send("iopub", "stream", {"name": "stdout", "text": text}, parent)


async def test_output_after_idle_is_kept_until_the_probe_says_it_is_all_out() -> None:
    result_late = Send(
        "iopub", "execute_result", {"data": {"text/plain": "2"}, "metadata": {}}, PROBE
    )
    kernel = ScriptedKernel(
        [
            *BUSY,
            stream("a\n"),
            *DONE,
            late("b\n", parent=REQUEST),
            *PROBE_STARTS,
            late("c\n"),
            result_late,
            Marker(),
            *PROBE_ENDS,
            late("a timer's, later\n"),
        ],
        done_probe=DONE_PROBE,
    )
    watcher = Watcher()
    result = await run(kernel, listener=watcher)
    assert (result.status, result.stdout) == ("ok", "a\nb\nc\n")
    assert [o["output_type"] for o in result.outputs] == ["stream", "execute_result"]
    assert result.execution_count == 1  # the reply's: the late result carried none
    # One probe, silent, sent once the reply and idle were in; nobody sees the marker.
    assert len(kernel.probes) == 1
    probe = kernel.probes[0]
    assert probe["silent"] is True and probe["store_history"] is False
    assert probe["allow_stdin"] is True  # a timer's prompt() may run during it
    assert probe["code"].startswith("kernelpad-done-")
    assert not any(probe["code"] in str(o.get("text")) for o in watcher.outputs)
    # Over at the probe's reply: its idle and a timer's later output were not read.
    assert kernel.script == [PROBE_ENDS[1], late("a timer's, later\n")]


async def test_the_run_ends_only_once_the_probe_has_its_reply_too() -> None:
    # The marker came first: the reply is still waited for, and what comes before it kept.
    kernel = ScriptedKernel(
        [*BUSY, *DONE, *PROBE_STARTS, Marker("x\n"), Pause(0.02), *PROBE_ENDS],
        done_probe=DONE_PROBE,
    )
    result = await run(kernel)
    assert (result.status, result.stdout) == ("ok", "x\n")
    assert kernel.script == [PROBE_ENDS[1]]  # ended at the probe's reply, not its idle


async def test_a_failed_probe_ends_the_run_with_what_came() -> None:
    # Code that broke what the probe uses: no marker will come, the probe's error is not shown.
    kernel = ScriptedKernel(
        [
            *BUSY,
            stream("a\n"),
            *DONE,
            Send("iopub", "error", {"ename": "TypeError", "evalue": "x", "traceback": []}, PROBE),
            reply("error", 1, PROBE),
            late("never\n"),
        ],
        done_probe=DONE_PROBE,
    )
    result = await run(kernel)
    assert (result.status, result.stdout, result.error) == ("ok", "a\n", None)


SETTLE_NOTE = note(
    "the code had ended, but a timer or callback it left was still running; it was interrupted"
)


async def test_a_probe_that_never_answers_is_interrupted_then_given_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A kernel stuck in a timer's endless loop cannot run the probe; it ignores the interrupt.
    monkeypatch.setattr(run_loop, "SETTLE_LIMIT", 0.05)
    kernel = ScriptedKernel([*BUSY, stream("a\n"), *DONE, late("b\n")], done_probe=DONE_PROBE)
    # The loop reads the module's limit at each run: a run that waited the real one (or for
    # ever) fails here instead of hanging.
    result = await asyncio.wait_for(run(kernel, TIGHT), timeout=SETTLE_LIMIT / 2)
    assert (result.status, result.stdout, result.stderr) == ("timeout", "a\nb\n", SETTLE_NOTE)
    assert (result.timed_out, result.interrupted, result.needs_restart) == (True, True, True)
    # The probe was sent again behind the interrupt, and the grace waited for it in vain.
    assert (len(kernel.probes), len(kernel.interrupts)) == (2, 1)


async def test_a_timer_interrupted_at_the_time_limit_lets_the_probe_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The probe answered at once, its marker left to a timer behind the run's endless one.
    # The kernel ends that timer on the interrupt and runs nothing more until it takes the
    # probe sent again; then the first marker prints too: it is nobody's. The kernel is kept.
    monkeypatch.setattr(run_loop, "SETTLE_LIMIT", 0.05)
    kernel = ScriptedKernel(
        [*BUSY, *DONE, *PROBE_STARTS, *PROBE_ENDS, late("tick\n"), interrupted(),
         Until(lambda k: len(k.probes) == 2), Marker("tock\n", of=0), Marker(),
         *probe_ends(PROBE_AGAIN)],
        done_probe=DONE_PROBE,
    )  # fmt: skip
    watcher = Watcher()
    result = await asyncio.wait_for(run(kernel, TIGHT, listener=watcher), timeout=SETTLE_LIMIT / 2)
    assert (result.status, result.stdout, result.stderr) == ("timeout", "tick\ntock\n", SETTLE_NOTE)
    assert (result.timed_out, result.needs_restart, len(kernel.interrupts)) == (True, False, 1)
    # Sent again only after the interrupt, with a marker of its own; no marker is shown.
    assert kernel.sent_at("stream") < kernel.interrupts[0]
    assert kernel.probes[0]["code"] != kernel.probes[1]["code"]
    shown = json.dumps([*watcher.outputs, *result.outputs])
    assert "kernelpad-done-" not in shown
    # Over at the reply of the probe sent again; the first one's reply did not end it.
    assert kernel.script == [probe_ends(PROBE_AGAIN)[1]]


async def test_from_a_kernels_first_interrupt_on_its_probes_wait_for_the_timers_due(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Deno's kernel, interrupted in a timer, says it has no more work while timers are due: a
    # probe that asked it would print its marker before them, and their output go nowhere.
    monkeypatch.setattr(run_loop, "SETTLE_LIMIT", 0.05)
    kernel = ScriptedKernel(
        [*BUSY, *DONE, *PROBE_STARTS, late("tick\n"), interrupted(), Marker(),
         *probe_ends(PROBE_AGAIN)],
        done_probe=WAITING_PROBE,
    )  # fmt: skip
    assert not kernel.interrupted_once
    result = await asyncio.wait_for(run(kernel, TIGHT), timeout=SETTLE_LIMIT / 2)
    assert (result.status, result.stdout, result.needs_restart) == ("timeout", "tick\n", False)
    assert kernel.interrupted_once
    codes = [probe["code"].split()[0] for probe in kernel.probes]
    assert codes == ["waits=false", "waits=true"]
    # And in the next run on that kernel, from its first probe.
    kernel.script = [*BUSY, *DONE, *PROBE_STARTS, Marker(), *probe_ends("probe-3")]
    result = await asyncio.wait_for(run_code(kernel, "code", TIGHT), timeout=SETTLE_LIMIT / 2)
    assert result.status == "ok" and kernel.probes[2]["code"].startswith("waits=true ")


class KeptKernels(KernelBackend):
    """A back-end whose earlier server let ``kept`` go."""

    def __init__(self, kept: dict[str, KernelHandle]) -> None:
        self.kept = kept

    async def start(self, language: InstalledLanguage) -> KernelHandle:
        raise AssertionError("only kernels taken back here")

    async def attach(self, kernel_id: str, language: InstalledLanguage) -> KernelHandle | None:
        return self.kept.get(kernel_id)


async def test_a_kernel_taken_back_counts_as_interrupted() -> None:
    # The last server may have interrupted it in a timer: its probes must wait for them.
    kept = ScriptedKernel([], done_probe=WAITING_PROBE)
    backend = KeptKernels({"kept": kept})
    assert await backend.take_back("gone", kept.language) is None
    assert await backend.take_back("kept", kept.language) is kept
    assert kept.interrupted_once


async def test_a_stop_while_settling_interrupts_the_kernel() -> None:
    kernel = ScriptedKernel(
        [*BUSY, *DONE, *PROBE_STARTS, late("tick\n"), interrupted(), Marker(),
         *probe_ends(PROBE_AGAIN)],
        done_probe=DONE_PROBE,
    )  # fmt: skip
    stop = asyncio.Event()
    stopping = asyncio.ensure_future(stop_later(stop, 0.15))
    result = await asyncio.wait_for(run(kernel, stop=stop), timeout=SETTLE_LIMIT / 2)
    stopped_at = await stopping
    assert len(kernel.interrupts) == 1
    assert stopped_at <= kernel.interrupts[0] < stopped_at + SLACK
    assert (result.stdout, result.stderr) == ("tick\n", SETTLE_NOTE)
    assert result.interrupted and not result.timed_out and not result.needs_restart


async def test_a_run_interrupted_before_it_settles_is_interrupted_again_only_at_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Stopped while running; its stop is not carried out twice: the timer after it is
    # interrupted when SETTLE_LIMIT is over, and the run keeps its first cause.
    monkeypatch.setattr(run_loop, "SETTLE_LIMIT", 0.2)
    kernel = ScriptedKernel(
        [*BUSY, interrupted(), *STOPPED, *PROBE_STARTS, Until(lambda k: len(k.interrupts) > 1),
         Marker(), *probe_ends(PROBE_AGAIN)],
        done_probe=DONE_PROBE,
    )  # fmt: skip
    stop = asyncio.Event()
    stop.set()
    result = await asyncio.wait_for(run(kernel, stop=stop), timeout=SETTLE_LIMIT / 2)
    assert len(kernel.interrupts) == 2
    assert 0.2 <= kernel.interrupts[1] - kernel.sent_at("status") < 0.2 + SLACK + SETTLE_INTERRUPT
    assert (result.status, result.timed_out, result.needs_restart) == ("error", False, False)


async def test_output_flooding_while_settling_interrupts_the_kernel() -> None:
    kernel = ScriptedKernel(
        [*BUSY, *DONE, *PROBE_STARTS, Flood(late("x" * 100)), Marker(), *probe_ends(PROBE_AGAIN)],
        done_probe=DONE_PROBE,
    )
    result = await asyncio.wait_for(run(kernel), timeout=SETTLE_LIMIT / 2)
    assert (result.status, result.interrupted, result.needs_restart) == (
        "output_limit",
        True,
        False,
    )
    assert len(kernel.interrupts) == 1


def probe_ask(prompt: str, parent: str = PROBE) -> Send:
    """An input request of a timer the run left, once the kernel took the probe."""
    return Send("stdin", "input_request", {"prompt": prompt, "password": False}, parent)


async def test_a_timers_input_request_while_settling_gets_a_stdin_line() -> None:
    # setTimeout(() => console.log('got', prompt('q')), 0): the question comes after idle,
    # under the run's parent or the probe's; the run waits for the answer, then the marker.
    for parent in (REQUEST, PROBE):
        kernel = ScriptedKernel(
            [
                *BUSY,
                *DONE,
                *PROBE_STARTS,
                probe_ask("q ", parent),
                answered(1),
                late("got A\n"),
                Marker(),
                *PROBE_ENDS,
            ],
            done_probe=DONE_PROBE,
            eof="",
        )
        result = await asyncio.wait_for(run(kernel, stdin=["A"]), timeout=SETTLE_LIMIT / 2)
        assert (result.status, result.stdout, kernel.input_replies) == ("ok", "q A\ngot A\n", ["A"])


async def test_a_timers_input_request_while_settling_asks_the_participants() -> None:
    kernel = ScriptedKernel(
        [*BUSY, *DONE, *PROBE_STARTS, probe_ask("Name? "), answered(1), late("hi Ada\n"),
         Marker(), *PROBE_ENDS],
        done_probe=DONE_PROBE,
        eof="",
    )  # fmt: skip
    watcher = Watcher(["Ada"])
    result = await asyncio.wait_for(run(kernel, listener=watcher), timeout=SETTLE_LIMIT / 2)
    assert watcher.asked == [("Name? ", False)]
    assert (result.status, result.stdout, kernel.input_replies) == (
        "ok",
        "Name? Ada\nhi Ada\n",
        ["Ada"],
    )


async def test_a_timers_input_request_while_settling_gets_eof_once_stdin_is_used_up() -> None:
    kernel = ScriptedKernel(
        [*BUSY, *DONE, *PROBE_STARTS, probe_ask("q "), answered(1), late("got \n"), Marker(),
         *PROBE_ENDS],
        done_probe=DONE_PROBE,
        eof="",
    )  # fmt: skip
    result = await asyncio.wait_for(run(kernel), timeout=SETTLE_LIMIT / 2)
    assert (result.status, result.stdout, kernel.input_replies) == ("ok", "got \n", [""])
    assert result.input_missing == "q " and not result.interrupted


async def test_an_input_request_of_another_request_is_not_answered_while_settling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run_loop, "SETTLE_LIMIT", 0.05)
    kernel = ScriptedKernel(
        [*BUSY, *DONE, probe_ask("q ", "other"), Pause(0.2)], done_probe=DONE_PROBE, eof=""
    )
    result = await asyncio.wait_for(run(kernel, TIGHT), timeout=SETTLE_LIMIT / 2)
    assert (result.status, kernel.input_replies) == ("timeout", [])


async def test_nobody_answering_a_timers_question_within_the_input_limit_stops_the_run() -> None:
    limits = Limits(
        time_limit=5.0, interrupt_grace=1.0, max_output=1000, flood_limit=10_000, input_limit=0.3
    )
    kernel = ScriptedKernel(
        [*BUSY, *DONE, *PROBE_STARTS, probe_ask("Name? "), answered(1), interrupted(), Marker(),
         *probe_ends(PROBE_AGAIN)],
        done_probe=DONE_PROBE,
        eof="",
    )  # fmt: skip
    watcher = Watcher(["too late"], delay=10.0)
    result = await asyncio.wait_for(run(kernel, limits, listener=watcher), timeout=SETTLE_LIMIT)
    assert (result.status, result.needs_restart, kernel.input_replies) == (
        "input_timeout",
        False,
        [""],
    )
    assert 0.3 <= kernel.interrupts[0] - kernel.sent_at("input_request") < 0.3 + SLACK


async def test_a_timer_that_goes_on_after_its_end_of_input_is_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run_loop, "EOF_GRACE", GRACE)
    kernel = ScriptedKernel(
        [*BUSY, *DONE, *PROBE_STARTS, probe_ask("q "), answered(1), interrupted(), Marker(),
         *probe_ends(PROBE_AGAIN)],
        done_probe=DONE_PROBE,
        eof="",
    )  # fmt: skip
    result = await asyncio.wait_for(run(kernel), timeout=SETTLE_LIMIT)
    assert (result.status, result.input_missing, result.interrupted) == ("error", "q ", True)
    waited = kernel.interrupts[0] - kernel.input_times[0]
    assert GRACE <= waited < GRACE + SLACK


async def test_a_timer_that_computes_long_prints_into_the_run_within_its_time_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # setTimeout(() => {spin 3 s; console.log('spun')}, 0): the probe waits behind the timer,
    # past SETTLE_LIMIT but within the time limit; the timer's output is the run's.
    monkeypatch.setattr(run_loop, "SETTLE_LIMIT", 0.05)
    kernel = ScriptedKernel(
        [*BUSY, *DONE, *PROBE_STARTS, Pause(0.3), late("spun\n"), Marker(), *PROBE_ENDS],
        done_probe=DONE_PROBE,
    )
    result = await run(kernel)
    assert (result.status, result.stdout, result.interrupted) == ("ok", "spun\n", False)
    assert kernel.script == [PROBE_ENDS[1]]


async def test_a_run_past_its_time_limit_still_gets_settle_limit_for_its_output() -> None:
    kernel = ScriptedKernel(
        [*BUSY, Pause(0.05), *DONE, Pause(0.2), late("late\n"), Marker(), *PROBE_ENDS],
        done_probe=DONE_PROBE,
    )
    limits = Limits(time_limit=0.15, interrupt_grace=1.0, max_output=1000, flood_limit=10_000)
    result = await run(kernel, limits)
    assert (result.status, result.stdout, kernel.interrupts) == ("ok", "late\n", [])


async def test_a_kernel_that_dies_during_the_probe_ends_the_run_as_it_was() -> None:
    kernel = ScriptedKernel([*BUSY, stream("a\n"), *DONE, Die()], done_probe=DONE_PROBE)
    result = await run(kernel)
    assert (result.status, result.stdout, result.needs_restart) == ("ok", "a\n", False)


async def test_an_interrupted_run_is_probed_too() -> None:
    kernel = ScriptedKernel(
        [*BUSY, interrupted(), *STOPPED, *PROBE_STARTS, late("tick\n"), Marker(), *PROBE_ENDS],
        done_probe=DONE_PROBE,
    )
    result = await run(kernel, TIGHT)
    assert (result.status, result.needs_restart, len(kernel.probes)) == ("timeout", False, 1)
    assert result.stdout == "tick\n"


async def test_no_probe_for_a_kernel_that_never_gave_the_run_up_or_died() -> None:
    scripts: list[list[Step]] = [[*BUSY], [*BUSY, Die()]]
    for script in scripts:
        kernel = ScriptedKernel(script, done_probe=DONE_PROBE)
        result = await run(kernel, TIGHT)
        assert result.needs_restart and kernel.probes == []


async def test_a_kernel_without_a_probe_is_not_waited_for_after_idle() -> None:
    kernel = ScriptedKernel([*BUSY, *DONE, stream("after idle\n")])
    result = await run(kernel)
    assert (result.stdout, kernel.probes) == ("", [])


async def test_waiting_for_a_persons_answer_does_not_count_toward_the_time_limit() -> None:
    """The code has 0.3 s; the person takes 0.6 s to answer its input(): the run goes on
    (before, it was interrupted mid-question), and then still has the rest of its time."""
    limits = Limits(time_limit=0.3, interrupt_grace=1.0, max_output=1000, flood_limit=10_000)
    kernel = ScriptedKernel(
        [*BUSY, Pause(0.1), ask("Name? "), answered(1), Pause(0.1), stream("hello Ada\n"), *DONE]
    )
    watcher = Watcher(["Ada"], delay=0.6)
    result = await run(kernel, limits, listener=watcher)
    assert kernel.interrupts == []
    assert (result.status, result.timed_out) == ("ok", False)
    assert result.stdout == "Name? Ada\nhello Ada\n"


async def test_the_time_left_before_a_question_is_all_the_code_gets_after_it() -> None:
    limits = Limits(time_limit=0.3, interrupt_grace=1.0, max_output=1000, flood_limit=10_000)
    kernel = ScriptedKernel(
        [*BUSY, Pause(0.2), ask("Name? "), answered(1), interrupted(), *STOPPED]
    )
    result = await run(kernel, limits, listener=Watcher(["Ada"], delay=0.5))
    assert result.status == "timeout"
    # Interrupted about 0.1 s after the answer: the 0.2 s used before the question count.
    waited = kernel.interrupts[0] - kernel.input_times[0]
    assert 0.05 <= waited < 0.1 + SLACK


async def test_nobody_answering_within_the_input_limit_stops_the_run() -> None:
    limits = Limits(
        time_limit=5.0, interrupt_grace=1.0, max_output=1000, flood_limit=10_000, input_limit=0.3
    )
    kernel = ScriptedKernel([*BUSY, ask("Name? "), answered(1), interrupted(), *STOPPED])
    watcher = Watcher(["too late"], delay=10.0)
    began = time.monotonic()
    result = await run(kernel, limits, listener=watcher)
    assert result.status == "input_timeout" and result.interrupted and not result.timed_out
    # The kernel got the end of input (Deno's takes no interrupt while it waits for one).
    assert kernel.input_replies == ["\x04"]
    assert 0.3 <= kernel.interrupts[0] - began < 0.3 + SLACK
