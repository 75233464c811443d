"""Grade: the notebook as it is now, run from the start in fresh kernels, then scored test by test.

Like ``nbgrader autograde``, the notebook's code cells run in order, each test cell with its
whole source (hidden tests included, from the question as kept on the server: the copy in the
notebook is the candidate's to see, and is not trusted), and each test is scored from its own
outputs (:mod:`.scores`). The kernels are new ones from the pool, sandboxed like any: nothing of
the live kernels is used, touched or visible from them, and the grading cannot be seen from the
live kernels either. They shut down as soon as the grade is known.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kernelpad.kernels.languages import LanguageRegistry
from kernelpad.kernels.pool import KernelPool
from kernelpad.kernels.run_loop import Limits
from kernelpad.kernels.runner import KernelRunner
from kernelpad.logs import about
from kernelpad.sessions.grading.nbgrader_format import TestCell
from kernelpad.sessions.grading.scores import score_of
from kernelpad.sessions.models import Grade, TestResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Step:
    """A code cell to run, and the test it is, if it is one."""

    source: str
    language: str
    test: TestCell | None = None


def plan(cells: Iterable[dict[str, Any]], tests: list[TestCell], language: str) -> list[_Step]:
    """The notebook's code cells in order, each test cell replaced by the kept test of its
    ``grade_id``; a kept test no cell holds any more (it was deleted) is run at the end, as
    nbgrader would restore it."""
    by_id = {test.grade_id: test for test in tests}
    steps: list[_Step] = []
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        metadata = cell.get("metadata") or {}
        nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
        grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
        test = by_id.pop(grade_id, None) if isinstance(grade_id, str) else None
        ours = metadata.get("kernelpad") if isinstance(metadata, dict) else None
        cell_language = ours.get("language") if isinstance(ours, dict) else None
        if test is not None:
            steps.append(_Step(test.source, test.language, test))
        else:
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else str(source)
            steps.append(_Step(text, str(cell_language or language)))
    steps.extend(_Step(test.source, test.language, test) for test in by_id.values())
    return steps


class Grader:
    """Runs gradings, each in kernels of its own."""

    def __init__(self, pool: KernelPool, registry: LanguageRegistry) -> None:
        self.pool = pool
        self.registry = registry

    async def grade(
        self,
        session_id: str,
        cells: list[dict[str, Any]],
        tests: list[TestCell],
        language: str,
        limits: Limits,
        author: str | None,
    ) -> Grade:
        started = time.monotonic()
        grade = Grade(uuid.uuid4().hex, session_id, time.time(), author)
        runners: dict[str, KernelRunner] = {}
        try:
            for step in plan(cells, tests, language):
                if not step.source.strip() and step.test is None:
                    continue
                runner = runners.get(step.language)
                if runner is None:
                    installed = self.registry.get(step.language)
                    runner = KernelRunner(self.pool, installed, 1, label=f"{session_id} grading")
                    runners[step.language] = runner
                report = await runner.run(step.source, limits)
                if step.test is not None:
                    result = report.result
                    scored = score_of(result.status, result.outputs, step.test.points)
                    grade.results.append(
                        TestResult(step.test.grade_id, step.test.points, scored.score, scored.error)
                    )
        finally:
            for runner in runners.values():
                await runner.close()
        grade.duration = time.monotonic() - started
        log.info(
            "session %s: graded, %g of %g points in %.1f s",
            session_id,
            grade.score,
            grade.max_score,
            grade.duration,
            extra=about(session_id),
        )
        return grade
