"""Handlers of /api/v1/sessions: create, list, read and end sessions, run code, read history."""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import re

from kernelpad.errors import Forbidden
from kernelpad.sessions.models import DocumentChange, Execution, Grade, Session
from kernelpad.sessions.tickets import TicketStore, grant_for
from kernelpad.web.base import ApiHandler, error_responses, operation
from kernelpad.web.grades import GradeOut
from kernelpad.web.run_schemas import (
    EditEvent,
    ExecuteRequest,
    ExecutionListQuery,
    ExecutionOut,
    ExecutionPage,
    GradeEvent,
    RunEvent,
    TimelineOut,
)
from kernelpad.web.schemas import (
    CreateSessionRequest,
    JoinedOut,
    JoinRequest,
    NotebookQuery,
    NotesBody,
    NotesOut,
    ParticipantOut,
    SessionCreated,
    SessionListQuery,
    SessionOut,
    SessionPage,
    SessionSettingsRequest,
    SessionSummary,
    TicketOut,
    TicketRequest,
)

TAGS = ("sessions",)


class SessionsHandler(ApiHandler):
    @operation(
        "List sessions, newest first (needs the admin token: the list holds every join link)",
        query=SessionListQuery,
        responses={200: SessionPage, **error_responses(401, 403, 422)},
        host_auth=True,
        tags=TAGS,
    )
    async def get(self) -> None:
        self._authorize_admin()
        q = self.query(SessionListQuery)
        rows, total = await self.manager.list_page(q.limit, q.offset, q.status)
        url = self.public_url
        page = SessionPage(
            sessions=[SessionSummary.of(s, count, url) for s, count in rows],
            total=total,
            limit=q.limit,
            offset=q.offset,
        )
        self.respond(page)

    def _authorize_admin(self) -> None:
        admin = self.kp_settings.admin_token
        if not admin:
            raise Forbidden(
                "Listing sessions is off: the list would give every interview's join link to"
                " anyone. Set ADMIN_TOKEN to list them with it."
            )
        self.require_token(admin, "ADMIN_TOKEN", "Listing sessions")

    @operation(
        "Create an interview session",
        body=CreateSessionRequest,
        responses={201: SessionCreated, **error_responses(400, 413, 422)},
        tags=TAGS,
    )
    async def post(self) -> None:
        req = self.body(CreateSessionRequest)
        # As a JupyterHub service, the interviewer is whom the Hub says.
        hub_user = self.current_user
        host_name = hub_user["name"] if hub_user else req.host_name
        session, token = await self.manager.create(
            host_name,
            req.session_name,
            req.initial_language,
            req.max_participants,
            req.notebook,
            req.question_id,
            req.include_outputs,
            req.statement,
            req.suggested_minutes,
        )
        out = SessionOut.of_session(session, self.public_url)
        self.set_header("Location", f"{self.kp_settings.base_url}api/v1/sessions/{session.id}")
        self.respond(SessionCreated(**out.model_dump(), host_token=token), status=201)


class SessionHandler(ApiHandler):
    @operation(
        "A session's details", responses={200: SessionOut, **error_responses(404)}, tags=TAGS
    )
    async def get(self, session_id: str) -> None:
        session = await self.manager.get(session_id)
        connected = self.manager.participants.connected(session_id)
        access = self.manager.access
        caps = (access.time_cap, access.limits.runs_per_minute)
        self.respond(SessionOut.of_session(session, self.public_url, connected, caps))

    @operation(
        "End a session; its kernels shut down",
        responses={200: SessionOut, **error_responses(401, 403, 404, 409)},
        host_auth=True,
        tags=TAGS,
    )
    async def delete(self, session_id: str) -> None:
        session = await self.manager.end(session_id, self.bearer_token())
        self.respond(SessionOut.of_session(session, self.public_url))

    @operation(
        "Change the interview's rules (lock editing, let candidates run code, limits, the"
        " final notebook after the end) or its question's statement (host only)",
        body=SessionSettingsRequest,
        responses={200: SessionOut, **error_responses(401, 403, 404, 409, 422)},
        host_auth=True,
        tags=TAGS,
    )
    async def patch(self, session_id: str) -> None:
        req = self.body(SessionSettingsRequest)
        token = self.bearer_token()
        session = await self.manager.hosts.update_rules(
            session_id,
            token,
            req.editing_locked,
            req.candidate_execution,
            req.time_limit,
            req.runs_per_minute,
            req.review_after_end,
            req.share_score,
        )
        if req.statement is not None or req.suggested_minutes is not None:
            session = await self.manager.hosts.set_brief(
                session_id, token, req.statement, req.suggested_minutes
            )
        connected = self.manager.participants.connected(session_id)
        access = self.manager.access
        caps = (access.time_cap, access.limits.runs_per_minute)
        self.respond(SessionOut.of_session(session, self.public_url, connected, caps))


