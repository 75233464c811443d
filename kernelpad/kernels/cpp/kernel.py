"""A stateful C++ kernel: ipykernel's ``Kernel`` protocol on top of clang-repl.

Each cell goes to one long-lived clang-repl process, so what a cell declares (includes,
functions, classes, templates, globals) is there for the next. clang-repl runs the code in its
own process: a segfault, an ``abort()``, an uncaught exception or an ``exit()`` ends it. The
kernel answers the cell at once, then, before the next cell, starts a new clang-repl and replays
the inputs that succeeded before, silently, so the session's definitions survive. An interrupt
does the same (killing clang-repl is the only way to stop a busy loop in JIT-compiled code);
replaying lazily keeps the interrupt's answer quick however long the session's history is.
Failed inputs are never kept: clang-repl discards an input that does not compile, and the kernel
undoes the earlier inputs of a cell that failed later on.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
from typing import Any

from ipykernel.kernelbase import Kernel

from kernelpad import __version__
from kernelpad.kernels.cpp.cells import (
    declarations,
    diagnostics,
    is_complete,
    is_directive,
    prepare,
)
from kernelpad.kernels.cpp.repl import CLANG_REPL, STD, ClangRepl, Outcome


def clang_version() -> str:
    try:
        out = subprocess.run([CLANG_REPL, "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown"
    match = re.search(r"version (\d+[\d.]*)", out)
    return match.group(1) if match else "unknown"


def describe_exit(code: int) -> tuple[str, str]:
    """``(ename, evalue)`` for a clang-repl that ended with return code ``code``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        what = {
            "SIGSEGV": "a segmentation fault (an invalid memory access)",
            "SIGABRT": "abort() (an uncaught exception or a failed assertion ends this way)",
            "SIGFPE": "an arithmetic error (such as an integer division by zero)",
            "SIGBUS": "a bus error (an invalid memory access)",
            "SIGKILL": "being killed",
        }.get(name, name)
        return "Crash", f"the program was stopped by {what} ({name})"
    return "Exit", f"the program called exit({code})"


