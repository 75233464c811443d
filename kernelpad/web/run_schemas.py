"""The pydantic models of runs and the interview's record over HTTP: running code, the runs
page by page, and the timeline the replay is built from. (See :mod:`kernelpad.web.schemas` for
the rest of the API's models.)"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from kernelpad.sessions.events import TestScore
from kernelpad.sessions.models import Execution
from kernelpad.web.schemas import (
    LANGUAGE_PATTERN,
    MAX_OFFSET,
    ParticipantOut,
    QueryModel,
    RequestModel,
    utc,
)


class ExecuteRequest(RequestModel):
    code: str = Field(description="The code to run.")
    language: str | None = Field(
        None,
        pattern=LANGUAGE_PATTERN,
        description="Defaults to the session's language.",
    )
    time_limit: int | None = Field(
        None,
        gt=0,
        description="Milliseconds, from when the code starts; capped by CODE_EXECUTION_TIMEOUT,"
        " at least 100.",
    )
    stdin: list[str] | None = Field(
        None,
        max_length=10_000,
        description="Lines that answer the code's input requests, one each, in order. A run"
        " that asks for more input than given is stopped at once.",
    )


class ExecutionOut(BaseModel):
    execution_id: str
    session_id: str
    language: str
    code: str
    status: Literal["ok", "error", "timeout", "output_limit", "kernel_died"]
    stdout: str
    stderr: str
    outputs: list[dict[str, Any]] = Field(
        description="Rich outputs in nbformat's shape: stream, execute_result, display_data"
        " (whole MIME bundles) and error."
    )
    error: dict[str, Any] | None = Field(description="ename, evalue and traceback, if raised.")
    execution_count: int | None
    execution_time: float = Field(description="Milliseconds the kernel spent on the run.")
    queued_time: float = Field(description="Milliseconds the run waited for a busy kernel.")
    time_limit: int = Field(description="The limit applied, in milliseconds.")
    timed_out: bool
    state_kept: bool = Field(
        description="False when the kernel had to be restarted: earlier variables are gone."
    )
    kernel_restarted: bool
    new_kernel: bool = Field(description="The run started on a fresh kernel.")
    output_truncated: bool
    notices: list[str] = Field(description="What kernelpad did around the run, in words.")
    started_at: datetime
    finished_at: datetime

    @classmethod
    def of(cls, e: Execution) -> ExecutionOut:
        return cls(
            execution_id=e.id,
            session_id=e.session_id,
            language=e.language,
            code=e.code,
            status=e.status,
            stdout=e.stdout,
            stderr=e.stderr,
            outputs=e.outputs,
            error=e.error,
            execution_count=e.execution_count,
            execution_time=round(e.duration_ms, 3),
            queued_time=round(e.queued_ms, 3),
            time_limit=e.time_limit_ms,
            timed_out=e.timed_out,
            state_kept=e.state_kept,
            kernel_restarted=e.kernel_restarted,
            new_kernel=e.new_kernel,
            output_truncated=e.output_truncated,
            notices=e.notices,
            started_at=utc(e.started_at),
            finished_at=utc(e.finished_at),
        )


class ExecutionListQuery(QueryModel):
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)


class ExecutionPage(BaseModel):
    executions: list[ExecutionOut]
    total: int
    limit: int
    offset: int


# The record


class EditEvent(BaseModel):
    """A change of the shared notebook."""

    kind: Literal["edit"] = "edit"
    seq: int = Field(description="Its place among the session's changes.")
    at: float = Field(description="When, in seconds since the epoch.")
    author: str | None = Field(
        description="client_id of who made it; null for kernelpad's own (a run's outputs)."
    )
    update: str = Field(
        description="The Yjs update (v1), in base64: the notebook at a time t is every update"
        " up to t, applied in order."
    )


class RunEvent(BaseModel):
    """A run of code."""

    kind: Literal["run"] = "run"
    at: float = Field(description="When it started, in seconds since the epoch.")
    finished_at: float
    execution_id: str
    cell_id: str | None
    author: str | None = Field(description="client_id of who ran it; null over the REST API.")
    language: str
    code: str
    status: str
    execution_count: int | None
    outputs: list[dict[str, Any]]


class GradeEvent(BaseModel):
    """A grading of the notebook by the host (it ran in kernels of its own)."""

    kind: Literal["grade"] = "grade"
    at: float = Field(description="When it started, in seconds since the epoch.")
    id: str
    author: str | None
    score: float
    max_score: float
    results: list[TestScore]


class TimelineOut(BaseModel):
    """Everything that happened in an interview, in order, to replay it."""

    session_id: str
    session_name: str
    started_at: float
    ended_at: float | None
    participants: list[ParticipantOut]
    events: list[Annotated[EditEvent | RunEvent | GradeEvent, Field(discriminator="kind")]]
