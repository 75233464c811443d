"""A session's tests (as the grader runs them) and its gradings, in their own tables: the tests
hold what the candidate never reads (hidden tests, reference solutions), and nothing that
reads a session for anyone else reads them."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from kernelpad.sessions.models import Grade, TestResult
from kernelpad.sessions.storage.kernels import KernelRecords


class GradeRecords(KernelRecords):
    """Tests and grades of sessions (a part of :class:`~.store.SessionStore`)."""

    async def save_tests(self, session_id: str, tests: dict[str, Any]) -> None:
        """The question's tests and solutions, as JSON (kept once, when the session is made)."""
        await self._call(
            self._execute,
            "INSERT INTO session_tests (session_id, data) VALUES (?, ?)",
            (session_id, json.dumps(tests)),
        )

    async def load_tests(self, session_id: str) -> dict[str, Any] | None:
        return await self._call(self._load_tests, session_id)

    def _load_tests(self, session_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT data FROM session_tests WHERE session_id = ?", (session_id,)
        ).fetchone()
        return json.loads(row["data"]) if row else None

    async def add_grade(self, grade: Grade) -> None:
        await self._call(
            self._execute,
            "INSERT INTO grades (id, session_id, at, author, results, duration)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                grade.id,
                grade.session_id,
                grade.at,
                grade.author,
                json.dumps([asdict(result) for result in grade.results]),
                grade.duration,
            ),
        )

    async def grades(self, session_id: str) -> list[Grade]:
        """Every grading of the session, oldest first."""
        return await self._call(self._grades, session_id)

    def _grades(self, session_id: str) -> list[Grade]:
        rows = self.conn.execute(
            "SELECT id, session_id, at, author, results, duration FROM grades"
            " WHERE session_id = ? ORDER BY at, id",
            (session_id,),
        ).fetchall()
        return [
            Grade(
                id=row["id"],
                session_id=row["session_id"],
                at=row["at"],
                author=row["author"],
                results=[TestResult(**result) for result in json.loads(row["results"])],
                duration=row["duration"],
            )
            for row in rows
        ]
