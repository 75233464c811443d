"""Running one piece of code in a kernel, within limits, over raw Jupyter messages.

The flow follows the Jupyter messaging protocol: an ``execute_request`` on the shell channel,
then ``stream``, ``display_data``, ``execute_result`` and ``error`` messages on IOPub; the run
is done once both the ``execute_reply`` and the ``status: idle`` for the request have arrived.
Limits are enforced here, the same way for every back-end:

* time: when ``time_limit`` expires the kernel is interrupted (its state kept); if it does not
  answer within ``interrupt_grace`` the run is reported as needing a restart;
* output: stdout plus stderr past ``max_output`` characters is dropped and marked, and a run that
  keeps printing ``flood_limit`` characters past the cap is interrupted;
* death: a kernel that stops answering and whose process is gone ends the run as ``kernel_died``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from kernelpad.kernels.base import KernelHandle, Message
from kernelpad.kernels.outputs import OutputCollector

# Where it always was, for whoever imports it from here.
from kernelpad.kernels.outputs import strip_ansi as strip_ansi

# How often a silent kernel is checked for being alive.
LIVENESS_INTERVAL = 0.25
# The shortest time limit applied: an interrupt must not land before the code has started.
MIN_TIME_LIMIT = 0.1
# How long a run may go on after its input ran out (it got an end-of-file) before it is
# interrupted: enough for the code to fail on its own, not enough to wait for the time limit.
EOF_GRACE = 0.5
# A kernel busy this long with a request is running its code, even if it said nothing else;
# one that said so (execute_input) is, this long after.
SETTLE_INTERRUPT = 0.1
CODE_STARTED_GRACE = 0.05
# How often a run waiting for a participant's input (or for a stop) looks for it.
INPUT_POLL = 0.05
# Longest wait for output after a run's idle status, whatever the language's settle time.
SETTLE_LIMIT = 0.3


@dataclass(frozen=True)
class Limits:
    """The limits of one run, in seconds and characters."""

    time_limit: float
    interrupt_grace: float
    max_output: int
    flood_limit: int


@dataclass
class ExecutionResult:
    """What a run produced and how it ended.

    ``status`` is ``ok``, ``error`` (the code raised), ``timeout`` (the time limit expired),
    ``output_limit`` (interrupted for flooding output) or ``kernel_died``.
    """

    status: str
    stdout: str = ""
    stderr: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    execution_count: int | None = None
    duration: float = 0.0
    timed_out: bool = False
    interrupted: bool = False
    needs_restart: bool = False
    output_truncated: bool = False
    output_size: int = 0
    #: The prompt of an input request that found no line left to answer it.
    input_missing: str | None = None


class RunListener(Protocol):
    """Who watches a run as it happens (the participants of its session)."""

    def started(self) -> None:
        """The code has been sent to the kernel (a queued run starts only now)."""

    def output(self, output: dict[str, Any]) -> None:
        """An output as it arrives, in nbformat's shape (a stream output holds a new piece)."""

    async def input(self, prompt: str, password: bool) -> str | None:
        """A line for an input request, once someone answers; None: no answer."""


def _content(msg: Message) -> dict[str, Any]:
    content = msg.get("content")
    return content if isinstance(content, dict) else {}


async def run_code(
    kernel: KernelHandle,
    code: str,
    limits: Limits,
    stdin: list[str] | None = None,
    listener: RunListener | None = None,
    stop: asyncio.Event | None = None,
) -> ExecutionResult:
    """Run ``code`` in ``kernel`` and collect its outputs, enforcing ``limits``.

    The time limit counts from the moment the kernel reports itself busy with this request (or
    from sending it, if the kernel never does): an interrupt that lands before the code has
    started would otherwise hit the kernel's own machinery, which does not recover from it.

    Input requests (``input()``, ``prompt()``, ``Scanner(System.in)``) are answered from
    ``stdin``, a line each, echoed after their prompt as a console shows them. A request that
    finds no line left is answered with an end-of-file and the run is interrupted if it has not
    ended ``EOF_GRACE`` later: it fails fast, it does not wait for the time limit. (Interrupting
    at once is no good: Deno's kernel cannot be interrupted while it waits for input.) Code
    that ends by itself once its input is used up gets its own status.

    A ``listener`` sees every output as it arrives, and is asked for the lines ``stdin`` does
    not have (the run goes on meanwhile, its time limit too). Setting ``stop`` interrupts the
    run, as the time limit would, once the code has started.
    """
    msg_id = kernel.execute_request(code)
    if listener is not None:
        listener.started()
    try:
        return await _collect(kernel, msg_id, limits, list(stdin or []), listener, stop)
    finally:
        kernel.end_request()


