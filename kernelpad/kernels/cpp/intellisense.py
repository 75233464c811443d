"""Completion and inspection for the C++ kernel, answered by clang itself.

clang knows a name only in its context (``xs.`` needs the type of ``xs``, which a cell of an
hour ago declared), so each request builds one file of the session's code as clang-repl has it:
the prelude, the inputs that succeeded, in order, then the current cell up to the cursor; and
asks clang++ to complete at its end (``-code-completion-at``). With ``-fincremental-extensions``,
the flag clang-repl itself runs with, statements may stand at file scope as they do in cells, so
every input goes in as it was sent, with no guess at which are declarations and which are
statements, and the cell's own code stays where the user wrote it.

Parsing the headers is most of clang's time (0.5 s for ``<bits/stdc++.h>``, where the rest takes
milliseconds), so the prelude and the session's ``#include`` lines are precompiled once they are
known, in the background and niced (the cell the user runs meanwhile comes first): the first
request after a new ``#include`` goes without the precompiled header, the next ones (30 to 150 ms)
with it. The includes go first in both cases: a header does not depend on what a cell declared
before it, and the precompiled one must start the file.

A request never waits long: clang gets ``TIMEOUT`` seconds (an editor asks as the user types,
and a late answer is worth nothing), and a request clang cannot answer is answered with nothing
rather than an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelpad.kernels.cpp.prelude import prelude
from kernelpad.kernels.cpp.repl import CLANG_REPL, STD

# The compiler clang-repl comes with: same headers, same language.
CLANG = str(Path(CLANG_REPL).with_name("clang++"))
TIMEOUT = 5.0
# Precompiling <bits/stdc++.h> takes about 1.3 s; a machine busy with clang-repl, longer.
BUILD_TIMEOUT = 60.0
# The precompiled header and every file that uses it need the same language options.
FLAGS = (
    f"-std={STD}",
    "-Xclang",
    "-fincremental-extensions",
    "-fretain-comments-from-system-headers",  # the standard library's documentation comments
    "-w",
    "-ferror-limit=0",  # clang stops at the 20th error otherwise, before it reaches the cursor
    "-fno-color-diagnostics",
    *("-iquote", "."),  # clang-repl finds #include "file" in the kernel's folder, not the file's
)
# Lines of a definition's source shown for detail_level 1, at most.
SOURCE_LINES = 40
FOLDER_PREFIX = "kernelpad-cpp-"

_INCLUDE = re.compile(r"\s*#\s*include\b")
_COMPLETION = re.compile(r"^COMPLETION: (\S+)(?: \(([^)]*)\))?(?: : (.*))?$")
_KEYWORD = re.compile(r"(?:\[#[^#]*#\])?([A-Za-z_]\w*)")
_IDENTIFIER = re.compile(r"(?!\d)\w+")
_MARKUP = re.compile(r"\[#|#\]|<#|#>|\{#|#\}")
_QUALIFIER = re.compile(r"(?:(?!\d)\w+\s*::\s*)*$")
_PRINTING = re.compile(r"^Printing (.+):$", re.MULTILINE)

# clang's arguments for what to do with a file, given the file and the line and column of its end.
Action = Callable[[Path, int, int], list[str]]


@dataclass(frozen=True)
class Candidate:
    """One of clang's completions: a name, its declaration as a reader would write it (empty
    for keywords and code patterns, which declare nothing), and its documentation comment."""

    name: str
    declaration: str = ""
    comment: str = ""


def readable(pattern: str) -> str:
    """clang's completion pattern as a declaration: ``[#int#]add(<#int a#>, <#int b#>)``
    becomes ``int add(int a, int b)``."""
    result = re.match(r"\[#(.*?)#\]", pattern)
    rest = _MARKUP.sub("", pattern[result.end() :] if result else pattern)
    if result is None:
        return rest
    kind = result.group(1)
    return f"{kind}{'' if kind.endswith(('*', '&')) else ' '}{rest}"


def parse(output: str) -> list[Candidate]:
    """The candidates in clang's ``-code-completion-at`` output, without the ones code at the
    cursor cannot use (private members, names hidden by others)."""
    found: list[Candidate] = []
    for line in output.splitlines():
        match = _COMPLETION.match(line)
        if match is None:
            continue
        name, flags, rest = match.groups()
        if flags and {"Hidden", "Inaccessible"} & set(flags.split(",")):
            continue
        pattern, _, comment = (rest or "").partition(" : ")
        if name == "Pattern":  # a keyword's code template, such as "return <#expression#>;"
            keyword = _KEYWORD.match(pattern)
            if keyword is not None:
                found.append(Candidate(keyword.group(1)))
            continue
        comment = re.sub(r"%(?=\w)", "", comment)  # Doxygen's escapes, as in "the %vector"
        found.append(Candidate(name, readable(pattern) if pattern else "", comment))
    return found


def matches(candidates: Sequence[Candidate], prefix: str) -> list[str]:
    """The names that complete ``prefix``, alphabetically; the implementation's reserved names
    (``_M_impl``, ``__kp``) only when the user types an underscore."""
    names = {
        c.name
        for c in candidates
        if c.name.startswith(prefix)
        and _IDENTIFIER.fullmatch(c.name)
        and (prefix.startswith("_") or not c.name.startswith("_"))
        and not c.name.startswith("__kp")
    }
    return sorted(names, key=lambda name: (name.lower(), name))


def word_at(code: str, cursor_pos: int) -> tuple[int, int] | None:
    """Where the identifier to inspect is: the one the cursor is in or just after, else the
    function whose call's parentheses the cursor is between (``max(a, |b)``)."""
    start = end = cursor_pos
    while start > 0 and _is_word(code[start - 1]):
        start -= 1
    while end < len(code) and _is_word(code[end]):
        end += 1
    if start == end:
        depth = 0
        for index in range(cursor_pos - 1, -1, -1):
            depth += {")": 1, "(": -1}.get(code[index], 0)
            if depth < 0:
                return word_at(code, len(code[:index].rstrip())) if index else None
        return None
    return (start, end) if _IDENTIFIER.fullmatch(code[start:end]) else None


