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


def probe_code(template: str, marker: str, waits: bool = False) -> str:
    """A language's done probe (``template``) printing ``marker``; with ``waits``, it waits
    for the timers due even if the kernel says it has none (see ``DENO_DONE_PROBE``)."""
    return template.replace("{marker}", marker).replace("{waits}", "true" if waits else "false")


class DoneProbe:
    """One run's done probe: sent by :meth:`send`, read by :meth:`take`.

    Sent again after an interrupt (:meth:`send` once more): the interrupt may have ended the
    code that was to print the first marker, or the kernel may take no more code until it is
    asked again. Each sending has its own request and marker; only the last one's count. The
    earlier requests' messages are still the run's output, and an earlier marker that prints
    after all is dropped, so that it cannot show in this run or a later one."""

    def __init__(self, code: str) -> None:
        self.template = code
        self.marker = ""
        self.code = ""
        self.msg_id: str | None = None
        #: The requests of the earlier sendings, and their markers.
        self.earlier: list[str] = []
        self.stale_markers: list[str] = []
        self.marker_seen = False
        self.replied = False
        #: The probe's reply said it failed (the code broke what it uses): no marker comes.
        self.failed = False

    @property
    def done(self) -> bool:
        """Whether all the run's output is out (or the probe failed and will not say)."""
        return self.failed or (self.marker_seen and self.replied)

    def owns(self, parent: str | None) -> bool:
        """Whether a message with this parent belongs to the probe (any of its sendings)."""
        return parent is not None and (parent == self.msg_id or parent in self.earlier)

    def send(self, kernel: KernelHandle) -> None:
        """Send the probe on ``kernel``, which keeps passing the run's messages meanwhile (and
        those of the probe's earlier sendings)."""
        if self.msg_id is not None:
            self.earlier.append(self.msg_id)
            self.stale_markers.append(self.marker)
        self.marker = new_marker()
        self.code = probe_code(self.template, self.marker, kernel.interrupted_once)
        self.marker_seen = self.replied = self.failed = False
        content = {
            "code": self.code,
            "silent": True,
            "store_history": False,
            "user_expressions": {},
            # A timer the run left that runs after the probe and asks for input asks under the
            # probe's request: it must be let ask, as in the run (Deno's prompt() returns
            # null, asking nobody, where stdin is not allowed).
            "allow_stdin": True,
            "stop_on_error": False,
        }
        self.msg_id = kernel.send_request("execute_request", content, keep_current=True)

    def take(self, channel: str, msg: Message, outputs: OutputCollector) -> None:
        """One message of the probe's requests (stdin aside). The run's output that comes after
        the kernel took the probe carries the probe's request as its parent (Deno's kernel names
        the request it runs now, not the one that printed): it goes to ``outputs``. The probe is
        :attr:`done` once the marker and the reply of its last sending are in: the next request
        must not leave before that reply has come (Deno's kernel, which writes with Nagle's
        algorithm on, then holds the next reply until ours is acknowledged, up to 40 ms later;
        and a reply has been seen lost)."""
        msg_type = msg["header"].get("msg_type")
        content = _content(msg)
        if channel == "shell":
            if msg_type == "execute_reply" and msg["parent_header"].get("msg_id") == self.msg_id:
                self.replied = True
                self.failed = content.get("status") != "ok"
        elif channel != "iopub" or msg_type in PROBE_OWN:
            return
        elif msg_type != "stream":
            outputs.handle(msg)
        else:
            self._take_stream(msg, content, outputs)

    def _take_stream(self, msg: Message, content: dict[str, Any], outputs: OutputCollector) -> None:
        text = str(content.get("text", ""))
        name = content.get("name")
        name = name if name in ("stdout", "stderr") else "stdout"
        stale = [marker for marker in self.stale_markers if marker in text]
        for marker in stale:
            text = text.replace(f"{marker}\n", "").replace(marker, "")
        if self.marker in text:
            self.marker_seen = True
            text = text.split(self.marker, 1)[0]
        elif not stale:
            outputs.handle(msg)
            return
        if text:
            outputs.stream(name, text)


def _content(msg: Message) -> dict[str, Any]:
    content = msg.get("content")
    return content if isinstance(content, dict) else {}
