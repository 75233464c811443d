"""A test cell's score from what its run produced, by nbgrader's rule (``utils.determine_grade``),
so that kernelpad's Grade and ``nbgrader autograde`` agree on a notebook.

The outputs are read in order and the first that decides, decides: an error, or anything on
stderr, scores nothing; a result (the cell's last expression) that is a number between 0 and
the cell's points is partial credit; any other result, or none, is full points. A run that did
not end well (timed out, its kernel died) scores nothing whatever it printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TestScore:
    score: float
    #: Why it lost points, for the host: the error's name and message, or what went wrong.
    error: str | None = None


def score_of(status: str, outputs: list[dict[str, Any]], points: float) -> TestScore:
    """The score of a test cell worth ``points`` whose run ended with ``status``."""
    for output in outputs:
        kind = output.get("output_type")
        if kind == "error":
            return TestScore(0.0, f"{output.get('ename', 'Error')}: {output.get('evalue', '')}")
        if kind == "stream" and output.get("name") == "stderr":
            return TestScore(0.0, "It wrote to stderr: " + _text(output.get("text"))[:500])
        if kind == "execute_result":
            partial = _number(output.get("data", {}).get("text/plain"))
            if partial is not None and 0 <= partial <= points:
                return TestScore(partial, None if partial == points else "Partial credit")
            if partial is not None and partial > points:
                # nbgrader stops grading the notebook here; it is no credit in kernelpad.
                return TestScore(0.0, f"Its result {partial:g} is more than its {points:g} points")
            break
    if status != "ok":
        return TestScore(0.0, _STATUS.get(status, f"It ended with {status}"))
    return TestScore(points)


_STATUS = {
    "timeout": "It ran out of time",
    "kernel_died": "The kernel died",
    "output_limit": "It printed too much",
    "input_timeout": "It waited for input",
    "error": "It raised an error",
}


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _number(value: Any) -> float | None:
    try:
        return float(_text(value))
    except ValueError:
        return None
