"""A session's tests: kept when the session is made from a question, scored as the candidate runs
the visible ones, and graded whole (hidden ones too) when the host asks.

What the candidate may see goes to everyone (a visible test's pass or fail, on the cell that
ran it; the score, if the host shares it); what only the host may see (each test of a grading,
its error) goes to the host's connections only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from kernelpad.errors import InvalidValue
from kernelpad.kernels.run_loop import Limits
from kernelpad.sessions.events import GradeFinished, ScoreShared, TestScore
from kernelpad.sessions.grading.grader import Grader
from kernelpad.sessions.grading.nbgrader_format import Release, TestCell
from kernelpad.sessions.grading.scores import score_of
from kernelpad.sessions.models import Execution, Grade, Session, TestResult
from kernelpad.sessions.room.registry import Rooms
from kernelpad.sessions.storage.store import SessionStore

log = logging.getLogger(__name__)


class Grading:
    """Tests and gradings of every session."""

    def __init__(
        self,
        store: SessionStore,
        rooms: Rooms,
        grader: Grader,
        notebook: Callable[[Session], Awaitable[dict[str, Any]]],
        limits: Callable[[Session], Limits],
    ) -> None:
        self.store = store
        self.rooms = rooms
        self.grader = grader
        self.notebook = notebook  # the session's notebook now, as an .ipynb dict
        self.limits = limits  # a run's limits in the session
        self._tests: dict[str, list[TestCell]] = {}  # by session, once read
        self._locks: dict[str, asyncio.Lock] = {}

    async def keep(self, session_id: str, release: Release) -> None:
        """Keep a new session's tests and reference solutions (never in its notebook)."""
        await self.store.save_tests(
            session_id,
            {
                "tests": [asdict(test) for test in release.tests],
                "solutions": release.solutions,
            },
        )
        self._tests[session_id] = list(release.tests)

    async def tests(self, session_id: str) -> list[TestCell]:
        """The session's tests (none for a session made without a question with tests)."""
        if session_id not in self._tests:
            kept = await self.store.load_tests(session_id)
            self._tests[session_id] = [TestCell(**test) for test in (kept or {}).get("tests", [])]
        return self._tests[session_id]

    def forget(self, session_id: str) -> None:
        self._tests.pop(session_id, None)
        lock = self._locks.get(session_id)
        if lock is not None and not lock.locked():
            del self._locks[session_id]

    async def visible_result(
        self, session_id: str, grade_id: str | None, execution: Execution
    ) -> TestScore | None:
        """How a run of a test cell (as the candidate has it, without the hidden tests) went:
        for everyone, on the cell. None for a cell that is not one of the question's tests."""
        if grade_id is None:
            return None
        test = next((t for t in await self.tests(session_id) if t.grade_id == grade_id), None)
        if test is None:
            return None
        scored = score_of(execution.status, execution.outputs, test.points)
        # Passed as a grading's test passes (TestResult's rule); the error is the outputs'.
        result = TestResult(grade_id, test.points, scored.score, scored.error)
        return TestScore(
            grade_id=grade_id, points=test.points, score=scored.score, passed=result.passed
        )

    async def grade(self, session: Session, author: str | None) -> Grade:
        """Grade the session's notebook as it is now; the host's pages are told each test, the
        candidates' the score if the host shares it."""
        tests = await self.tests(session.id)
        if not tests:
            raise InvalidValue(
                f"Session {session.id} has no tests to grade.",
                public="This interview's question has no tests to grade.",
            )
        lock = self._locks.setdefault(session.id, asyncio.Lock())
        async with lock:  # one grading at a time: each takes kernels of its own
            notebook = await self.notebook(session)
            grade = await self.grader.grade(
                session.id,
                notebook["cells"],
                tests,
                session.language,
                self.limits(session),
                author,
            )
            await self.store.add_grade(grade)
        room = self.rooms.loaded(session.id)
        if room is not None:
            room.broadcast(GradeFinished.of(grade), roles=("host",))
            if session.share_score:
                shared = ScoreShared(score=grade.score, max_score=grade.max_score)
                room.broadcast(shared, roles=("candidate",))
        return grade
