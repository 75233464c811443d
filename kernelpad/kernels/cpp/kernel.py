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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ipykernel.kernelbase import Kernel

from kernelpad import __version__
from kernelpad.kernels.cpp.cells import (
    Diagnostics,
    Prepared,
    UnsupportedCell,
    declarations,
    diagnostics,
    is_complete,
    is_directive,
    prepare,
    readable,
    top_level_names,
    unwrap,
)
from kernelpad.kernels.cpp.intellisense import Intellisense
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


@dataclass(frozen=True)
class Entry:
    """An input that succeeded, and the input lines it read: what a replay sends again."""

    source: str
    lines: tuple[str | None, ...] = ()


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
        self._history: list[Entry] = []
        self._repl: ClangRepl | None = self._start_repl()
        self._restoring: threading.Thread | None = None
        self._intellisense = Intellisense()

    @staticmethod
    def _start_repl() -> ClangRepl:
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
        self._allow_stdin = allow_stdin  # raw_input() asks the frontend only when allowed

        def output(stream: str, text: str) -> None:
            if not silent:
                self.send_response(self.iopub_socket, "stream", {"name": stream, "text": text})

        try:
            prepared = prepare(code)
        except UnsupportedCell as exc:
            return self._error("CompileError", str(exc), [str(exc)])
        self._wait_restored(output)
        self._interrupted.clear()
        reply = self._run(prepared, output, silent)
        redefined = (
            _REDEFINITION.search(reply.get("evalue", "")) if reply["status"] == "error" else None
        )
        if redefined and self._forget(redefined.group(1)):
            # Running a cell again after editing it is the notebook's way: the new definition
            # replaces the old one (clang-repl itself refuses a second definition).
            output(
                "stderr",
                f"[kernel: '{redefined.group(1)}' was defined by an earlier cell; that"
                " definition was replaced]\n",
            )
            self._restore_now()
            reply = self._run(prepared, output, silent, show_error=True)
        elif reply["status"] == "error":
            self._send_error(reply)
        return reply

    def _run(
        self, prepared: Prepared, output: Any, silent: bool, show_error: bool = False
    ) -> dict[str, Any]:
        """Send a cell's inputs in turn; the reply (errors not yet published, unless asked)."""
        repl = self._repl
        assert repl is not None
        done: list[Entry] = []
        for source, numbers in zip(prepared.inputs, prepared.line_numbers, strict=True):
            answered: list[str | None] = []
            outcome = repl.run(
                source, output, self._recording_reader(answered, output), self._interrupted
            )
            found = diagnostics(outcome.stderr)
            if found.failed:
                reply = self._compile_error(repl, done, source, numbers, found)
            elif outcome.exited is not None:
                reply = self._after_exit(outcome, output, done)
            else:
                if outcome.stderr:
                    output("stderr", outcome.stderr)
                done.append(Entry(source, tuple(answered)))
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
                continue
            if show_error:
                self._send_error(reply)
            return reply
        self._history.extend(done)
        return {
            "status": "ok",
            "execution_count": self.execution_count,
            "payload": [],
            "user_expressions": {},
        }

    def _recording_reader(
        self, answered: list[str | None], output: Any
    ) -> Callable[[], str | None]:
        """A reader of input lines for one input that keeps them, to replay them later."""

        def read_line() -> str | None:
            line = self._read_line(output)
            answered.append(line)
            return line

        return read_line

    def _read_line(self, output: Any) -> str | None:
        if not self._allow_stdin:
            output("stderr", "[std::cin: this frontend sends no input; end of input]\n")
            return None
        try:
            value = self.raw_input("")
        except Exception:
            return None
        return None if value == "\x04" else value

    async def do_is_complete(self, code: str) -> dict[str, Any]:
        status = is_complete(code)
        reply: dict[str, Any] = {"status": status}
        if status == "incomplete":
            reply["indent"] = "    "
        return reply

    async def do_complete(self, code: str, cursor_pos: int | None) -> dict[str, Any]:
        position = len(code) if cursor_pos is None else min(max(cursor_pos, 0), len(code))
        return await self._intellisense.complete(self._sources(), code, position)

    async def do_inspect(
        self,
        code: str,
        cursor_pos: int | None,
        detail_level: int = 0,
        omit_sections: Any = (),
    ) -> dict[str, Any]:
        position = len(code) if cursor_pos is None else min(max(cursor_pos, 0), len(code))
        return await self._intellisense.inspect(self._sources(), code, position, detail_level)

    def _sources(self) -> list[str]:
        """The inputs clang-repl has now (a replay in the background may drop one meanwhile)."""
        return [entry.source for entry in list(self._history)]

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:
        self._intellisense.close()
        self._wait_restored(lambda *_: None)
        if self._repl is not None:
            self._repl.close()
        return {"status": "ok", "restart": restart}

    def _send_interrupt_children(self) -> None:
        # JIT-compiled code cannot be interrupted in place: stop clang-repl, restore by replay.
        self._interrupted.set()
        if self._repl is not None:
            self._repl.kill()

    # Failures

    def _compile_error(
        self,
        repl: ClangRepl,
        done: list[Entry],
        source: str,
        numbers: tuple[int, ...],
        found: Diagnostics,
    ) -> dict[str, Any]:
        traceback = readable(found.text, source, numbers)
        # What the cell declared before its error must not stay; its directives may. clang-repl
        # 19's %undo is not reliable (it breaks includes), an input with several declarations
        # may have had the first ones compiled, and a broken JIT cannot go on: a clean
        # interpreter, restored by replay in the background, is the sure way.
        self._history.extend(entry for entry in done if is_directive(entry.source))
        declared = any(not is_directive(entry.source) for entry in done)
        if declared or repl.proc.poll() is not None or declarations(source) > 1:
            self._restart_later()
        return {
            "status": "error",
            "execution_count": self.execution_count,
            "ename": "CompileError",
            "evalue": unwrap(found.first_error or "compile error"),
            "traceback": traceback,
        }

    def _after_exit(self, outcome: Outcome, output: Any, done: list[Entry]) -> dict[str, Any]:
        interrupted = self._interrupted.is_set()
        if outcome.stderr:
            output("stderr", outcome.stderr)
        self._history.extend(entry for entry in done if is_directive(entry.source))
        note = (
            f"[kernel: clang-repl ended; it is restarted now and {len(self._history)} earlier"
            " input(s) replayed to restore the session's definitions (their output is not shown"
            " again)]"
        )
        self._restart_later()
        if interrupted:
            return self._reply_error("Interrupted", "the cell was interrupted", [note])
        # The program's last words went to stderr above: the error does not repeat them.
        ename, evalue = describe_exit(outcome.exited or 0)
        return self._reply_error(ename, evalue, [note])

    def _restart_later(self) -> None:
        """Replace clang-repl in the background: the reply goes out now, and the replay runs
        while the kernel is idle (the next cell waits for it if it comes first).

        The process is started here, on the kernel's main thread: its parent-death signal
        fires when the thread that started it ends, so a helper thread must not start it.
        """
        if self._repl is not None:
            self._repl.close()
            self._repl = None
        repl = ClangRepl()
        self._restoring = threading.Thread(target=self._replay_into, args=(repl,), daemon=True)
        self._restoring.start()

    def _replay_into(self, repl: ClangRepl) -> None:
        repl.ready()
        for index, entry in enumerate(self._history):
            outcome = _replay(repl, entry)
            if outcome.exited is not None or diagnostics(outcome.stderr).failed:
                # It fails on replay: drop it, and let the next cell restore without it (a
                # new process must come from the main thread).
                del self._history[index]
                repl.close()
                return
        self._repl = repl

    def _wait_restored(self, output: Any) -> None:
        restoring, self._restoring = self._restoring, None
        if restoring is not None:
            restoring.join()
            output(
                "stderr",
                f"[kernel: clang-repl restarted; {len(self._history)} earlier input(s) replayed"
                " to restore the session's definitions, their output not shown again]\n",
            )
        if self._repl is None:
            self._restore_now()

    def _restore_now(self) -> None:
        """Start a new clang-repl and replay the history into it."""
        if self._repl is not None:
            self._repl.close()
        repl = self._start_repl()
        kept: list[Entry] = []
        for entry in self._history:
            outcome = _replay(repl, entry)
            if outcome.exited is not None:  # it crashed again: start over without it
                repl.close()
                repl = self._start_repl()
                for again in kept:
                    _replay(repl, again)
                continue
            if not diagnostics(outcome.stderr).failed:
                kept.append(entry)
        self._history = kept
        self._repl = repl

    def _forget(self, name: str) -> bool:
        """Drop the history entries that declare or use ``name`` at the top level."""
        kept = [e for e in self._history if name not in top_level_names(e.source)]
        dropped = len(kept) < len(self._history)
        self._history = kept
        return dropped

    def _reply_error(self, ename: str, evalue: str, traceback: list[str]) -> dict[str, Any]:
        return {
            "status": "error",
            "execution_count": self.execution_count,
            "ename": ename,
            "evalue": evalue,
            "traceback": traceback,
        }

    def _error(self, ename: str, evalue: str, traceback: list[str]) -> dict[str, Any]:
        reply = self._reply_error(ename, evalue, traceback)
        self._send_error(reply)
        return reply

    def _send_error(self, reply: dict[str, Any]) -> None:
        content = {key: reply[key] for key in ("ename", "evalue", "traceback")}
        self.send_response(self.iopub_socket, "error", content)


_REDEFINITION = re.compile(r"redefinition of '([A-Za-z_]\w*)'")


def _replay(repl: ClangRepl, entry: Entry) -> Outcome:
    """Send ``entry`` again, silently, with the input lines it read the first time."""
    answers = iter(entry.lines)
    return repl.run(entry.source, lambda *_: None, lambda: next(answers, None))
