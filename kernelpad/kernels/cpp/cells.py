"""Pure logic of the C++ kernel: turning a cell into clang-repl input, telling complete cells
from incomplete ones, and reading clang's diagnostics.

clang-repl reads one line as one input unless the line ends in a backslash, so a cell is sent as
one input with every line but the last continued. A cell whose last line is an expression with no
semicolon (``x * 2``) has its value shown, as a notebook shows the value of the last expression:
clang-repl 19 cannot print values itself ("Not implement yet."), so the expression is wrapped in
a call of the prelude's ``__kp::show``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Diagnostics clang prints for the cells it is given (their file is "input_line_N").
_DIAGNOSTIC = re.compile(r"^input_line_\d+:\d+:\d+: (error|warning|note): (.*)$")
# clang-repl's own complaints (parse failures, the JIT's link errors), as opposed to a
# program's output that happens to start with "error:".
_REPL_ERROR = re.compile(
    r"^error: (Parsing failed\.|Duplicate definition of symbol.*|Failed to materialize.*|"
    r"Symbols not found.*)$"
)
# Statements that a last line without a semicolon still is not a value of.
_NOT_A_VALUE = re.compile(
    r"^(#|//|/\*|\*|template\b|class\b|struct\b|union\b|enum\b|namespace\b|using\b|typedef\b|"
    r"if\b|else\b|for\b|while\b|do\b|switch\b|case\b|default\b|return\b|public:|private:|"
    r"protected:|%)"
)


@dataclass(frozen=True)
class Prepared:
    """What to send clang-repl for a cell: its inputs (each one clang-repl input, one
    "partial translation unit"), and whether the last one shows a value."""

    inputs: tuple[str, ...]
    shows_value: bool


def strip_comments_and_strings(code: str) -> str:
    """``code`` with comments, string and character literals blanked (for bracket counting)."""
    out: list[str] = []
    i, n = 0, len(code)
    while i < n:
        two = code[i : i + 2]
        if two == "//":
            end = code.find("\n", i)
            i = n if end < 0 else end
        elif two == "/*":
            end = code.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif code[i] in "\"'":
            quote, i = code[i], i + 1
            while i < n and code[i] != quote:
                i += 2 if code[i] == "\\" else 1
            i += 1
            out.append('""')
        else:
            out.append(code[i])
            i += 1
    return "".join(out)


def is_complete(code: str) -> str:
    """``complete``, ``incomplete`` (open brackets, a continued line) or ``invalid``."""
    bare = strip_comments_and_strings(code)
    depth = 0
    for ch in bare:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth < 0:
                return "invalid"
    if depth > 0 or code.rstrip("\n").endswith("\\"):
        return "incomplete"
    return "complete"


def strip_line_comment(line: str) -> str:
    """``line`` without a trailing ``//`` comment (outside string and character literals).

    clang-repl joins continued lines into one, where a ``//`` comment would swallow the rest of
    the cell.
    """
    i, n = 0, len(line)
    while i < n:
        if line.startswith("//", i):
            return line[:i].rstrip()
        if line[i] in "\"'":
            quote, i = line[i], i + 1
            while i < n and line[i] != quote:
                i += 2 if line[i] == "\\" else 1
        i += 1
    return line


def prepare(code: str) -> Prepared:
    """The clang-repl inputs for a cell, wrapping a trailing expression to show its value."""
    lines = [strip_line_comment(line).rstrip() for line in code.strip("\n").split("\n")]
    lines = [line for line in lines if line.strip()]
    while lines and not lines[-1].strip():
        lines.pop()
    shows_value = False
    if lines:
        last = lines[-1].strip()
        before = strip_comments_and_strings("\n".join(lines[:-1]))
        balanced = before.count("{") == before.count("}") and before.count("(") == before.count(")")
        if (
            last
            and balanced
            and (not last.endswith((";", "}", "{", ":", ",")) or _braced_value(last))
            and not _NOT_A_VALUE.match(last)
        ):
            # Statements before the expression on the same line stay as they are.
            cut = _last_top_level_semicolon(last)
            head, expr = last[: cut + 1], last[cut + 1 :].strip()
            # The comma with a marker captures the value, and is the built-in comma (showing
            # nothing) when the expression is void.
            lines[-1] = f"{head} __kp::show((({expr}), __kp::Marker{{}}));".lstrip()
            shows_value = True
    return Prepared(_inputs(lines), shows_value)


def _braced_value(line: str) -> bool:
    """Whether ``line`` ends in a braced initialiser (``std::vector<int>{1, 2}``), not a block:
    the brace that closes it opens on this line, right after a type's name."""
    if not line.endswith("}"):
        return False
    bare = strip_comments_and_strings(line)
    depth = 0
    for i in range(len(bare) - 1, -1, -1):
        depth += {"}": 1, "{": -1}.get(bare[i], 0)
        if depth == 0:
            return i > 0 and (bare[i - 1].isalnum() or bare[i - 1] in "_>")
    return False


def _last_top_level_semicolon(line: str) -> int:
    """Index of the last ``;`` outside brackets and literals in ``line``, or -1."""
    bare = strip_comments_and_strings(line)
    if len(bare) != len(line):  # literals were blanked: find it in the original instead
        bare = line
    depth, found = 0, -1
    for i, ch in enumerate(bare):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == ";" and depth == 0:
            found = i
    return found


def declarations(source: str) -> int:
    """How many top-level statements or declarations ``source`` ends (``;`` or ``}`` outside
    brackets): a failed input with more than one may have left the first ones compiled."""
    depth = count = 0
    for ch in strip_comments_and_strings(source):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            count += ch == "}" and depth == 0
        elif ch == ";" and depth == 0:
            count += 1
    return count


def is_directive(source: str) -> bool:
    return source.lstrip().startswith("#")


def _inputs(lines: list[str]) -> tuple[str, ...]:
    """Lines as clang-repl inputs: runs of ordinary lines joined by continuations, each
    preprocessor directive alone (a directive cannot share a logical line with code).

    ``#include`` lines go first, wherever they stand: clang-repl cannot undo an include (an
    undone include breaks later ones), so the code after them is what a failed cell takes back.
    """
    includes = [line for line in lines if line.lstrip().startswith("#include")]
    groups: list[list[str]] = [[line] for line in includes]
    for line in (line for line in lines if not line.lstrip().startswith("#include")):
        directive = line.lstrip().startswith("#")
        if directive or not groups or groups[-1][0].lstrip().startswith("#"):
            groups.append([line])
        else:
            groups[-1].append(line)
    return tuple(" \\\n".join(group) for group in groups if any(part.strip() for part in group))


@dataclass(frozen=True)
class Diagnostics:
    """clang's complaints about a cell, if any."""

    text: str
    first_error: str | None

    @property
    def failed(self) -> bool:
        return self.first_error is not None


def diagnostics(stderr: str) -> Diagnostics:
    """Split what clang-repl said about a cell out of the cell's stderr."""
    first_error = None
    for line in stderr.splitlines():
        match = _DIAGNOSTIC.match(line)
        if match and match.group(1) == "error" and first_error is None:
            first_error = match.group(2)
        elif first_error is None and (repl := _REPL_ERROR.match(line.strip())):
            first_error = repl.group(1).rstrip(".")
    return Diagnostics(stderr, first_error)
