"""One clang-repl child process: send it an input, stream back what it prints, know when it is
done, when it asks for input and when it died.

clang-repl prints no prompt when its input is a pipe, so the end of each input is marked by a
call of the prelude's ``__kp::done(n)``, which prints a marker on both streams. Two threads read
stdout and stderr as they come (a blocking read per stream is the simplest thing that never
stalls on a full pipe); the kernel's thread consumes their events.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import queue
import secrets
import signal
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from kernelpad.kernels.cpp.cells import diagnostics
from kernelpad.kernels.cpp.prelude import RS, prelude
from kernelpad.kernels.keeper_command import death_signal_prefix

CLANG_REPL = "/usr/lib/llvm-19/bin/clang-repl"
STD = "c++17"
# stderr of an input is held back (clang's diagnostics become an error reply, not a stream)
# up to this many characters; past it, it streams as it comes, unless it holds a compile error:
# then nothing ran, all of it is clang's (as long as clang's error limit lets it be), and all of
# it is the error's.
HOLD_STDERR = 64 * 1024
# Output is passed on in pieces of at most this size, gathered while more is arriving.
BATCH = 64 * 1024
# After these, clang-repl's JIT is broken for good: the input's end marker will never run.
JIT_BROKEN = ("JIT session error", "Failed to materialize symbols", "Symbols not found")


@dataclass
class Outcome:
    """How one input ended."""

    stderr: str = ""
    value: str | None = None
    exited: int | None = None  # the process's return code, if it ended
    streamed_stderr: bool = False
    jit_broken: bool = False  # killed because its JIT could not go on


@dataclass
class _Stream:
    name: str
    decoder: codecs.IncrementalDecoder = field(
        default_factory=lambda: codecs.getincrementaldecoder("utf-8")(errors="replace")
    )
    buffer: str = ""
    closed: bool = False


class ClangRepl:
    """A clang-repl process with kernelpad's prelude loaded."""

    def __init__(self, std: str = STD, program: str = CLANG_REPL) -> None:
        self.token = secrets.token_hex(8)
        self._marker = f"{RS}{self.token}:"
        self._events: queue.Queue[tuple[str, bytes | None]] = queue.Queue()
        input_read, self._input_write = os.pipe()
        self.proc = subprocess.Popen(
            # It dies with the kernel, however the kernel ends.
            [*death_signal_prefix(), program, "-Xcc", f"-std={std}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(input_read,),
            start_new_session=True,  # an interrupt for the kernel must not reach it by itself
        )
        os.close(input_read)
        self._streams = {"stdout": _Stream("stdout"), "stderr": _Stream("stderr")}
        for name, pipe in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr)):
            threading.Thread(target=self._read, args=(name, pipe), daemon=True).start()
        self._count = 0
        self._input_fd_number = input_read
        self.send_raw(prelude(self.token, input_read))

    def _read(self, name: str, pipe: object) -> None:
        fd = pipe.fileno()  # type: ignore[attr-defined]
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            self._events.put((name, chunk or None))
            if not chunk:
                return

    def send_raw(self, text: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died; the reader threads will tell

    def answer_input(self, line: str | None) -> None:
        """Give the program a line of input; ``None`` is end of input."""
        data = "\x04\n" if line is None else line.replace("\n", " ") + "\n"
        with contextlib.suppress(OSError):
            os.write(self._input_write, data.encode())

    def run(
        self,
        source: str,
        on_output: Callable[[str, str], None],
        on_input: Callable[[], str | None],
        stop: threading.Event | None = None,
    ) -> Outcome:
        """Send one input and wait until clang-repl has dealt with it (or died).

        ``on_output(stream, text)`` gets the program's output as it comes (stderr held back as
        described above), ``on_input()`` a line for each input request (``None``: end of input).
        """
        self._count += 1
        n = self._count
        self.send_raw(f"{source}\n__kp::done({n});\n")
        return self._collect(n, on_output, on_input, stop)

    def ready(self) -> Outcome:
        """Wait for the prelude to be loaded."""
        self._count += 1
        self.send_raw(f"__kp::done({self._count});\n")
        return self._collect(self._count, lambda *_: None, lambda: None, None)

    def _collect(
        self,
        n: int,
        on_output: Callable[[str, str], None],
        on_input: Callable[[], str | None],
        stop: threading.Event | None,
    ) -> Outcome:
        outcome = Outcome()
        held: list[str] = []
        done = {"stdout": False, "stderr": False}
        value_parts: list[str] = []
        pending: list[str] = []  # stdout gathered while more is arriving
        failed = False  # the held stderr has a compile error

        def flush() -> None:
            if pending:
                on_output("stdout", "".join(pending))
                pending.clear()

        def emit(stream: str, text: str) -> None:
            nonlocal failed
            if not text:
                return
            if stream == "stdout":
                if value_parts:  # inside a value
                    value_parts.append(text)
                else:
                    pending.append(text)
                    if sum(map(len, pending)) >= BATCH:
                        flush()
            elif outcome.streamed_stderr:
                flush()
                on_output("stderr", text)
            else:
                held.append(text)
                if any(sign in text for sign in JIT_BROKEN):
                    outcome.jit_broken = True
                    self.kill()
                if failed or sum(map(len, held)) <= HOLD_STDERR:
                    return
                failed = diagnostics("".join(held)).failed
                if not failed:
                    outcome.streamed_stderr = True
                    flush()
                    on_output("stderr", "".join(held))
                    held.clear()

        while not all(done.values()):
            try:
                name, chunk = self._events.get(timeout=0.1)
            except queue.Empty:
                if stop is not None and stop.is_set():
                    self.kill()
                continue
            stream = self._streams[name]
            if chunk is None:
                stream.closed = True
                stream.buffer += stream.decoder.decode(b"", final=True)
                emit(name, stream.buffer)
                stream.buffer = ""
                done[name] = True
                continue
            stream.buffer += stream.decoder.decode(chunk)
            while True:
                event = self._next_event(stream)
                if event is None:
                    break
                kind, text = event
                if kind == "text":
                    emit(name, text)
                elif kind == "done" and text == str(n):
                    done[name] = True
                elif kind == "value_start":
                    value_parts.append("")
                elif kind == "value_end":
                    outcome.value = "".join(value_parts)
                    value_parts.clear()
                elif kind == "input":
                    flush()
                    self.answer_input(on_input())
            if self._events.empty():
                flush()
        flush()
        if any(s.closed for s in self._streams.values()):
            outcome.exited = self.proc.wait()
        outcome.stderr = "".join(held)
        return outcome

    def _next_event(self, stream: _Stream) -> tuple[str, str] | None:
        """The next text or marker in ``stream``'s buffer, or None until more arrives."""
        buf = stream.buffer
        if not buf:
            return None
        start = buf.find(RS)
        if start > 0:
            stream.buffer = buf[start:]
            return "text", buf[:start]
        if start < 0:
            stream.buffer = ""
            return "text", buf
        if not buf.startswith(self._marker):
            if len(buf) < len(self._marker) and self._marker.startswith(buf):
                return None  # perhaps a marker, cut short
            stream.buffer = buf[1:]
            return "text", buf[0]
        rest = buf[len(self._marker) :]
        if not rest:
            return None
        kind = rest[0]
        if kind == "V":
            stream.buffer = rest[1:]
            return "value_start", ""
        if kind == "E":
            stream.buffer = rest[1:]
            return "value_end", ""
        end = rest.find(RS, 1)
        if end < 0:
            return None
        stream.buffer = rest[end + 1 :]
        if kind == "D":
            return "done", rest[1:end]
        if kind == "I":
            return "input", ""
        return "text", buf[: len(self._marker) + end + 1]

    def kill(self) -> None:
        """Stop the process now (an interrupt: the kernel restores state by replay)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                self.proc.kill()

    def close(self) -> None:
        self.kill()
        self.proc.wait()
        os.close(self._input_write)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