class ExecuteHandler(ApiHandler):
    @operation(
        "Run code in the session's kernel",
        body=ExecuteRequest,
        responses={200: ExecutionOut, **error_responses(400, 403, 404, 409, 413, 422, 429, 503)},
        tags=("execution",),
    )
    async def post(self, session_id: str) -> None:
        req = self.body(ExecuteRequest)
        # Every limit and permission (the code's size among them) is the access rules'.
        role = self.role = await self.manager.role_of(session_id, self.bearer_token())
        execution = await self.manager.runs.execute(
            session_id, req.code, role, req.language, req.time_limit, req.stdin
        )
        self.respond(ExecutionOut.of(execution))


class ExecutionsHandler(ApiHandler):
    @operation(
        "A session's execution history, oldest first",
        query=ExecutionListQuery,
        responses={200: ExecutionPage, **error_responses(401, 403, 404, 422)},
        host_auth=True,
        tags=("execution",),
    )
    async def get(self, session_id: str) -> None:
        q = self.query(ExecutionListQuery)
        session = await self.manager.as_host(session_id, self.bearer_token())
        executions, total = await self.manager.history.executions(session, q.limit, q.offset)
        page = ExecutionPage(
            executions=[ExecutionOut.of(e) for e in executions],
            total=total,
            limit=q.limit,
            offset=q.offset,
        )
        self.respond(page)


class ParticipantsHandler(ApiHandler):
    @operation(
        "Join a session: a participant and its token",
        body=JoinRequest,
        responses={201: JoinedOut, **error_responses(403, 404, 409, 422)},
        tags=("participants",),
    )
    async def post(self, session_id: str) -> None:
        req = self.body(JoinRequest)
        self.client_id = req.client_id
        # The bearer is the host token (joining as the host) or a participant token (coming
        # back as that participant).
        token = self.bearer_token()
        participant, participant_token = await self.manager.participants.register(
            session_id, req.display_name, req.client_id, token, token
        )
        self.respond(
            JoinedOut(
                client_id=participant.client_id,
                display_name=participant.display_name,
                role=participant.role,
                colour=participant.colour,
                participant_token=participant_token,
            ),
            201,
        )


class ParticipantHandler(ApiHandler):
    @operation(
        "Remove a participant for good (host only)",
        responses={200: ParticipantOut, **error_responses(401, 403, 404, 422)},
        host_auth=True,
        tags=("participants",),
    )
    async def delete(self, session_id: str, client_id: str) -> None:
        session = await self.manager.as_host(session_id, self.bearer_token())
        participant = await self.manager.participants.remove(session, client_id)
        self.respond(ParticipantOut.of(participant))


class ReadmissionHandler(ApiHandler):
    @operation(
        "Let a removed participant back in: it joins again as itself (host only)",
        responses={200: ParticipantOut, **error_responses(401, 403, 404, 409)},
        host_auth=True,
        tags=("participants",),
    )
    async def post(self, session_id: str, client_id: str) -> None:
        session = await self.manager.as_host(session_id, self.bearer_token())
        participant = await self.manager.participants.readmit(session, client_id)
        self.respond(ParticipantOut.of(participant))


class TicketsHandler(ApiHandler):
    @operation(
        "A single-use ticket to the Yjs socket, so that no token goes in its URL (the token:"
        " the host's, or the participant's, as 'Authorization: Bearer')",
        body=TicketRequest,
        responses={201: TicketOut, **error_responses(401, 403, 404, 409, 415, 422)},
        tags=("participants",),
    )
    async def post(self, session_id: str) -> None:
        req = self.body(TicketRequest)
        self.client_id = req.client_id
        session = await self.manager.get(session_id)
        grant = grant_for(session, req.client_id, self.bearer_token())
        tickets: TicketStore = self.application.settings["tickets"]
        self.respond(TicketOut(ticket=tickets.issue(grant), expires_in=int(tickets.ttl)), 201)


