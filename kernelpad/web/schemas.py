"""The pydantic models of the HTTP API: every request body, query and response.

Request models are strict (a number sent as a string is an error, not a guess) and refuse unknown
fields, so a typo gets a message naming it instead of being silently ignored.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from kernelpad.sessions.models import Participant, Session
from kernelpad.sessions.names import MAX_NAME_LENGTH, person_name
from kernelpad.sessions.notebooks import MAX_STATEMENT
from kernelpad.sessions.questions import QUESTION_ID

LANGUAGE_PATTERN = r"^[A-Za-z0-9_+.-]{1,64}$"
CLIENT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
MAX_OFFSET = 1_000_000_000


def _printable(value: str) -> str:
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


# A person's name: the rule of every name (kernelpad.sessions.names); the constraints say its
# length in the API's schema.
PersonName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_LENGTH),
    AfterValidator(person_name),
]
# A session's title: trimmed, not empty, no control characters.
SessionTitle = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_printable),
]


def _text(value: str) -> str:
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in value):
        raise ValueError("must not contain control characters other than new lines and tabs")
    return value


# A question's statement: Markdown, rendered (sanitised) on every participant's page.
Statement = Annotated[str, StringConstraints(max_length=MAX_STATEMENT), AfterValidator(_text)]
# A question's suggested length: 0 says none.
Minutes = Annotated[int, Field(ge=0, le=600)]


def utc(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class QueryModel(BaseModel):
    """Query strings are text: their numbers are converted, their unknown names refused."""

    model_config = ConfigDict(extra="forbid")


# Errors


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable kind of error, e.g. session_not_found.")
    message: str = Field(description="What went wrong, for a person.")
    details: list[dict[str, Any]] | None = Field(
        None, description="Per-field problems of a request that failed validation."
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail


# Sessions


class CreateSessionRequest(RequestModel):
    host_name: PersonName = Field(description="The interviewer's name.")
    session_name: SessionTitle | None = None
    initial_language: str = Field("python", pattern=LANGUAGE_PATTERN)
    max_participants: int | None = Field(
        None, ge=1, description="Defaults to MAX_PARTICIPANTS_PER_SESSION, its upper bound too."
    )
    notebook: dict[str, Any] | None = Field(
        None,
        description="A Jupyter notebook (.ipynb JSON) to start from: its cells become the"
        " session's notebook, in its language if this server offers it.",
    )
    question_id: str | None = Field(
        None,
        pattern=QUESTION_ID.pattern,
        description="Start from this question of the library (GET /api/v1/questions).",
    )
    include_outputs: bool = Field(
        False, description="Keep the outputs of the notebook or question started from."
    )
    statement: Statement | None = Field(
        None,
        description="The question, in Markdown, shown beside the notebook to everyone; default:"
        " the question's or notebook's (metadata.kernelpad.statement).",
    )
    suggested_minutes: Minutes | None = Field(
        None, description="How long the question should take; default: the question's."
    )

    @model_validator(mode="after")
    def _one_start(self) -> CreateSessionRequest:
        if self.notebook is not None and self.question_id is not None:
            raise ValueError("give notebook or question_id, not both")
        return self


class ParticipantOut(BaseModel):
    client_id: str
    display_name: str
    role: Literal["host", "candidate"]
    joined_at: datetime
    left_at: datetime | None = None
    connected: bool = Field(False, description="Connected to the session's socket now.")
    removed: bool = Field(
        False, description="Removed by the host: cannot join again unless let back in."
    )
    colour: str = Field("", description="Theirs alone in the interview (#rrggbb).")

    @classmethod
    def of(cls, p: Participant, connected: bool = False) -> ParticipantOut:
        return cls(
            client_id=p.client_id,
            display_name=p.display_name,
            role=p.role,
            joined_at=utc(p.joined_at),
            left_at=utc(p.left_at),
            connected=connected,
            removed=p.removed_at is not None,
            colour=p.colour,
        )


class SessionSummary(BaseModel):
    """What anyone may see of a session in listings."""

    session_id: str
    session_name: str
    host_name: str
    language: str
    status: Literal["active", "ended"]
    participant_count: int
    max_participants: int
    created_at: datetime
    last_activity: datetime
    join_url: str

    @classmethod
    def of(cls, s: Session, participant_count: int, public_url: str) -> SessionSummary:
        return cls(
            session_id=s.id,
            session_name=s.name,
            host_name=s.host_name,
            language=s.language,
            status=s.status,
            participant_count=participant_count,
            max_participants=s.max_participants,
            created_at=utc(s.created_at),
            last_activity=utc(s.last_activity),
            join_url=f"{public_url}/s/{s.id}",
        )


class SessionOut(SessionSummary):
    """A session's details."""

    code: str
    participants: list[ParticipantOut]
    ended_at: datetime | None = None
    end_reason: str | None = None
    editing_locked: bool = Field(False, description="Only the host may edit the notebook.")
    candidate_execution: bool = Field(True, description="Candidates may run code.")
    time_limit: float | None = Field(
        None, description="The host's time limit for a run, in seconds (null: the server's)."
    )
    runs_per_minute: int | None = Field(
        None, description="The host's runs a participant may start a minute (null: the server's)."
    )
    review_after_end: bool = Field(
        True, description="After the end, candidates may still read the final notebook."
    )
    share_score: bool = Field(False, description="Candidates see each grading's score.")
    statement: str = Field("", description="The question, in Markdown, beside the notebook.")
    suggested_minutes: int | None = Field(
        None, description="How long the question should take, in minutes."
    )
    started_at: datetime | None = Field(
        None, description="When the first candidate joined: the interview clock starts there."
    )
    server_time_limit: float | None = Field(
        None, description="The longest a run may take on this server, in seconds."
    )
    server_runs_per_minute: int | None = Field(
        None, description="Runs a participant may start a minute on this server (0: no limit)."
    )

    @classmethod
    def of_session(
        cls,
        s: Session,
        public_url: str,
        connected: set[str] | None = None,
        caps: tuple[float, int] | None = None,
    ) -> SessionOut:
        """``connected``: the client ids connected now, where the caller knows them (they are
        then the count); otherwise the participants who have not left count."""
        if connected is not None:
            count = len(connected)
        elif s.status != "active":
            count = 0
        else:
            count = len([p for p in s.participants if p.left_at is None])
        here = connected or set()
        return cls(
            **SessionSummary.of(s, count, public_url).model_dump(),
            code=s.code,
            participants=[ParticipantOut.of(p, p.client_id in here) for p in s.participants],
            ended_at=utc(s.ended_at),
            end_reason=s.end_reason,
            editing_locked=s.editing_locked,
            candidate_execution=s.candidate_execution,
            time_limit=s.time_limit,
            runs_per_minute=s.runs_per_minute,
            review_after_end=s.review_after_end,
            share_score=s.share_score,
            statement=s.statement,
            suggested_minutes=s.suggested_minutes,
            started_at=utc(
                min((p.joined_at for p in s.participants if p.role != "host"), default=None)
            ),
            server_time_limit=caps[0] if caps else None,
            server_runs_per_minute=caps[1] if caps else None,
        )


