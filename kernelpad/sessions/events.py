"""Every event the server sends to clients of the JSON socket, as a typed model.

The JSON protocol (SEED_API.md) frames each one as ``{"type", "data", "timestamp"}``; these
models are the ``data``, and their ``type`` the frame's. Sessions build events, sockets only
serialise them: a field added or renamed shows up here, once, and in the OpenAPI-style docs of
the socket, not as a string literal in seven places.

Fields a sender leaves out stay out of ``data`` (``exclude_unset``): a run that failed inside
kernelpad reports fewer figures than one that ran, as the protocol has always had it.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from kernelpad.sessions.models import Grade, Session, TestResult

KernelState = Literal["starting", "idle", "busy", "restarting", "dead"]


class Event(BaseModel):
    """A server-to-client event; ``type`` names it on the wire."""

    model_config = ConfigDict(extra="forbid")

    type: ClassVar[str]

    @functools.cached_property
    def data(self) -> dict[str, Any]:
        """The event's ``data`` as sent, made once however many peers it goes to."""
        return self.model_dump(exclude_unset=True)


class KernelStatus(Event):
    type = "kernel_status"
    language: str
    state: KernelState


class RunEvent(Event):
    """What every event of one run carries: which run, of which cell, in which language."""

    execution_id: str
    cell_id: str | None
    language: str


class ExecutionStarted(RunEvent):
    type = "execution_started"
    code: str


class Output(RunEvent):
    type = "output"
    output: dict[str, Any]


class TestScore(BaseModel):
    grade_id: str
    points: float
    score: float
    passed: bool
    #: Why it lost points (for the host only).
    error: str | None = None

    @classmethod
    def of(cls, result: TestResult) -> TestScore:
        return cls(
            grade_id=result.grade_id,
            points=result.points,
            score=result.score,
            passed=result.passed,
            error=result.error,
        )


class ExecutionFinished(RunEvent):
    type = "execution_finished"
    status: str
    execution_count: int | None
    execution_time: float | None = None
    queued_time: float | None = None
    timed_out: bool | None = None
    state_kept: bool | None = None
    kernel_restarted: bool | None = None
    notices: list[str]
    #: The run was of one of the question's tests (as the candidate has it): how it went.
    test: TestScore | None = None


class InputRequest(RunEvent):
    type = "input_request"
    prompt: str
    password: bool


class InputAnswered(Event):
    type = "input_answered"
    execution_id: str


class Presence(Event):
    """Someone came or went; ``participant_count`` is how many are here now."""

    client_id: str
    display_name: str
    role: str
    participant_count: int
    colour: str = ""


class ParticipantJoined(Presence):
    type = "participant_joined"


class ParticipantLeft(Presence):
    type = "participant_left"


class SessionSettings(Event):
    """The host's rules, as they are now."""

    type = "session_settings"
    editing_locked: bool
    candidate_execution: bool
    time_limit: float | None = None
    runs_per_minute: int | None = None
    review_after_end: bool = True
    share_score: bool = False


class SessionBrief(Event):
    """The question as everyone reads it beside the notebook (Markdown), and the time the
    host means it to take, in minutes."""

    type = "session_brief"
    statement: str
    suggested_minutes: int | None = None

    @classmethod
    def of(cls, session: Session) -> SessionBrief:
        return cls(statement=session.statement, suggested_minutes=session.suggested_minutes)


class GradeFinished(Event):
    """A grading, for the host's pages only: each test, hidden ones included."""

    type = "grade_finished"
    id: str
    at: float
    author: str | None
    score: float
    max_score: float
    results: list[TestScore]

    @classmethod
    def of(cls, grade: Grade) -> GradeFinished:
        return cls(
            id=grade.id,
            at=grade.at,
            author=grade.author,
            score=grade.score,
            max_score=grade.max_score,
            results=[TestScore.of(result) for result in grade.results],
        )


class ScoreShared(Event):
    """A grading's score, for candidates when the host shares it (nothing of the tests)."""

    type = "score_shared"
    score: float
    max_score: float


class SessionEnded(Event):
    type = "session_ended"
    session_id: str
    reason: str
    #: Candidates may still read the final notebook.
    review_after_end: bool = True


class CodeUpdate(Event):
    """The code (the first code cell's source) at ``version``; the author, if one JSON peer
    made the change."""

    type = "code_update"
    client_id: str | None
    display_name: str | None
    code: str
    language: str
    version: int


class ConnectedParticipant(BaseModel):
    client_id: str
    display_name: str
    role: str
    connected: bool = True
    colour: str = ""


class SessionState(Event):
    """What a JSON client is told when it joins: the session as it is now."""

    type = "session_state"
    session_id: str
    client_id: str
    role: str
    code: str
    language: str
    version: int
    kernels: dict[str, str]
    inputs: list[dict[str, Any]]
    editing_locked: bool
    candidate_execution: bool
    time_limit: float | None = None
    runs_per_minute: int | None = None
    review_after_end: bool = True
    share_score: bool = False
    statement: str = ""
    suggested_minutes: int | None = None
    participant_count: int
    participants: list[ConnectedParticipant]


class Error(Event):
    """A request that was refused or failed; the connection stays open unless it is closed
    right after."""

    type = "error"
    code: str
    message: str
    #: The cell a refused run was asked for: the page shows the refusal there.
    cell_id: str | None = None


class CompleteReply(Event):
    """Completions for the asker of a ``complete`` (nobody else): ``status`` is ``ok``, or why
    there are none (``busy``: a run holds the kernel; ``starting``: its kernel is starting;
    ``timeout``; ``error``). ``matches`` replace the code from ``cursor_start`` to
    ``cursor_end`` (code points, as Jupyter counts them)."""

    type = "complete_reply"
    request_id: str | None = None
    status: str
    matches: list[str] = []
    cursor_start: int = 0
    cursor_end: int = 0


class InspectReply(Event):
    """The kernel's documentation of the name at the asker's cursor (``found``), as MIME
    bundle ``data`` (``text/plain`` at least, often with ANSI colours)."""

    # "data", as Jupyter names it, is the events' own attribute here: it is named so on the
    # wire only.
    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    type = "inspect_reply"
    request_id: str | None = None
    status: str
    found: bool = False
    bundle: dict[str, str] = Field({}, serialization_alias="data")