async def _collect(
    kernel: KernelHandle,
    msg_id: str,
    limits: Limits,
    lines: list[str],
    listener: RunListener | None,
    stop: asyncio.Event | None,
) -> ExecutionResult:
    outputs = OutputCollector(limits.max_output, listener.output if listener is not None else None)
    asking: tuple[asyncio.Task[str | None], str] | None = None  # an input request out there
    input_missing: str | None = None
    started = time.monotonic()
    deadline = started + limits.time_limit
    reply: Message | None = None
    busy = idle = False
    code_started: float | None = None  # when the kernel said it runs the code (execute_input)
    started_at: float | None = None
    timed_out = flooded = interrupted = died = gave_up = False

    secret = False  # whether the input request being answered is for a password

    def answer(prompt: str, line: str | None) -> None:
        nonlocal input_missing, deadline
        if line is not None and not interrupted:
            kernel.input_reply(line)
            # Shown as a console shows it, but a password is not shown (nor stored).
            outputs.stream("stdout", f"{prompt}{'' if secret else line}\n")
            return
        # Answered even after an interrupt: a kernel waiting for input (Deno's) cannot take
        # the interrupt until it has its answer.
        kernel.input_reply(kernel.language.language.eof)
        if input_missing is None:
            input_missing = prompt
            deadline = min(deadline, time.monotonic() + EOF_GRACE)

    while reply is None or not idle:
        if asking is not None and asking[0].done():
            task, prompt = asking
            asking = None
            answer(prompt, None if task.cancelled() or task.exception() else task.result())
        now = time.monotonic()
        # An interrupt asked for by a person waits until the code has started: one that hits
        # the kernel's own machinery first is lost, and the kernel never answers.
        stopping = (
            stop is not None
            and stop.is_set()
            and started_at is not None
            and (
                now >= started_at + SETTLE_INTERRUPT
                or (code_started is not None and now >= code_started + CODE_STARTED_GRACE)
            )
        )
        if not interrupted and (now >= deadline or flooded or stopping):
            timed_out = not flooded and input_missing is None and not stopping
            interrupted = True
            await kernel.interrupt()
            deadline = time.monotonic() + limits.interrupt_grace
            continue
        if interrupted and now >= deadline:
            gave_up = True
            break
        wait = LIVENESS_INTERVAL if asking is None and stop is None else INPUT_POLL
        item = await kernel.receive(min(deadline - now, wait))
        if item is None:
            if not await kernel.is_alive():
                died = True
                break
            continue
        channel, msg = item
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue  # not for this run (back-ends drop these already; this is the guarantee)
        msg_type = msg["header"].get("msg_type")
        if channel == "shell":
            if msg_type == "execute_reply":
                reply = msg
            continue
        if channel == "stdin":
            if msg_type == "input_request":
                content = _content(msg)
                prompt = str(content.get("prompt", ""))
                secret = bool(content.get("password", False))
                if lines and not interrupted:
                    answer(prompt, lines.pop(0))
                elif listener is not None and not interrupted:
                    password = bool(content.get("password", False))
                    asking = (asyncio.ensure_future(listener.input(prompt, password)), prompt)
                else:
                    answer(prompt, None)
            continue
        if msg_type == "status":
            state = _content(msg).get("execution_state")
            idle = state == "idle"
            if state == "busy" and not busy and not interrupted:
                busy = True
                started_at = time.monotonic()
                deadline = started_at + limits.time_limit
            continue
        if msg_type == "execute_input" and code_started is None:
            code_started = time.monotonic()
        outputs.handle(msg)
        if outputs.dropped > limits.flood_limit and not interrupted:
            flooded = True

    if asking is not None:
        asking[0].cancel()
    settle = kernel.language.language.settle
    # Bounded: a kernel that keeps sending after idle (a JavaScript timer) ends the window.
    settle_end = time.monotonic() + SETTLE_LIMIT
    while settle and reply is not None and idle and not died and time.monotonic() < settle_end:
        item = await kernel.receive(settle)
        if item is None:
            break
        channel, msg = item
        if channel == "iopub" and msg.get("parent_header", {}).get("msg_id") == msg_id:
            outputs.handle(msg)

    outputs.finish()
    if died:
        status = "kernel_died"
        outputs.note("the kernel died during this run")
    elif timed_out:
        status = "timeout"
    elif flooded:
        status = "output_limit"
    elif input_missing is not None and interrupted:
        status = "error"
        asked = f" ({input_missing.strip()!r})" if input_missing.strip() else ""
        outputs.note(
            f"the code asked for input{asked} but no line was left to give it, so it was"
            " stopped; send the lines it reads in 'stdin'"
        )
    else:
        # Code that reads until the end of its input (while (std::cin >> x)) ends by itself:
        # the kernel's own status stands.
        status = "ok" if reply is not None and _content(reply).get("status") == "ok" else "error"
    if reply is not None and outputs.execution_count is None:
        outputs.count(_content(reply).get("execution_count"))
    return ExecutionResult(
        status=status,
        stdout="".join(outputs.streams.get("stdout", [])),
        stderr="".join(outputs.streams.get("stderr", [])),
        outputs=outputs.outputs,
        error=outputs.error,
        execution_count=outputs.execution_count,
        duration=time.monotonic() - started,
        timed_out=timed_out,
        interrupted=interrupted,
        needs_restart=died or gave_up,
        output_truncated=outputs.truncated_stream is not None,
        output_size=outputs.seen,
        input_missing=input_missing,
    )