class SessionCreated(SessionOut):
    host_token: str = Field(
        description="Secret of the session's host, shown only here: send it as"
        " 'Authorization: Bearer <host_token>' to end the session or read its history."
    )


class SessionSettingsRequest(RequestModel):
    """What the host may change while the interview goes on (fields left out stay)."""

    editing_locked: bool | None = Field(None, description="Only the host may edit.")
    candidate_execution: bool | None = Field(None, description="Candidates may run code.")
    time_limit: float | None = Field(
        None,
        ge=0,
        description="Seconds a run may take in this interview, at most the server's"
        " CODE_EXECUTION_TIMEOUT; 0: the server's.",
    )
    runs_per_minute: int | None = Field(
        None,
        ge=0,
        description="Runs each participant may start a minute, at most the server's rate"
        " limit; 0: the server's.",
    )
    review_after_end: bool | None = Field(
        None, description="After the end, candidates may still read the final notebook."
    )
    share_score: bool | None = Field(
        None, description="Candidates see each grading's score (nothing of the tests)."
    )
    statement: Statement | None = Field(
        None, description="The question, in Markdown, shown beside the notebook to everyone."
    )
    suggested_minutes: Minutes | None = Field(
        None, description="How long the question should take, in minutes; 0: not said."
    )


class JoinRequest(RequestModel):
    """Join a session (a participant token comes back: keep it, to come back as yourself)."""

    display_name: PersonName
    client_id: str | None = Field(
        None,
        pattern=CLIENT_ID_PATTERN,
        description="To come back as a participant you were (needs its participant token as"
        " 'Authorization: Bearer'); default: a new one.",
    )


class JoinedOut(BaseModel):
    client_id: str
    display_name: str
    role: Literal["host", "candidate"]
    colour: str = Field("", description="Theirs alone in the interview (#rrggbb).")
    participant_token: str | None = Field(
        description="Proves you are this participant: send it when you join (WebSocket"
        " 'participant_token'). Given once; null for the host, who has the host token."
    )


class TicketRequest(RequestModel):
    """Ask for a ticket to the Yjs socket (``Authorization: Bearer``: the host token, or the
    participant's token)."""

    client_id: str = Field(
        pattern=CLIENT_ID_PATTERN, description="The participant the ticket lets in."
    )


class TicketOut(BaseModel):
    ticket: str = Field(
        description="Open the Yjs socket with it ('?ticket=...', with client_id and"
        " display_name) instead of a token: good for one connection, to this session, as this"
        " participant."
    )
    expires_in: int = Field(description="Seconds it stays good.")


class NotesBody(RequestModel):
    """The host's private notes: never shown to anyone else."""

    notes: str = Field(max_length=100_000)


class NotesOut(BaseModel):
    notes: str


class NotebookQuery(QueryModel):
    at: float | None = Field(
        None, ge=0, description="The notebook as it was at this time (seconds since the epoch)."
    )


class SessionListQuery(QueryModel):
    limit: int = Field(20, ge=1, le=100)
    offset: int = Field(0, ge=0, le=MAX_OFFSET)
    status: Literal["active", "ended"] | None = None


class SessionPage(BaseModel):
    sessions: list[SessionSummary]
    total: int
    limit: int
    offset: int
