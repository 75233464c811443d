"""Questions with tests, in nbgrader's format, read as nbgrader reads them.

A cell's ``metadata.nbgrader`` (schema version 3) marks it: an answer (``solution``), a test
(``grade``, with ``points``), locked (read-only for the candidate), or a task. What the
candidate gets is what ``nbgrader generate_assignment`` releases: each ``BEGIN SOLUTION`` /
``END SOLUTION`` region of an answer replaced by the language's stub, each ``BEGIN HIDDEN TESTS``
/ ``END HIDDEN TESTS`` region of a test removed. Like nbgrader, the delimiters are found
anywhere in a line (the comment marker before them is the author's), an ``END`` line outside a
region is dropped too, and a region where it may not be is an error, not a guess: a question
that nbgrader would refuse is refused here, with nbgrader's reason.

Everything here is pure: notebooks in, notebooks and tests out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 3
GRADE_ID = re.compile(r"^[a-zA-Z0-9_\-]*$")
_FLAGS = ("grade", "solution", "locked", "task")
_KEYS = {"schema_version", "grade_id", "points", "checksum", "cell_type", *_FLAGS}
_REQUIRED = ("schema_version", "grade", "locked", "solution")

BEGIN_SOLUTION, END_SOLUTION = "BEGIN SOLUTION", "END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"

#: What replaces a solution, by kernelpad's language id: nbgrader's own where it has one
#: (``ClearSolutions.code_stub``), else a stub that fails when run, in the language's comment.
CODE_STUBS = {
    "python": "# YOUR CODE HERE\nraise NotImplementedError()",
    "java": "// YOUR CODE HERE",
    "javascript": '// YOUR CODE HERE\nthrow new Error("Not implemented");',
    "cpp": "// YOUR CODE HERE",
}
TEXT_STUB = "YOUR ANSWER HERE"


class QuestionFormatError(ValueError):
    """A question notebook nbgrader would refuse; the message says which cell and why."""


@dataclass(frozen=True)
class Marks:
    """A cell's nbgrader metadata, checked."""

    grade: bool = False
    solution: bool = False
    locked: bool = False
    task: bool = False
    grade_id: str = ""
    points: float = 0.0

    @property
    def is_locked(self) -> bool:
        """As nbgrader's ``utils.is_locked``: an answer never is, a test always is."""
        if self.solution:
            return False
        return self.grade or self.locked


@dataclass(frozen=True)
class TestCell:
    """A test as the grader runs it: its whole source, hidden tests included."""

    grade_id: str
    points: float
    source: str
    language: str


@dataclass
class Release:
    """A question as the candidate gets it (``cells``), and what only the host's grading
    sees: the tests whole, and the answers' reference solutions."""

    cells: list[dict[str, Any]]
    tests: list[TestCell] = field(default_factory=list)
    solutions: dict[str, str] = field(default_factory=dict)

    @property
    def points(self) -> float:
        return sum(test.points for test in self.tests)


def marks_of(cell: dict[str, Any]) -> Marks | None:
    """The cell's nbgrader marks, or None if it has none; raises
    :class:`QuestionFormatError` for metadata nbgrader's schema v3 refuses."""
    metadata = cell.get("metadata")
    meta = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    if meta is None:
        return None
    source = _source(cell)
    where = f"cell {source[:40]!r}"
    if not isinstance(meta, dict):
        raise QuestionFormatError(f"The nbgrader metadata of {where} is not an object.")
    version = meta.get("schema_version", 0)
    if not isinstance(version, int) or version < SCHEMA_VERSION:
        raise QuestionFormatError(
            f"The nbgrader metadata of {where} is of an old version ({version}): run"
            " `nbgrader update` on the notebook."
        )
    if version > SCHEMA_VERSION:
        raise QuestionFormatError(f"The nbgrader metadata of {where} is of version {version}.")
    extra = set(meta) - _KEYS
    if extra:
        raise QuestionFormatError(f"The nbgrader metadata of {where} has unknown {sorted(extra)}.")
    missing = [key for key in _REQUIRED if key not in meta]
    if missing:
        raise QuestionFormatError(f"The nbgrader metadata of {where} lacks {missing}.")
    flags = {key: meta.get(key, False) for key in _FLAGS}
    if not all(isinstance(value, bool) for value in flags.values()):
        raise QuestionFormatError(f"The nbgrader flags of {where} must be true or false.")
    grade_id = meta.get("grade_id", "")
    points = meta.get("points", 0)
    if not isinstance(grade_id, str) or not GRADE_ID.match(grade_id):
        raise QuestionFormatError(f"The grade_id of {where} may hold only A-Z, a-z, 0-9, _ and -.")
    if isinstance(points, bool) or not isinstance(points, int | float) or points < 0:
        raise QuestionFormatError(f"The points of {where} must be a number, 0 or more.")
    marks = Marks(grade_id=grade_id, points=float(points), **flags)
    if (marks.grade or marks.solution or marks.locked) and not grade_id:
        raise QuestionFormatError(f"The nbgrader {where} has no grade_id.")
    if marks.grade and "points" not in meta:
        raise QuestionFormatError(f"The nbgrader cell {grade_id!r} has no points.")
    markdown = cell.get("cell_type") == "markdown"
    if marks.task and not markdown:
        raise QuestionFormatError(f"The task cell {grade_id!r} is not Markdown.")
    if not marks.task and markdown and marks.grade != marks.solution:
        raise QuestionFormatError(
            f"The Markdown cell {grade_id!r} must be both a grade and a solution cell, or neither."
        )
    return marks


