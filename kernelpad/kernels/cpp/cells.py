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


# Competitive-programming speed-ups that would point std::cin at clang-repl's own stdin (the
# code). Input is line-buffered through the kernel anyway, so they are dropped.
_UNSYNC = re.compile(r"(std::)?(ios(_base)?::)?sync_with_stdio\s*\(\s*(false|0)\s*\)")
_CONDITIONAL = re.compile(r"^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b")


_CONTINUES = re.compile(r"^(else\b|catch\b|while\b|[;,).?:=+\-*/%&|^<>\]])")


class UnsupportedCell(ValueError):
    """A cell clang-repl cannot take, with the reason for the user."""


@dataclass(frozen=True)
class Prepared:
    """What to send clang-repl for a cell: its inputs (each one clang-repl input, one
    "partial translation unit"), the cell's line number of each of their lines, and whether
    the last one shows a value."""

    inputs: tuple[str, ...]
    shows_value: bool
    line_numbers: tuple[tuple[int, ...], ...] = ()


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
    lines = [
        (number, _UNSYNC.sub("true", strip_line_comment(text).rstrip()))
        for number, text in enumerate(code.split("\n"), 1)
    ]
    lines = [(number, text) for number, text in lines if text.strip()]
    for _, text in lines:
        if _CONDITIONAL.match(text):
            raise UnsupportedCell(
                f"'{text.strip()}': conditional preprocessor blocks (#if, #ifdef, #ifndef,"
                " #else, #endif) cannot run here, because clang-repl takes one line at a time;"
                " remove them and keep the code you want"
            )
    shows_value = False
    if lines:
        number, last = lines[-1][0], lines[-1][1].strip()
        before = strip_comments_and_strings("\n".join(text for _, text in lines[:-1]))
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
            lines[-1] = (number, f"{head} {SHOW_OPEN}{expr}{SHOW_CLOSE}".lstrip())
            shows_value = True
    groups = _groups(lines)
    inputs = tuple(
        "\n".join(text for _, text in group)
        if group[0][1].lstrip().startswith("#")
        else " \\\n".join(text for _, text in group)
        for group in groups
    )
    return Prepared(inputs, shows_value, tuple(tuple(n for n, _ in group) for group in groups))


SHOW_OPEN = "__kp::show((("
SHOW_CLOSE = "), __kp::Marker{}));"


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


def top_level_names(source: str) -> set[str]:
    """Identifiers that appear in ``source`` outside braces (what it declares or uses at the
    top level; function bodies are left out)."""
    bare, depth, kept = strip_comments_and_strings(source), 0, []
    for ch in bare:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0:
            kept.append(ch)
    return set(re.findall(r"[A-Za-z_]\w*", "".join(kept)))


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


def _groups(lines: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    """Numbered lines grouped into clang-repl inputs: runs of code lines (sent continued, as one
    line), each preprocessor directive alone (a directive cannot share a line with code) with
    the lines it continues itself (a multi-line ``#define``).

    ``#include`` lines go first, wherever they stand: clang-repl cannot undo an include (an
    undone include breaks later ones), so the code after them is what a failed cell takes back.
    """

    def directive(item: tuple[int, str]) -> bool:
        return item[1].lstrip().startswith("#")

    def include(item: tuple[int, str]) -> bool:
        return item[1].lstrip().startswith("#include")

    groups: list[list[tuple[int, str]]] = [[line] for line in lines if include(line)]
    depth, ended = 0, True  # bracket depth of the code so far; whether a statement just ended
    rest = [line for line in lines if not include(line)]
    for index, line in enumerate(rest):
        in_directive = bool(groups) and directive(groups[-1][0])
        if in_directive and groups[-1][-1][1].endswith("\\"):
            groups[-1].append(line)
            continue
        if directive(line) or not groups or in_directive or (ended and depth == 0):
            groups.append([line])
        else:
            groups[-1].append(line)
        if directive(line):
            ended = True
            continue
        bare = strip_comments_and_strings(line[1]).rstrip()
        depth += sum(bare.count(c) for c in "([{") - sum(bare.count(c) for c in ")]}")
        following = rest[index + 1][1].lstrip() if index + 1 < len(rest) else ""
        # One top-level declaration or statement per input, so that each can be undone or
        # replaced on its own; an "else", a "catch", a "while" after "do" and the like belong
        # to what comes before them.
        ended = bool(bare) and bare[-1] in ";}" and not _CONTINUES.match(following)
    return groups


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


_LOCATED = re.compile(r"^input_line_(\d+):(\d+):(\d+): (error|warning|note): (.*)$")
_EXCERPT = re.compile(r"^\s*\d*\s*\|")
_SHOWN = re.compile(r"__kp::show\(\(\((.*?)\), __kp::Marker\{\}\)\);?")


def unwrap(text: str) -> str:
    """``text`` with kernelpad's value-showing wrapper taken off again."""
    return _SHOWN.sub(r"\1", text)


def readable(stderr: str, source: str, numbers: tuple[int, ...]) -> list[str]:
    """clang's diagnostics for one input, pointing at the cell's own lines.

    clang sees a continued input as one long line: a column there is mapped back to the cell's
    line and column, and the excerpts clang quotes (of that long line) are replaced by the
    cell's line, with a caret. Diagnostics about earlier inputs keep their message only.
    """
    if source.lstrip().startswith("#"):
        parts = source.split("\n")
        starts = [0] * len(parts)
    else:
        parts = source.split(" \\\n")
        starts, offset = [], 0
        for part in parts:
            starts.append(offset)
            offset += len(part) + 1
    lines = stderr.splitlines()
    errors = [m for m in map(_LOCATED.match, lines) if m and m.group(4) == "error"]
    current = errors[0].group(1) if errors else None  # clang's number for this input
    out: list[str] = []
    for line in lines:
        if line.startswith("In file included from <<< inputs >>>") or _REPL_ERROR.match(line):
            continue
        if _EXCERPT.match(line):
            continue
        located = _LOCATED.match(line)
        if not located:
            out.append(unwrap(line))
            continue
        kind, message = located.group(4), unwrap(located.group(5))
        if located.group(1) != current:
            out.append(f"{kind}: {message}")
            continue
        row, column = int(located.group(2)), int(located.group(3))
        if len(parts) > 1 and row == 1:
            index = max(i for i, start in enumerate(starts) if start <= column - 1)
            column -= starts[index]
        else:
            index = min(row - 1, len(parts) - 1)
        number = numbers[index] if index < len(numbers) else index + 1
        out.append(f"line {number}, column {column}: {kind}: {message}")
        out.append(f"    {unwrap(parts[index])}")
        out.append(f"    {' ' * max(column - 1, 0)}^")
    return out
