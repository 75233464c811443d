"""``/api/v1/sessions/{id}/grades``: the host grades the notebook (``POST``: its code run from the
start in fresh kernels, then every test, hidden ones too) and reads every grading (``GET``).
The JSON socket's ``grade`` does the same; see :mod:`kernelpad.sessions.grading`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from kernelpad.sessions.events import TestScore
from kernelpad.sessions.models import Grade
from kernelpad.web.base import ApiHandler, error_responses, operation
from kernelpad.web.schemas import utc

TAGS = ("grading",)


class GradeOut(BaseModel):
    """A grading: each test's points and score, and why a test lost points."""

    id: str
    at: datetime
    author: str | None = Field(description="The client_id of who asked; null over the API.")
    score: float
    max_score: float
    duration: float = Field(description="Seconds it took, kernels' start included.")
    results: list[TestScore]

    @classmethod
    def of(cls, grade: Grade) -> GradeOut:
        return cls(
            id=grade.id,
            at=utc(grade.at) or datetime.now(),
            author=grade.author,
            score=grade.score,
            max_score=grade.max_score,
            duration=round(grade.duration, 3),
            results=[TestScore.of(result) for result in grade.results],
        )


class GradesOut(BaseModel):
    grades: list[GradeOut]


class GradesHandler(ApiHandler):
    @operation(
        "Grade the notebook as it is now: its code cells in order in fresh kernels, every test"
        " with its hidden tests (host only)",
        responses={201: GradeOut, **error_responses(401, 403, 404, 422)},
        host_auth=True,
        tags=TAGS,
    )
    async def post(self, session_id: str) -> None:
        session = await self.manager.as_host(session_id, self.bearer_token())
        grade = await self.manager.grading.grade(session, None)
        self.respond(GradeOut.of(grade), 201)

    @operation(
        "Every grading of the session, oldest first (host only)",
        responses={200: GradesOut, **error_responses(401, 403, 404)},
        host_auth=True,
        tags=TAGS,
    )
    async def get(self, session_id: str) -> None:
        await self.manager.as_host(session_id, self.bearer_token())
        grades = await self.manager.store.grades(session_id)
        self.respond(GradesOut(grades=[GradeOut.of(grade) for grade in grades]))