def _lines_without(source: str, begin: str, end: str, stub: list[str] | None, what: str) -> str:
    """``source`` with each ``begin``..``end`` region replaced by ``stub`` (indented as the
    ``begin`` line) or removed, as nbgrader's line loop does."""
    kept: list[str] = []
    in_region = False
    for line in source.split("\n"):
        if begin in line:
            if in_region:
                raise QuestionFormatError(f"A {what} region begins inside another.")
            in_region = True
            if stub is not None:
                indent = re.match(r"\s*", line)
                kept.extend((indent.group(0) if indent else "") + part for part in stub)
        elif end in line:
            in_region = False
        elif not in_region:
            kept.append(line)
    if in_region:
        raise QuestionFormatError(f"A {what} region has no end ({end}).")
    return "\n".join(kept)


def clear_solutions(source: str, stub: str) -> str:
    """An answer as released: each solution region replaced by ``stub``; an answer with no
    region is the stub whole."""
    if BEGIN_SOLUTION not in source:
        return stub
    return _lines_without(source, BEGIN_SOLUTION, END_SOLUTION, stub.split("\n"), "solution")


def clear_hidden_tests(source: str) -> str:
    """A test as released: its hidden regions removed, delimiter lines included."""
    return _lines_without(source, BEGIN_HIDDEN, END_HIDDEN, None, "hidden tests")


def release(cells: list[dict[str, Any]], language: str) -> Release | None:
    """The candidate's cells of a question (plain nbformat cell dicts, in the pad's shape:
    a code cell's language in ``metadata.kernelpad.language``), or None if no cell has
    nbgrader metadata (an ordinary notebook, released as it is)."""
    marked = [(cell, marks_of(cell)) for cell in cells]
    if all(marks is None for _, marks in marked):
        return None
    seen: set[str] = set()
    out = Release(cells=[])
    for cell, marks in marked:
        cell = {**cell, "metadata": dict(cell.get("metadata") or {})}
        source = _source(cell)
        solution_region = BEGIN_SOLUTION in source or END_SOLUTION in source
        hidden_region = BEGIN_HIDDEN in source or END_HIDDEN in source
        if marks is None or not (marks.grade or marks.solution or marks.locked):
            if solution_region or hidden_region:
                raise QuestionFormatError(
                    f"A solution or hidden tests region is in a cell that is neither an answer"
                    f" nor a test: {source[:40]!r}."
                )
            out.cells.append(cell)
            continue
        if marks.grade_id in seen:
            raise QuestionFormatError(f"Two cells have the grade_id {marks.grade_id!r}.")
        seen.add(marks.grade_id)
        if solution_region and not marks.solution:
            raise QuestionFormatError(
                f"The cell {marks.grade_id!r} has a solution region but is not an answer cell."
            )
        if hidden_region and not (marks.grade and not marks.solution):
            raise QuestionFormatError(
                f"The cell {marks.grade_id!r} has a hidden tests region but is not a test cell."
            )
        cell_language = _cell_language(cell, language)
        if marks.solution:
            code = cell.get("cell_type") == "code"
            stub = CODE_STUBS.get(cell_language, "") if code else TEXT_STUB
            out.solutions[marks.grade_id] = source
            cell["source"] = clear_solutions(source, stub)
        elif marks.grade:
            if cell.get("cell_type") == "code":
                out.tests.append(TestCell(marks.grade_id, marks.points, source, cell_language))
            cell["source"] = clear_hidden_tests(source)
        nbgrader = dict(cell["metadata"]["nbgrader"])
        nbgrader.pop("checksum", None)
        cell["metadata"]["nbgrader"] = nbgrader
        if marks.is_locked:
            # Jupyter's own keys, as nbgrader's LockCells writes them.
            cell["metadata"].update(editable=False, deletable=False)
        out.cells.append(cell)
    return out


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _cell_language(cell: dict[str, Any], default: str) -> str:
    ours = cell.get("metadata", {}).get("kernelpad")
    language = ours.get("language") if isinstance(ours, dict) else None
    return language if isinstance(language, str) and language else default
