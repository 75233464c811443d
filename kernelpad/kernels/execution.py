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

How a run proceeds, phase by phase, is :mod:`kernelpad.kernels.run_loop`; what it printed is
kept by :mod:`kernelpad.kernels.outputs`. This module is the entry: it starts a run and turns
how the run ended into its result.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kernelpad.kernels.base import KernelHandle

# Where it always was, for whoever imports it from here.
from kernelpad.kernels.outputs import strip_ansi as strip_ansi
from kernelpad.kernels.run_loop import Cause, Limits, Phase, RunListener, RunLoop

# The shortest time limit applied: an interrupt must not land before the code has started.
MIN_TIME_LIMIT = 0.1


@dataclass
class ExecutionResult:
    """What a run produced and how it ended.

    ``status`` is ``ok``, ``error`` (the code raised), ``timeout`` (the time limit expired),
    ``input_timeout`` (nobody answered its input request in time), ``output_limit``
    (interrupted for flooding output) or ``kernel_died``.
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
    #: Seconds from the kernel's busy status to its idle status by the dates it put on them
    #: (None if it did not date both): the kernel's own time, without the hops to and from it.
    kernel_time: float | None = None


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
    not have. While a person is asked, the time limit is paused, and ``limits.input_limit``
    bounds the wait instead. Setting ``stop`` interrupts the
    run, as the time limit would, once the code has started.
    """
    msg_id = kernel.execute_request(code)
    if listener is not None:
        listener.started()
    try:
        loop = RunLoop(kernel, msg_id, limits, list(stdin or []), listener, stop)
        await loop.run()
        return _result(loop)
    finally:
        kernel.end_request()


def _status(loop: RunLoop) -> str:
    """The status of a run that is over, with the note that explains it where its outputs do
    not."""
    if loop.phase is Phase.DIED:
        loop.outputs.note("the kernel died during this run")
        return "kernel_died"
    if loop.cause is Cause.TIME_LIMIT:
        return "timeout"
    if loop.cause is Cause.OUTPUT_FLOOD:
        return "output_limit"
    if loop.cause is Cause.NO_ANSWER:
        return "input_timeout"
    if loop.input_missing is not None and loop.cause is not None:
        asked = f" ({loop.input_missing.strip()!r})" if loop.input_missing.strip() else ""
        loop.outputs.note(
            f"the code asked for input{asked} but no line was left to give it, so it was"
            " stopped; send the lines it reads in 'stdin'"
        )
        return "error"
    # Code that reads until the end of its input (while (std::cin >> x)) ends by itself:
    # the kernel's own status stands.
    return "ok" if loop.reply is not None and loop.reply.get("status") == "ok" else "error"


def _result(loop: RunLoop) -> ExecutionResult:
    outputs = loop.outputs
    outputs.finish()
    status = _status(loop)
    if loop.reply is not None and outputs.execution_count is None:
        outputs.count(loop.reply.get("execution_count"))
    return ExecutionResult(
        status=status,
        stdout="".join(outputs.streams.get("stdout", [])),
        stderr="".join(outputs.streams.get("stderr", [])),
        outputs=outputs.outputs,
        error=outputs.error,
        execution_count=outputs.execution_count,
        duration=time.monotonic() - loop.started,
        timed_out=loop.cause is Cause.TIME_LIMIT,
        interrupted=loop.cause is not None,
        needs_restart=loop.phase in (Phase.DIED, Phase.GAVE_UP),
        output_truncated=outputs.truncated_stream is not None,
        output_size=outputs.seen,
        input_missing=loop.input_missing,
        kernel_time=_kernel_time(loop.kernel_dates.get("busy"), loop.kernel_dates.get("idle")),
    )


def _kernel_time(busy: object, idle: object) -> float | None:
    """Seconds between two of a kernel's message dates (ISO 8601 strings), if both are."""
    if not isinstance(busy, str) or not isinstance(idle, str):
        return None
    try:
        elapsed = (datetime.fromisoformat(idle) - datetime.fromisoformat(busy)).total_seconds()
    except (ValueError, TypeError):  # not a date, or one with a zone and one without
        return None
    return elapsed if elapsed >= 0 else None
