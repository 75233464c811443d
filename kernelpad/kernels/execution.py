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

import re
import time
from dataclasses import dataclass, field
from typing import Any

from kernelpad.kernels.base import KernelHandle, Message

# How often a silent kernel is checked for being alive.
LIVENESS_INTERVAL = 0.25
# Rich outputs (images, HTML) kept per run, in characters of their MIME bundles.
RICH_OUTPUT_LIMIT = 5_000_000

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


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


class _Outputs:
    """Collects a run's outputs in nbformat's shape, within the output caps."""

    def __init__(self, max_output: int) -> None:
        self.max_output = max_output
        self.outputs: list[dict[str, Any]] = []
        self.streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.kept = 0
        self.seen = 0
        self.rich_size = 0
        self.truncated_stream: str | None = None
        self.rich_dropped = 0
        self.error: dict[str, Any] | None = None
        self.execution_count: int | None = None

    def stream(self, name: str, text: str) -> None:
        self.seen += len(text)
        room = self.max_output - self.kept
        if room <= 0:
            self.truncated_stream = self.truncated_stream or name
            return
        if len(text) > room:
            text = text[:room]
            self.truncated_stream = name
        self.kept += len(text)
        self._append_stream(name, text)

    def _append_stream(self, name: str, text: str) -> None:
        self.streams.setdefault(name, []).append(text)
        last = self.outputs[-1] if self.outputs else None
        if last is not None and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += text
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})

    def rich(self, output_type: str, content: dict[str, Any]) -> None:
        data = content.get("data", {})
        size = sum(len(v) if isinstance(v, str) else len(str(v)) for v in data.values())
        if self.rich_size + size > RICH_OUTPUT_LIMIT:
            self.rich_dropped += 1
            return
        self.rich_size += size
        output: dict[str, Any] = {
            "output_type": output_type,
            "data": data,
            "metadata": content.get("metadata", {}),
        }
        if output_type == "execute_result":
            output["execution_count"] = content.get("execution_count")
        self.outputs.append(output)

    def raised(self, content: dict[str, Any]) -> None:
        self.error = {
            "ename": content.get("ename", ""),
            "evalue": content.get("evalue", ""),
            "traceback": list(content.get("traceback", [])),
        }
        self.outputs.append({"output_type": "error", **self.error})
        # Clients of the original API read failures from stderr, as a subprocess would print them.
        plain = "\n".join(strip_ansi(line) for line in self.error["traceback"])
        self.stream("stderr", (plain or f"{self.error['ename']}: {self.error['evalue']}") + "\n")

    def finish(self) -> None:
        if self.truncated_stream:
            self._append_stream(
                self.truncated_stream,
                f"\n[kernelpad: output truncated, {self.kept} of {self.seen} characters shown;"
                f" the limit is {self.max_output} characters (CODE_MAX_OUTPUT_SIZE)]\n",
            )
        if self.rich_dropped:
            self.note(
                f"{self.rich_dropped} rich output(s) dropped; a run may show at most"
                f" {RICH_OUTPUT_LIMIT} characters of images and HTML"
            )

    def note(self, text: str) -> None:
        """Tell the user something about the run, on stderr, outside the output cap."""
        self._append_stream("stderr", f"\n[kernelpad: {text}]\n")

    def handle(self, msg: Message) -> None:
        msg_type = msg["header"]["msg_type"]
        content = msg["content"]
        if msg_type == "stream":
            self.stream(content.get("name", "stdout"), content.get("text", ""))
        elif msg_type in ("display_data", "execute_result"):
            self.rich(msg_type, content)
            if msg_type == "execute_result":
                self.execution_count = content.get("execution_count", self.execution_count)
        elif msg_type == "error":
            self.raised(content)
        elif msg_type == "execute_input":
            self.execution_count = content.get("execution_count", self.execution_count)


async def run_code(kernel: KernelHandle, code: str, limits: Limits) -> ExecutionResult:
    """Run ``code`` in ``kernel`` and collect its outputs, enforcing ``limits``."""
    outputs = _Outputs(limits.max_output)
    msg_id = kernel.execute_request(code)
    started = time.monotonic()
    deadline = started + limits.time_limit
    reply: Message | None = None
    idle = False
    timed_out = flooded = interrupted = died = gave_up = False

    while reply is None or not idle:
        now = time.monotonic()
        if not interrupted and (now >= deadline or flooded):
            timed_out = not flooded
            interrupted = True
            await kernel.interrupt()
            deadline = time.monotonic() + limits.interrupt_grace
            continue
        if interrupted and now >= deadline:
            gave_up = True
            break
        item = await kernel.receive(min(deadline - now, LIVENESS_INTERVAL))
        if item is None:
            if not await kernel.is_alive():
                died = True
                break
            continue
        channel, msg = item
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue  # a late message of an earlier, interrupted run
        if channel == "shell":
            if msg["header"]["msg_type"] == "execute_reply":
                reply = msg
            continue
        if msg["header"]["msg_type"] == "status":
            idle = msg["content"].get("execution_state") == "idle"
            continue
        outputs.handle(msg)
        if outputs.seen - outputs.kept > limits.flood_limit and not interrupted:
            flooded = True

    outputs.finish()
    if died:
        status = "kernel_died"
        outputs.note("the kernel died during this run")
    elif timed_out:
        status = "timeout"
    elif flooded:
        status = "output_limit"
    else:
        reply_status = reply["content"].get("status") if reply else None
        status = "ok" if reply_status == "ok" else "error"
    if reply is not None and outputs.execution_count is None:
        outputs.execution_count = reply["content"].get("execution_count")
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
    )
