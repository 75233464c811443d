"""``GET /api/v1/questions``: the question library (see :mod:`kernelpad.sessions.questions`),
with which questions have tests and which cannot be used, and why."""

from __future__ import annotations

from pydantic import BaseModel, Field

from kernelpad.web.base import ApiHandler, operation


class QuestionOut(BaseModel):
    id: str = Field(description="Give it as question_id to start an interview from it.")
    title: str
    description: str
    language: str = Field(description="Its language's id; empty if this server lacks it.")
    minutes: int | None = Field(None, description="How long it should take, if it says.")
    tests: int = Field(0, description="Its tests (nbgrader's test cells).")
    points: float = Field(0, description="What its tests are worth together.")
    broken: str | None = Field(
        None, description="Why it cannot be used (it is listed, but starts no interview)."
    )


class QuestionsOut(BaseModel):
    questions: list[QuestionOut]


class QuestionsHandler(ApiHandler):
    @operation(
        "The question library: notebooks to start interviews from",
        responses={200: QuestionsOut},
        tags=("sessions",),
    )
    async def get(self) -> None:
        questions = await self.manager.questions.all()
        self.respond(QuestionsOut(questions=[QuestionOut(**vars(q)) for q in questions]))