class CppKernel(Kernel):
    """C++17 on clang-repl."""

    implementation = "kernelpad-cpp"
    implementation_version = __version__
    language = "c++"
    banner = f"C++ ({STD}) on clang-repl, a kernel of kernelpad"
    language_info = {
        "name": "c++",
        "version": clang_version(),
        "mimetype": "text/x-c++src",
        "file_extension": ".cpp",
        "codemirror_mode": "text/x-c++src",
        "pygments_lexer": "cpp",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._interrupted = threading.Event()
        self._history: list[str] = []  # inputs that succeeded, to replay after a restart
        self._repl: ClangRepl | None = self._start_repl()

    def _start_repl(self) -> ClangRepl:
        repl = ClangRepl()
        repl.ready()
        return repl

    # Protocol

    async def do_execute(
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool = False,
        *,
        cell_meta: dict[str, Any] | None = None,
        cell_id: str | None = None,
    ) -> dict[str, Any]:
        self._interrupted.clear()
        self._allow_stdin = allow_stdin  # raw_input() asks the frontend only when allowed
        prepared = prepare(code)
        done: list[str] = []

        def output(stream: str, text: str) -> None:
            if not silent:
                self.send_response(self.iopub_socket, "stream", {"name": stream, "text": text})

        if self._repl is None:
            replayed = self._restore()
            output(
                "stderr",
                f"[kernel: clang-repl restarted; {replayed} earlier input(s) replayed to restore"
                " the session's definitions, their output not shown again]\n",
            )
        repl = self._repl
        assert repl is not None

        def read_line() -> str | None:
            if not allow_stdin:
                output("stderr", "[std::cin: this frontend sends no input; end of input]\n")
                return None
            try:
                value = self.raw_input("")
            except Exception:
                return None
            return None if value == "\x04" else value

        for source in prepared.inputs:
            outcome = repl.run(source, output, read_line, self._interrupted)
            if outcome.exited is not None:
                return self._after_exit(outcome, output)
            found = diagnostics(outcome.stderr)
            if found.failed:
                self._undo(done)
                traceback = found.text.splitlines()
                if declarations(source) > 1:
                    # clang-repl 19 may have compiled the declarations before the error: a
                    # clean interpreter, restored by replay, is the only sure way to drop them.
                    repl.close()
                    self._repl = None
                    traceback.append(
                        "[kernel: clang-repl restarts before the next cell, so nothing of this"
                        " cell stays declared]"
                    )
                return self._error("CompileError", found.first_error or "compile error", traceback)
            if outcome.stderr:
                output("stderr", outcome.stderr)
            done.append(source)
            if outcome.value is not None and not silent:
                self.send_response(
                    self.iopub_socket,
                    "execute_result",
                    {
                        "execution_count": self.execution_count,
                        "data": {"text/plain": outcome.value},
                        "metadata": {},
                    },
                )
        self._history.extend(done)
        return {
            "status": "ok",
            "execution_count": self.execution_count,
            "payload": [],
            "user_expressions": {},
        }

    async def do_is_complete(self, code: str) -> dict[str, Any]:
        status = is_complete(code)
        reply: dict[str, Any] = {"status": status}
        if status == "incomplete":
            reply["indent"] = "    "
        return reply

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:
        if self._repl is not None:
            self._repl.close()
        return {"status": "ok", "restart": restart}

    def _send_interrupt_children(self) -> None:
        # JIT-compiled code cannot be interrupted in place: stop clang-repl, restore by replay.
        self._interrupted.set()
        if self._repl is not None:
            self._repl.kill()

    # Failures

    def _after_exit(self, outcome: Outcome, output: Any) -> dict[str, Any]:
        interrupted = self._interrupted.is_set()
        if outcome.stderr:
            output("stderr", outcome.stderr)
        if self._repl is not None:
            self._repl.close()
            self._repl = None
        note = (
            f"[kernel: clang-repl ended; before the next cell it restarts and replays"
            f" {len(self._history)} earlier input(s) to restore the session's definitions]"
        )
        if interrupted:
            return self._error("Interrupted", "the cell was interrupted", [note])
        ename, evalue = describe_exit(outcome.exited or 0)
        tail = [line for line in outcome.stderr.splitlines() if line.strip()][-5:]
        return self._error(ename, evalue, [*tail, note])

    def _restore(self) -> int:
        """Start a new clang-repl and replay the history into it; return how many inputs."""
        repl = self._start_repl()
        kept: list[str] = []
        for source in self._history:
            outcome = repl.run(source, lambda *_: None, lambda: None)
            if outcome.exited is not None:  # it crashed again: start over without it
                repl.close()
                repl = self._start_repl()
                for again in kept:
                    repl.run(again, lambda *_: None, lambda: None)
                continue
            if not diagnostics(outcome.stderr).failed:
                kept.append(source)
        self._history = kept
        self._repl = repl
        return len(kept)

    def _undo(self, done: list[str]) -> None:
        """Take back the code a failed cell declared before its failure.

        Each input left two units in clang-repl (itself and its end marker), the failed one
        only its marker. Directives stay: clang-repl cannot undo an include.
        """
        count = 0
        for source in reversed(done):
            if is_directive(source):
                break
            count += 1
        if count and self._repl is not None:
            undo = "\n".join(["%undo"] * (2 * count + 1))
            self._repl.run(undo, lambda *_: None, lambda: None)

    def _error(self, ename: str, evalue: str, traceback: list[str]) -> dict[str, Any]:
        content = {"ename": ename, "evalue": evalue, "traceback": traceback}
        self.send_response(self.iopub_socket, "error", content)
        return {"status": "error", "execution_count": self.execution_count, **content}