class NotebookHandler(ApiHandler):
    @operation(
        "The session's notebook as a Jupyter notebook file (the host; after the end, its"
        " participants too, with their participant token, if the host lets them)",
        responses={200: None, **error_responses(401, 403, 404)},
        host_auth=True,
        tags=("sessions",),
    )
    async def get(self, session_id: str) -> None:
        q = self.query(NotebookQuery)
        session = await self.manager.get(session_id)
        token = self.bearer_token()
        self.manager.access.authorize_reader(session, token)
        notebook = await self.manager.history.notebook(session, q.at)
        if self.manager.access.is_host(session, token):
            # The host's copy keeps every grading (a candidate's, after the end, none).
            grades = await self.manager.store.grades(session_id)
            notebook["metadata"]["kernelpad"]["grades"] = [
                GradeOut.of(grade).model_dump(mode="json") for grade in grades
            ]
        name = re.sub(r"[^A-Za-z0-9_-]+", "-", notebook["metadata"]["kernelpad"]["title"])
        self.set_header("Content-Type", "application/x-ipynb+json")
        self.set_header(
            "Content-Disposition",
            f'attachment; filename="{name.strip("-")[:80] or "interview"}-{session_id}.ipynb"',
        )
        self.finish(json.dumps(notebook, ensure_ascii=False, indent=1))


class TimelineHandler(ApiHandler):
    @operation(
        "Every change of the notebook and every run, in order, to replay the interview (host only)",
        responses={200: TimelineOut, **error_responses(401, 403, 404)},
        host_auth=True,
        tags=("sessions",),
    )
    async def get(self, session_id: str) -> None:
        session = await self.manager.as_host(session_id, self.bearer_token())
        changes, runs = await self.manager.history.timeline(session)
        grades = await self.manager.store.grades(session_id)
        # A long interview is many thousands of changes: encoded off the event loop.
        body = await asyncio.to_thread(_timeline, session, changes, runs, grades)
        self.finish(body)


def _timeline(
    session: Session, changes: list[DocumentChange], runs: list[Execution], grades: list[Grade]
) -> str:
    """The timeline as JSON: the changes in the order they were stored (the order that
    rebuilds the notebook), each run and grading before the first change made after it
    started."""
    events: list[EditEvent | RunEvent | GradeEvent] = []
    pending = collections.deque(sorted(runs, key=lambda run: run.started_at))
    for change in changes:
        while pending and pending[0].started_at < change.at:
            events.append(_run_event(pending.popleft()))
        events.append(
            EditEvent(
                seq=change.seq,
                at=change.at,
                author=change.author,
                update=base64.b64encode(change.update).decode(),
            )
        )
    events += [_run_event(run) for run in pending]
    for grade in sorted(grades, key=lambda grade: grade.at):
        place = next((i for i, e in enumerate(events) if e.at > grade.at), len(events))
        result = GradeOut.of(grade)
        events.insert(
            place, GradeEvent(at=grade.at, **result.model_dump(exclude={"at", "duration"}))
        )
    return TimelineOut(
        session_id=session.id,
        session_name=session.name,
        started_at=session.created_at,
        ended_at=session.ended_at,
        participants=[ParticipantOut.of(p) for p in session.participants],
        events=events,
    ).model_dump_json()


def _run_event(run: Execution) -> RunEvent:
    return RunEvent(
        at=run.started_at,
        finished_at=run.finished_at,
        execution_id=run.id,
        cell_id=run.cell_id,
        author=run.author,
        language=run.language,
        code=run.code,
        status=run.status,
        execution_count=run.execution_count,
        outputs=run.outputs,
    )


class NotesHandler(ApiHandler):
    @operation(
        "The host's private notes",
        responses={200: NotesOut, **error_responses(401, 403, 404)},
        host_auth=True,
        tags=("sessions",),
    )
    async def get(self, session_id: str) -> None:
        session = await self.manager.as_host(session_id, self.bearer_token())
        self.respond(NotesOut(notes=session.notes))

    @operation(
        "Replace the host's private notes",
        body=NotesBody,
        responses={200: NotesOut, **error_responses(401, 403, 404, 413, 422)},
        host_auth=True,
        tags=("sessions",),
    )
    async def put(self, session_id: str) -> None:
        req = self.body(NotesBody)
        await self.manager.hosts.set_notes(session_id, self.bearer_token(), req.notes)
        self.respond(NotesOut(notes=req.notes))
