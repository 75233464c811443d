"""The records kernelpad keeps about interviews (plain dataclasses; the web layer has the
pydantic models of the API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ACTIVE = "active"
ENDED = "ended"


@dataclass
class Participant:
    client_id: str
    display_name: str
    role: str  # "host" or "candidate"
    joined_at: float
    left_at: float | None = None
    #: SHA-256 of the participant's token: whoever joins as this client_id must show it.
    token_hash: str | None = None
    removed_at: float | None = None  # removed by the host: may not come back
    #: Theirs alone in the interview (by the order they joined: see sessions/colours.py).
    colour: str = ""


@dataclass
class Session:
    id: str
    name: str
    host_name: str
    language: str
    code: str
    max_participants: int
    host_token_hash: str
    created_at: float
    last_activity: float
    status: str = ACTIVE
    ended_at: float | None = None
    end_reason: str | None = None
    #: The host's private notes: never shown to anyone else.
    notes: str = ""
    editing_locked: bool = False  # only the host may edit
    candidate_execution: bool = True  # candidates may run code
    #: The host's limits for this interview, within the server's (None: the server's).
    time_limit: float | None = None  # seconds a run may take
    runs_per_minute: int | None = None  # runs a participant may start a minute
    #: After the end, candidates may still open the final notebook (read-only).
    review_after_end: bool = True
    #: The question, as everyone reads it beside the notebook (Markdown), and how long the
    #: host means it to take (minutes; None: not said).
    statement: str = ""
    suggested_minutes: int | None = None
    #: Candidates see the score of each grading (never the tests' details).
    share_score: bool = False
    participants: list[Participant] = field(default_factory=list)


@dataclass
class Execution:
    """One run of code in a session, as stored in its history."""

    id: str
    session_id: str
    language: str
    code: str
    status: str
    stdout: str
    stderr: str
    outputs: list[dict[str, Any]]
    error: dict[str, Any] | None
    execution_count: int | None
    time_limit_ms: int
    started_at: float
    finished_at: float
    duration_ms: float
    queued_ms: float
    timed_out: bool
    state_kept: bool
    kernel_restarted: bool
    new_kernel: bool
    output_truncated: bool
    notices: list[str] = field(default_factory=list)
    cell_id: str | None = None  # the notebook cell it ran, if it ran one
    author: str | None = None  # client_id of who ran it (None: over the REST API)


@dataclass
class DocumentChange:
    """One change of a session's shared notebook, as stored: a CRDT update, when it was
    made, and by whom (a participant's ``client_id``; None for kernelpad's own changes, such
    as a run's outputs)."""

    seq: int
    at: float
    author: str | None
    update: bytes


@dataclass(frozen=True)
class TestResult:
    """One test of a grading: its points and its score, and why it lost points."""

    grade_id: str
    points: float
    score: float
    error: str | None = None  # for the host only

    @property
    def passed(self) -> bool:
        return self.error is None and self.score == self.points


@dataclass
class Grade:
    """One grading of a session's notebook: when, by whom (a client_id; None over the API
    without one), and each test's score."""

    id: str
    session_id: str
    at: float
    author: str | None
    results: list[TestResult] = field(default_factory=list)
    duration: float = 0.0

    @property
    def score(self) -> float:
        return sum(result.score for result in self.results)

    @property
    def max_score(self) -> float:
        return sum(result.points for result in self.results)
