"""The done probe: how a run learns that a kernel has sent all of its output.

Deno's kernel sends part of a run's output after the run's reply and idle status (see
``DENO_DONE_PROBE`` in :mod:`kernelpad.kernels.languages`), so for its languages the run loop
does not end at idle: it sends the language's done probe, a silent request that prints a marker
once everything the run printed is out, and takes the run's output until the marker and the
probe's reply are in. This module is that request and the reading of its messages; when to send
it and how long to wait are the run loop's (:mod:`kernelpad.kernels.run_loop`), which holds
the phases and limits of a run.
"""

from __future__ import annotations

import uuid
from typing import Any

from kernelpad.kernels.base import KernelHandle, Message
from kernelpad.kernels.outputs import OutputCollector

#: IOPub messages under the probe's parent that are the probe's own, not the run's output that
#: comes under it (the probe is silent: it has no result of its own).
PROBE_OWN = ("status", "execute_input", "error")
#: What every marker starts with.
MARKER_PREFIX = "kernelpad-done-"


def new_marker() -> str:
    """A marker no code prints by chance."""
    return f"{MARKER_PREFIX}{uuid.uuid4().hex}"


class DoneProbe:
    """One run's done probe: sent by :meth:`send`, read by :meth:`take`."""

    def __init__(self, code: str) -> None:
        self.marker = new_marker()
        self.code = code.replace("{marker}", self.marker)
        self.msg_id: str | None = None
        self.marker_seen = False
        self.replied = False
        #: The probe's reply said it failed (the code broke what it uses): no marker comes.
        self.failed = False

    @property
    def done(self) -> bool:
        """Whether all the run's output is out (or the probe failed and will not say)."""
        return self.failed or (self.marker_seen and self.replied)

    def send(self, kernel: KernelHandle) -> None:
        """Send the probe on ``kernel``, which keeps passing the run's messages meanwhile."""
        content = {
            "code": self.code,
            "silent": True,
            "store_history": False,
            "user_expressions": {},
            # A timer the run left that runs during the probe (it waits one timer turn) and
            # asks for input asks under the probe's request: it must be let ask, as in the run
            # (Deno's prompt() returns null, asking nobody, where stdin is not allowed).
            "allow_stdin": True,
            "stop_on_error": False,
        }
        self.msg_id = kernel.send_request("execute_request", content, keep_current=True)

    def take(self, channel: str, msg: Message, outputs: OutputCollector) -> None:
        """One message of the probe's request (stdin aside). The run's output that comes after
        the kernel took the probe carries the probe's request as its parent (Deno's kernel names
        the request it runs now, not the one that printed): it goes to ``outputs``. The probe is
        :attr:`done` once the marker and its reply are in: the next request must not leave
        before that reply has come (Deno's kernel, which writes with Nagle's algorithm on, then
        holds the next reply until ours is acknowledged, up to 40 ms later; and a reply has been
        seen lost)."""
        msg_type = msg["header"].get("msg_type")
        content = _content(msg)
        if channel == "shell":
            if msg_type == "execute_reply":
                self.replied = True
                self.failed = content.get("status") != "ok"
        elif channel != "iopub" or msg_type in PROBE_OWN:
            return
        elif msg_type == "stream" and self.marker in str(content.get("text", "")):
            self.marker_seen = True
            before = str(content["text"]).split(self.marker, 1)[0]
            if before:
                name = content.get("name")
                outputs.stream(name if name in ("stdout", "stderr") else "stdout", before)
        else:
            outputs.handle(msg)


def _content(msg: Message) -> dict[str, Any]:
    content = msg.get("content")
    return content if isinstance(content, dict) else {}