def qualified_name(code: str, start: int, end: int) -> str | None:
    """The name at ``code[start:end]`` with the namespaces or classes written before it
    (``std::string``), as clang prints names; None for a member (``xs.size``), whose class
    the text does not tell."""
    before = code[:start]
    if before.rstrip().endswith((".", "->")):
        return None
    qualifier = _QUALIFIER.search(before)
    return re.sub(r"\s+", "", qualifier.group(0) if qualifier else "") + code[start:end]


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


class Intellisense:
    """Completion and inspection for one kernel's session, with its precompiled header."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._count = 0
        self._pch: tuple[tuple[str, ...], Path] | None = None  # its includes, its file
        self._building: asyncio.Task[None] | None = None
        self._unbuildable: set[tuple[str, ...]] = set()

    async def complete(self, history: Sequence[str], code: str, cursor_pos: int) -> dict[str, Any]:
        """A ``complete_reply`` for the name being typed at ``cursor_pos`` (in code points)."""
        before = code[:cursor_pos]
        prefix = re.search(r"\w*$", before)
        typed = prefix.group(0) if prefix else ""
        reply: dict[str, Any] = {
            "status": "ok",
            "matches": [],
            "cursor_start": cursor_pos - len(typed),
            "cursor_end": cursor_pos,
            "metadata": {},
        }
        if typed[:1].isdigit():  # a number, not a name
            return reply
        output = await self._ask(history, before, _complete_at)
        reply["matches"] = matches(parse(output), typed)
        return reply

    async def inspect(
        self, history: Sequence[str], code: str, cursor_pos: int, detail_level: int = 0
    ) -> dict[str, Any]:
        """An ``inspect_reply`` for the identifier at ``cursor_pos``: its declarations as clang
        would complete them there (so ``xs.size`` is the member of ``xs``'s type), with their
        documentation; at ``detail_level`` 1 also the source of its definition, where it is a
        name at namespace scope (the session's own functions and types, ``std::string``)."""
        reply: dict[str, Any] = {"status": "ok", "found": False, "data": {}, "metadata": {}}
        span = word_at(code, cursor_pos)
        if span is None:
            return reply
        start, end = span
        word = code[start:end]
        output = await self._ask(history, code[:end], _complete_at)
        lines: list[str] = []
        for candidate in parse(output):
            if candidate.name != word or not candidate.declaration:
                continue
            if candidate.declaration not in lines:
                lines.append(candidate.declaration)
                if candidate.comment:
                    lines.append(f"    {candidate.comment}")
        if not lines:
            return reply
        text = "\n".join(lines)
        name = qualified_name(code, start, end)
        if detail_level and name is not None:
            source = await self._definitions(history, code[:end], name)
            if source:
                text += "\n\n" + source
        reply.update(found=True, data={"text/plain": text})
        return reply

    async def _definitions(self, history: Sequence[str], before: str, name: str) -> str:
        """The source of the declarations whose qualified name is ``name``, as clang prints it."""
        output = await self._ask(history, before, _print_named(name))
        parts = _PRINTING.split(output)
        sources = []
        for printed, body in zip(parts[1::2], parts[2::2], strict=True):
            if printed != name:
                continue
            lines = body.strip("\n").splitlines()
            if len(lines) > SOURCE_LINES:
                lines = [*lines[:SOURCE_LINES], "    ..."]
            sources.append("\n".join(lines))
        return "\n\n".join(sources)

    async def _ask(self, history: Sequence[str], before: str, action: Action) -> str:
        """clang's stdout for the session's code followed by ``before``, with the arguments
        ``action`` gives for the file and the place of its end; empty if clang could not answer
        in time."""
        includes = tuple(source for source in history if _INCLUDE.match(source))
        body = "".join(f"{source}\n" for source in history if not _INCLUDE.match(source))
        pch = self._precompiled(includes)
        output = await self._clang(includes, body, before, action, pch)
        if pch is not None and action is _complete_at and "COMPLETION:" not in output:
            # Seen about once per kernel, at the first use of a new precompiled header (clang
            # fails on it, and succeeds with it the next time): asked again without it.
            output = await self._clang(includes, body, before, action, None)
        return output

    async def _clang(
        self,
        includes: tuple[str, ...],
        body: str,
        before: str,
        action: Action,
        pch: Path | None,
    ) -> str:
        text = body + before if pch else f"{_header(includes)}\n{body}{before}"
        self._count += 1
        try:  # the kernel's /tmp may be full: the user's files come first
            path = self._folder() / f"cell{self._count}.cpp"
            path.write_text(text, encoding="utf-8", errors="replace")
        except OSError:
            return ""
        last = text.rsplit("\n", 1)[-1]
        line, column = text.count("\n") + 1, len(last.encode("utf-8", "replace")) + 1
        uses = ["-include-pch", str(pch)] if pch else []
        try:
            ran = await _run(
                [CLANG, "-x", "c++", "-fsyntax-only", *FLAGS, *uses]
                + action(path, line, column)
                + [str(path)],
                TIMEOUT,
            )
        finally:
            path.unlink(missing_ok=True)
        if pch is None and self._building is None and includes not in self._unbuildable:
            # After the answer, not with it: on two cores, the two would make it twice as late.
            self._building = asyncio.get_running_loop().create_task(self._build(includes))
        return ran[1] if ran else ""

    def _precompiled(self, includes: tuple[str, ...]) -> Path | None:
        """The precompiled header for ``includes``, if it is ready."""
        if self._pch is not None and self._pch[0] == includes and self._pch[1].is_file():
            return self._pch[1]
        return None

    async def _build(self, includes: tuple[str, ...]) -> None:
        """Precompile the header for ``includes``; on failure (an include clang cannot find, a
        full /tmp), never try these includes again."""
        self._count += 1
        made: list[Path] = []
        try:
            header = self._folder() / f"session{self._count}.h"
            pch = header.with_suffix(".pch")
            made += [header, pch]
            header.write_text(_header(includes), encoding="utf-8")
            # Niced: the cell the user runs meanwhile must not wait for it.
            nice = ["nice", "-n", "10"] if shutil.which("nice") else []
            command = [*nice, CLANG, "-x", "c++-header", *FLAGS, str(header), "-o", str(pch)]
            ran = await _run(command, BUILD_TIMEOUT)
            built = ran is not None and ran[0] == 0 and pch.is_file()
        except OSError:
            built = False
        finally:
            self._building = None
        if not built:
            self._unbuildable.add(includes)
            for path in made:
                path.unlink(missing_ok=True)
            return
        old, self._pch = self._pch, (includes, pch)
        if old is not None:  # the kernel answers one request at a time: none is using it
            for path in (old[1], old[1].with_suffix(".h")):
                path.unlink(missing_ok=True)

    def _folder(self) -> Path:
        """A folder of this kernel's own for clang's files, made at the first request and
        removed with the kernel (a precompiled header takes 20 MB)."""
        if self._dir is None or not self._dir.is_dir():
            self._dir = Path(tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-"))
            weakref.finalize(self, shutil.rmtree, self._dir, ignore_errors=True)
            _sweep(self._dir.parent)
        return self._dir

    def close(self) -> None:
        if self._building is not None:
            self._building.cancel()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _sweep(parent: Path) -> None:
    """Remove the folders of kernels that are gone: kernelpad stops kernels with SIGKILL, which
    leaves them no chance to remove their own."""
    for folder in parent.glob(f"{FOLDER_PREFIX}*"):
        pid = folder.name.removeprefix(FOLDER_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(folder, ignore_errors=True)


def _header(includes: Sequence[str]) -> str:
    """What every file starts with: the prelude clang-repl was given, the session's includes."""
    return prelude("", 0) + "".join(f"{line}\n" for line in includes)


def _complete_at(path: Path, line: int, column: int) -> list[str]:
    return [
        *("-Xclang", "-code-completion-macros", "-Xclang", "-code-completion-brief-comments"),
        *("-Xclang", f"-code-completion-at={path}:{line}:{column}"),
    ]


def _print_named(name: str) -> Action:
    def action(path: Path, line: int, column: int) -> list[str]:
        return ["-Xclang", "-ast-print", "-Xclang", f"-ast-dump-filter={name}"]

    return action


async def _run(command: list[str], timeout: float) -> tuple[int, str] | None:
    """``command``'s return code and stdout, or None if it could not start or took longer than
    ``timeout`` seconds (it is killed then, also when the request is cancelled)."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        return None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    return await proc.wait(), out.decode("utf-8", "replace")
