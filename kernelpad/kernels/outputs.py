"""A run's outputs in nbformat's shape, kept within the output caps.

The kernel's IOPub messages (``stream``, ``display_data``, ``execute_result``, ``error``) become
nbformat outputs here, as :mod:`kernelpad.kernels.execution` receives them. What is kept is
bounded whatever the code prints: stdout plus stderr up to ``max_output`` characters, rich
outputs (images, HTML) up to :data:`RICH_OUTPUT_LIMIT` bytes and :data:`MAX_OUTPUTS` in number.
What is dropped is counted, so that the run loop can stop code that floods.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kernelpad.kernels.base import Message

# Rich outputs (images, HTML) kept per run: bytes of their content as sent, and how many.
RICH_OUTPUT_LIMIT = 5_000_000
MAX_OUTPUTS = 1000

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

#: Who is shown each output as it arrives (the run's listener).
OutputCallback = Callable[[dict[str, Any]], None]


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class OutputCollector:
    """Collects a run's outputs in nbformat's shape, within the output caps.

    It holds the outputs in order (consecutive pieces of one stream merged into one output, as
    a notebook shows them), each stream's text apart (``streams``, for the ``stdout`` and
    ``stderr`` of a result), the error the code raised, its execution count, and the counts of
    what was kept, seen and dropped.

    Kernels are not trusted to send well-formed content: a field of the wrong type is coerced or
    the message skipped, never allowed to fail the run. Everything dropped (past the stream cap,
    past the rich-output budget, too large to decode) counts in ``dropped``, which is what the
    flood limit watches.
    """

    def __init__(self, max_output: int, on_output: OutputCallback | None = None) -> None:
        self.max_output = max_output
        self.on_output = on_output
        self.outputs: list[dict[str, Any]] = []
        self.streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.kept = 0
        self.seen = 0
        self.dropped = 0
        self.rich_size = 0
        self.truncated_stream: str | None = None
        self.rich_dropped = 0
        self.malformed = 0
        self.error: dict[str, Any] | None = None
        self.execution_count: int | None = None

    def stream(self, name: str, text: str) -> None:
        """Add ``text`` to stream ``name``, as far as the stream cap leaves room."""
        self.seen += len(text)
        room = self.max_output - self.kept
        if len(text) > room:
            self.dropped += len(text) - max(room, 0)
            self.truncated_stream = self.truncated_stream or name
            if room <= 0:
                return
            text = text[:room]
        self.kept += len(text)
        self._append_stream(name, text)

    def _append_stream(self, name: str, text: str) -> None:
        if self.on_output is not None:
            self.on_output({"output_type": "stream", "name": name, "text": text})
        self.streams.setdefault(name, []).append(text)
        last = self.outputs[-1] if self.outputs else None
        if last is not None and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += text
        else:
            self.outputs.append({"output_type": "stream", "name": name, "text": text})

    def rich(self, output_type: str, content: dict[str, Any], size: int) -> None:
        """Keep a ``display_data`` or ``execute_result`` of ``size`` bytes, within the
        rich-output budget."""
        data, metadata = content.get("data"), content.get("metadata") or {}
        if not isinstance(data, dict) or not isinstance(metadata, dict):
            self.malformed += 1
            return
        if self.rich_size + size > RICH_OUTPUT_LIMIT or len(self.outputs) >= MAX_OUTPUTS:
            self.rich_dropped += 1
            self.dropped += size
            return
        self.rich_size += size
        output: dict[str, Any] = {
            "output_type": output_type,
            "data": {str(mime): value for mime, value in data.items()},
            "metadata": metadata,
        }
        if output_type == "execute_result":
            self.count(content.get("execution_count"))
            output["execution_count"] = self.execution_count
        self.outputs.append(output)
        if self.on_output is not None:
            self.on_output(output)

    def raised(self, content: dict[str, Any]) -> None:
        """Keep the ``error`` the code raised, as an output and as the run's error."""
        traceback = content.get("traceback")
        self.error = {
            "ename": str(content.get("ename", "")),
            "evalue": str(content.get("evalue", "")),
            "traceback": [str(line) for line in traceback] if isinstance(traceback, list) else [],
        }
        self.outputs.append({"output_type": "error", **self.error})
        if self.on_output is not None:
            self.on_output(self.outputs[-1])
        # The traceback as plain text (the raw one, with its colours, is kept beside it); in
        # the result's stderr too, where clients of the original API read failures, as a
        # process prints them. Not as a second output: the notebook shows the error once.
        plain = "\n".join(strip_ansi(line) for line in self.error["traceback"]).strip("\n")
        self.error["traceback_text"] = plain
        self.streams["stderr"].append(
            (plain or f"{self.error['ename']}: {self.error['evalue']}") + "\n"
        )

    def count(self, value: object) -> None:
        """Take ``value`` as the execution count if it is one (kernels send what they like)."""
        if isinstance(value, int) and not isinstance(value, bool):
            self.execution_count = value

    def finish(self) -> None:
        """Say what was dropped, once the run is over: the notes come after its outputs."""
        if self.truncated_stream:
            self._append_stream(
                self.truncated_stream,
                f"\n[kernelpad: output truncated, {self.kept} of {self.seen} characters shown;"
                f" the limit is {self.max_output} characters]\n",
            )
        if self.rich_dropped:
            self.note(
                f"{self.rich_dropped} rich output(s) dropped; a run may show at most"
                f" {MAX_OUTPUTS} outputs and {RICH_OUTPUT_LIMIT} bytes of images and HTML"
            )
        if self.malformed:
            self.note(f"{self.malformed} malformed message(s) from the kernel ignored")

    def note(self, text: str) -> None:
        """Tell the user something about the run, on stderr, outside the output cap."""
        self._append_stream("stderr", f"\n[kernelpad: {text}]\n")

    def handle(self, msg: Message) -> None:
        """Take one IOPub message of the run (other than ``status``)."""
        msg_type = msg["header"].get("msg_type")
        content = msg["content"]
        size = int(msg.get("content_size", 0))
        if msg.get("content_dropped"):
            # Too large to decode: it counts as output dropped, whatever it was.
            self.dropped += size
            self.seen += size
            if msg_type == "stream":
                self.truncated_stream = self.truncated_stream or "stdout"
            elif msg_type in ("display_data", "execute_result"):
                self.rich_dropped += 1
            return
        if not isinstance(content, dict):
            self.malformed += 1
        elif msg_type == "stream":
            name, text = content.get("name"), content.get("text")
            if isinstance(text, str):
                self.stream(name if name in ("stdout", "stderr") else "stdout", text)
            else:
                self.malformed += 1
        elif msg_type in ("display_data", "execute_result"):
            self.rich(msg_type, content, size)
        elif msg_type == "error":
            self.raised(content)
        elif msg_type == "execute_input":
            self.count(content.get("execution_count"))
