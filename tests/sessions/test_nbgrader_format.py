"""nbgrader's format, read as nbgrader reads it: the metadata it accepts and refuses, and what
the candidate gets of answers and tests (solutions and hidden tests gone)."""

from __future__ import annotations

from typing import Any

import pytest

from kernelpad.sessions.grading.nbgrader_format import (
    CODE_STUBS,
    QuestionFormatError,
    clear_hidden_tests,
    clear_solutions,
    marks_of,
    release,
)


def cell(source: str, cell_type: str = "code", **nbgrader: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    if nbgrader:
        metadata["nbgrader"] = {
            "schema_version": 3,
            "grade": False,
            "solution": False,
            "locked": False,
            **nbgrader,
        }
    return {"cell_type": cell_type, "source": source, "metadata": metadata}


ANSWER = "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION\n"
TESTS = (
    "assert add(1, 2) == 3\n### BEGIN HIDDEN TESTS\nassert add(-1, 1) == 0\n### END HIDDEN TESTS"
)


def question() -> list[dict[str, Any]]:
    return [
        cell("# Add", "markdown"),
        cell(ANSWER, solution=True, grade_id="answer"),
        cell(TESTS, grade=True, grade_id="tests", points=2, locked=True),
        cell("Explain.", "markdown", grade=True, solution=True, grade_id="why", points=1),
    ]


def test_the_candidate_gets_no_solution_and_no_hidden_test() -> None:
    released = release(question(), "python")
    assert released is not None
    sources = [c["source"] for c in released.cells]
    assert sources[0] == "# Add"
    # The stub indented as the BEGIN line, as nbgrader writes it.
    assert sources[1] == ("def add(a, b):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n")
    assert sources[2] == "assert add(1, 2) == 3"
    assert sources[3] == "YOUR ANSWER HERE"
    assert "return a + b" not in str(released.cells) and "add(-1, 1)" not in str(released.cells)
    # What only grading sees.
    (test,) = released.tests
    assert (test.grade_id, test.points, test.source, test.language) == (
        "tests",
        2.0,
        TESTS,
        "python",
    )
    assert released.points == 2.0
    assert released.solutions["answer"] == ANSWER
    # Tests are locked whatever their flag says; answers never are.
    assert released.cells[2]["metadata"]["editable"] is False
    assert "editable" not in released.cells[1]["metadata"]


def test_a_notebook_without_nbgrader_metadata_is_no_question_with_tests() -> None:
    assert release([cell("print(1)"), cell("# Hi", "markdown")], "python") is None


def test_nbgraders_line_rules() -> None:
    # No region: the whole answer is the stub.
    assert clear_solutions("x = 1", "# stub") == "# stub"
    # Delimiters anywhere in a line; an END outside a region is dropped too.
    assert clear_solutions("a\n// BEGIN SOLUTION\nb\n// END SOLUTION\nc", "s") == "a\ns\nc"
    assert clear_hidden_tests("a\n# END HIDDEN TESTS stray\nb") == "a\nb"
    with pytest.raises(QuestionFormatError, match="begins inside another"):
        clear_solutions("BEGIN SOLUTION\nBEGIN SOLUTION\nEND SOLUTION", "s")
    with pytest.raises(QuestionFormatError, match="no end"):
        clear_hidden_tests("BEGIN HIDDEN TESTS\nx")
    assert set(CODE_STUBS) == {"python", "java", "javascript", "cpp"}


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (cell("x", grade=True, grade_id="t"), "no points"),
        (cell("x", solution=True), "no grade_id"),
        (cell("x", solution=True, grade_id="a b"), "may hold only"),
        (cell("x", grade=True, grade_id="t", points="1"), "must be a number"),
        (cell("x", grade=True, grade_id="t", points=-1), "must be a number"),
        (cell("x", grade=True, grade_id="t", points=1, extra=1), "unknown"),
        (cell("x", grade_id="t", schema_version=1), "old version"),
        (cell("x", task=True, grade_id="t", points=1), "not Markdown"),
        (cell("x", "markdown", grade=True, grade_id="t", points=1), "both a grade"),
        (cell("x", grade="yes", grade_id="t", points=1), "true or false"),
    ],
)
def test_metadata_nbgrader_refuses_is_refused(bad: dict[str, Any], why: str) -> None:
    with pytest.raises(QuestionFormatError, match=why):
        marks_of(bad)


def test_a_question_nbgrader_would_refuse_is_refused() -> None:
    twice = [cell("a", solution=True, grade_id="x"), cell("b", solution=True, grade_id="x")]
    with pytest.raises(QuestionFormatError, match="Two cells"):
        release(twice, "python")
    with pytest.raises(QuestionFormatError, match="not an answer cell"):
        release([cell("BEGIN SOLUTION\nEND SOLUTION", grade=True, grade_id="t", points=1)], "py")
    with pytest.raises(QuestionFormatError, match="not a test cell"):
        release([cell("BEGIN HIDDEN TESTS\nEND HIDDEN TESTS", solution=True, grade_id="a")], "py")
    with pytest.raises(QuestionFormatError, match="neither an answer"):
        release(
            [cell("# BEGIN SOLUTION\n# END SOLUTION"), cell("x", solution=True, grade_id="a")], "p"
        )
