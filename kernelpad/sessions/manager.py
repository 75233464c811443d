"""Interview sessions and the kernels that run their code."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from typing import Any, NamedTuple

from kernelpad import metrics
from kernelpad.config import Settings
from kernelpad.errors import (
    ExecutionDisabled,
    Forbidden,
    InvalidValue,
    KernelpadError,
    NotAuthenticated,
    ParticipantNotFound,
    ParticipantRemoved,
    SessionEnded,
    SessionNotFound,
)
from kernelpad.kernels.execution import MIN_TIME_LIMIT, Limits
from kernelpad.kernels.languages import InstalledLanguage, LanguageRegistry
from kernelpad.kernels.pool import KernelPool
from kernelpad.kernels.runner import KernelRunner, RunReport
from kernelpad.logs import about
from kernelpad.sessions.collaboration import Room, Rooms
from kernelpad.sessions.document import SessionDocument, new_notebook
from kernelpad.sessions.models import ACTIVE, DocumentChange, Execution, Participant, Session
from kernelpad.sessions.notebooks import (
    notebook_language,
    notebook_title,
    read_ipynb,
    starting_cells,
    to_ipynb,
)
from kernelpad.sessions.questions import QuestionLibrary
from kernelpad.sessions.ratelimit import RateLimiter
from kernelpad.sessions.storage.store import SessionStore
from kernelpad.sessions.tokens import hash_token, new_session_id, new_token, token_matches

log = logging.getLogger(__name__)

# WebSocket close code for the connections of a session that ends.
SESSION_ENDED_CLOSE = 4410


class Rules(NamedTuple):
    """What the host allows in a session (see :meth:`SessionManager.update_settings`)."""

    editing_locked: bool
    candidate_execution: bool


class SessionManager:
    """Creates, finds and ends sessions, runs their code, and keeps their history.

    Each session has at most one kernel per language, started on its first run in that language
    (from the pool), shut down when the session ends or the kernel sits idle too long.
    """

    def __init__(
        self,
        settings: Settings,
        store: SessionStore,
        registry: LanguageRegistry,
        pool: KernelPool,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.pool = pool
        self.limiter = RateLimiter(settings.rate_limit_executions_per_minute)
        self._runners: dict[tuple[str, str], KernelRunner] = {}
        self.rooms = Rooms(store)
        self.questions = QuestionLibrary(settings.questions_path, registry)
        # Language of each active session seen since start: a run needs no database read.
        self._active: dict[str, str] = {}
        # The host's rules of each active session seen: a run needs no database read, and a
        # room that was loading while they changed gets the current ones.
        self._rules: dict[str, Rules] = {}
        # Counts sessions ended, so a cache fill can tell that an end raced with it.
        self._ends = 0
        self._ending: set[str] = set()  # sessions being ended: nobody may enter them
        self._culler: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        """Fill the kernel pool and start the periodic culler."""
        await self.questions.install_examples()
        self.pool.fill()
        self._culler = asyncio.create_task(self._cull_forever())

    async def close(self) -> None:
        """Close every connection, then shut every kernel down (session kernels and pooled
        ones). Connections go first: their edits must be stored before the database closes."""
        self._closing = True
        self.rooms.close_all(1001, "kernelpad is stopping")
        if self._culler is not None:
            self._culler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._culler
        runners, self._runners = list(self._runners.values()), {}
        await asyncio.gather(*(runner.close() for runner in runners))
        await self.pool.close()

    # Sessions

    async def create(
        self,
        host_name: str,
        session_name: str | None = None,
        language: str = "python",
        max_participants: int | None = None,
        notebook: dict[str, Any] | None = None,
        question_id: str | None = None,
        include_outputs: bool = False,
    ) -> tuple[Session, str]:
        """A new session and its host token (returned only here; only its hash is stored).

        It starts from ``notebook`` (nbformat JSON) or the question ``question_id`` if given
        (their outputs only with ``include_outputs``), in the notebook's language if this
        server offers it; else from the language's template. That first notebook is the first
        change of its record."""
        document = None
        if question_id is not None:
            notebook = await self.questions.load(question_id)
        if notebook is not None:
            read = await asyncio.to_thread(read_ipynb, notebook)
            language = notebook_language(read, self.registry) or language
            document = SessionDocument(language)
            document.notebook.set(starting_cells(read, language, self.registry, include_outputs))
            if session_name is None:
                session_name = notebook_title(read)
        installed = self.registry.get(language)
        if document is None:
            document = SessionDocument.create(installed.language.template, installed.language.id)
        limit = self.settings.max_participants_per_session
        if max_participants is not None and max_participants > limit:
            raise InvalidValue(
                f"max_participants is {max_participants}, but this server allows at most {limit}"
                " per session (MAX_PARTICIPANTS_PER_SESSION)."
            )
        token = new_token()
        now = time.time()
        session = Session(
            id=new_session_id(self.settings.session_id_length),
            name=session_name or f"Interview with {host_name}",
            host_name=host_name,
            language=installed.language.id,
            code=document.code,
            max_participants=max_participants or limit,
            host_token_hash=hash_token(token),
            created_at=now,
            last_activity=now,
            participants=[Participant("host-" + secrets.token_hex(4), host_name, "host", now)],
        )
        await self.store.add_session(session)
        await self.store.append_update(session.id, document.state(), now)
        self._active[session.id] = session.language
        self._rules[session.id] = Rules(editing_locked=False, candidate_execution=True)
        log.info(
            "session %s: created by %s (%s)",
            session.id,
            host_name,
            session.language,
            extra=about(session.id, session.language),
        )
        return session, token

    async def get(self, session_id: str) -> Session:
        session = await self.store.get_session(session_id)
        if session is None:
            raise SessionNotFound(f"There is no session {session_id!r}.")
        room = self.rooms.loaded(session_id)
        if room is not None:
            # Someone has it open: its document is newer than the stored code column.
            session.code, session.language = room.document.code, room.document.language
        return session

    async def list_page(
        self, limit: int, offset: int, status: str | None = None
    ) -> tuple[list[tuple[Session, int]], int]:
        return await self.store.list_sessions(limit, offset, status)

    def authorize_host(self, session: Session, token: str | None) -> None:
        """Raise unless ``token`` is the host token of ``session``."""
        if not token:
            raise NotAuthenticated(
                f"Session {session.id}: this needs the host token"
                " (header 'Authorization: Bearer <host_token>')."
            )
        if not token_matches(token, session.host_token_hash):
            raise Forbidden(f"Session {session.id}: that is not the session's host token.")

    async def _as_host(self, session_id: str, token: str | None) -> Session:
        """The session, for its host only (see :meth:`authorize_host`)."""
        session = await self.get(session_id)
        self.authorize_host(session, token)
        return session

    async def end(self, session_id: str, token: str | None) -> Session:
        """End a session for its host: its kernels shut down, its record stays."""
        session = await self._as_host(session_id, token)
        if session.status != ACTIVE:
            raise SessionEnded(f"Session {session_id} has already ended.")
        await self._end(session_id, "ended by host")
        return await self.get(session_id)

    async def _end(self, session_id: str, reason: str) -> None:
        self._ends += 1
        self._ending.add(session_id)
        try:
            await self._end_now(session_id, reason)
        finally:
            self._ending.discard(session_id)

    async def _end_now(self, session_id: str, reason: str) -> None:
        self._active.pop(session_id, None)
        self._rules.pop(session_id, None)
        room = self.rooms.loaded(session_id)
        if room is not None:
            room.broadcast_json("session_ended", {"session_id": session_id, "reason": reason})
            self.rooms.close(session_id, SESSION_ENDED_CLOSE, f"session {reason}"[:120])
        await self.store.end_session(session_id, time.time(), reason)
        self.limiter.forget(session_id)
        runners = [key for key in self._runners if key[0] == session_id]
        await asyncio.gather(*(self._runners.pop(key).close() for key in runners))
        log.info("session %s: %s", session_id, reason, extra=about(session_id))

    # Collaboration

    async def room(self, session_id: str) -> Room:
        """The live room of an active session."""
        ends = self._ends
        session = await self.get(session_id)
        if session.status != ACTIVE or session_id in self._ending:
            raise SessionEnded(f"Session {session_id} has ended.")
        room = await self.rooms.get(session)
        if self._ends != ends and (
            session_id in self._ending or (await self.get(session_id)).status != ACTIVE
        ):
            # It ended while its room loaded: the room must not live on.
            self.rooms.release(room)
            self.rooms.close(session_id, SESSION_ENDED_CLOSE, "session ended")
            raise SessionEnded(f"Session {session_id} has ended.")
        # The rules as last set here, if they changed while the room loaded.
        rules = self._rules.setdefault(
            session_id, Rules(session.editing_locked, session.candidate_execution)
        )
        room.editing_locked, room.candidate_execution = rules
        return room

    def check_may_run(self, session_id: str, as_host: bool) -> None:
        """Raise unless the host, or any participant while the host allows it, may run code
        in the session (known rules: a session seen running or open)."""
        rules = self._rules.get(session_id)
        if not as_host and rules is not None and not rules.candidate_execution:
            raise ExecutionDisabled(
                f"Session {session_id}: the host has turned running code off for candidates."
            )

    async def join(
        self,
        room: Room,
        client_id: str,
        display_name: str,
        host_token: str | None,
        participant_token: str | None = None,
    ) -> Participant:
        """Let a participant in (again, if ``client_id`` was here before; with its participant
        token, if it has one), within the session's limit; the caller owes ``room.depart``
        when the connection closes."""
        session = await self.get(room.session_id)
        participant, _ = self._identify(
            session, client_id, display_name, host_token, participant_token, False
        )
        room.admit(participant, session.max_participants)
        try:
            await self.store.save_participant(session.id, participant)
        except BaseException:
            room.depart(client_id)
            raise
        log.info(
            "session %s: %s (%s) connected as %s",
            session.id,
            participant.display_name,
            client_id,
            participant.role,
            extra=about(session.id),
        )
        return participant

    async def register(
        self,
        session_id: str,
        display_name: str,
        client_id: str | None,
        host_token: str | None,
        participant_token: str | None,
    ) -> tuple[Participant, str | None]:
        """A participant of a session, before it connects (a browser joining through the join
        link), with its participant token: from then on, only that token (or the host's) joins
        as its ``client_id``."""
        session = await self.get(session_id)
        if session.status != ACTIVE:
            raise SessionEnded(f"Session {session_id} has ended.")
        client_id = client_id or "c-" + secrets.token_hex(8)
        participant, token = self._identify(
            session, client_id, display_name, host_token, participant_token, True
        )
        await self.store.save_participant(session_id, participant)
        return participant, token

    def _identify(
        self,
        session: Session,
        client_id: str,
        display_name: str,
        host_token: str | None,
        participant_token: str | None,
        issue_token: bool,
    ) -> tuple[Participant, str | None]:
        """Who ``client_id`` is allowed to be, with which tokens."""
        host = bool(host_token) and token_matches(host_token or "", session.host_token_hash)
        earlier = next((p for p in session.participants if p.client_id == client_id), None)
        if earlier is not None and earlier.removed_at is not None:
            raise ParticipantRemoved(
                f"Session {session.id}: {earlier.display_name} ({client_id}) was removed by the"
                " host and cannot join again."
            )
        if earlier is not None and earlier.role == "host" and not host:
            raise Forbidden(
                f"Session {session.id}: client_id {client_id!r} is the host's; joining as the"
                " host needs the host token."
            )
        if (
            earlier is not None
            and earlier.token_hash
            and not host
            and not token_matches(participant_token or "", earlier.token_hash)
        ):
            raise Forbidden(
                f"Session {session.id}: client_id {client_id!r} is taken; joining as it needs"
                " its participant token."
            )
        token, token_hash = None, earlier.token_hash if earlier else None
        if issue_token and token_hash is None and not host:
            token = new_token()
            token_hash = hash_token(token)
        participant = Participant(
            client_id,
            display_name,
            "host" if host else "candidate",
            earlier.joined_at if earlier else time.time(),
            token_hash=token_hash,
        )
        return participant, token

    async def remove_participant(
        self, session_id: str, host_token: str | None, client_id: str
    ) -> Participant:
        """For the host: a participant leaves for good (its connections close, its token is
        void, its ``client_id`` cannot join again)."""
        session = await self._as_host(session_id, host_token)
        participant = next((p for p in session.participants if p.client_id == client_id), None)
        if participant is None or participant.removed_at is not None:
            raise ParticipantNotFound(
                f"Session {session_id} has no participant {client_id!r} to remove."
            )
        if participant.role == "host":
            raise InvalidValue(f"Session {session_id}: the host cannot be removed.")
        participant.removed_at = participant.left_at = time.time()
        participant.token_hash = None
        room = self.rooms.loaded(session_id)
        if room is not None:
            # First, before any wait: a join under way must find it removed.
            room.removed.add(client_id)
        await self.store.remove_participant(session_id, client_id, participant.removed_at)
        if room is not None:
            room.expel(client_id, f"{participant.display_name} was removed by the host")
        log.info(
            "session %s: participant %s removed by the host",
            session_id,
            client_id,
            extra=about(session_id),
        )
        return participant

    async def update_settings(
        self,
        session_id: str,
        host_token: str | None,
        editing_locked: bool | None = None,
        candidate_execution: bool | None = None,
    ) -> Session:
        """For the host: lock editing, or let candidates run code or not; everyone connected
        is told."""
        session = await self._as_host(session_id, host_token)
        if session.status != ACTIVE:
            raise SessionEnded(f"Session {session_id} has ended.")
        changes: dict[str, object] = {}
        if editing_locked is not None:
            changes["editing_locked"] = session.editing_locked = editing_locked
        if candidate_execution is not None:
            changes["candidate_execution"] = session.candidate_execution = candidate_execution
        await self.store.update_session(session_id, **changes)
        rules = Rules(session.editing_locked, session.candidate_execution)
        self._rules[session_id] = rules
        room = self.rooms.loaded(session_id)
        if room is not None:
            room.set_rules(*rules)
        return session

    async def notebook(
        self, session_id: str, host_token: str | None, at: float | None = None
    ) -> dict[str, Any]:
        """For the host: the session's notebook as an nbformat 4 notebook file, outputs
        included (ended sessions too: their document is stored); as it was at the time ``at``
        (seconds since the epoch), if given."""
        session = await self._as_host(session_id, host_token)
        room = self.rooms.loaded(session_id)
        if at is None and room is not None:
            cells = room.document.cells()
        else:
            if at is None:
                updates = await self.store.load_updates(session_id)
            else:
                updates = [
                    change.update for change in until(await self.store.history(session_id), at)
                ]
            if updates or (at is not None and at < session.created_at):
                # A whole record is CPU work: not on the event loop.
                cells = await asyncio.to_thread(
                    lambda: SessionDocument(session.language, updates).cells()
                )
            else:  # made before records began, and never opened: the code it was made with
                cells = new_notebook(session.code, session.language)["cells"]
        try:
            main = self.registry.get(session.language)
        except KernelpadError:
            main = None  # no longer offered here: the notebook says only its name
        return to_ipynb(cells, session, main)

    async def timeline(
        self, session_id: str, host_token: str | None
    ) -> tuple[Session, list[DocumentChange], list[Execution]]:
        """For the host: every change of the notebook and every run, each in the order
        they happened (ended sessions too, and after a restart: all of it is stored)."""
        session = await self._as_host(session_id, host_token)
        changes = await self.store.history(session_id)
        runs = await self.store.all_executions(session_id)
        return session, changes, runs

    async def notes(self, session_id: str, host_token: str | None) -> str:
        """The host's private notes of a session."""
        return (await self._as_host(session_id, host_token)).notes

    async def is_host(self, session_id: str, token: str | None) -> bool:
        """Whether ``token`` is the session's host token."""
        if not token:
            return False
        session = await self.get(session_id)
        return token_matches(token, session.host_token_hash)

    async def set_notes(self, session_id: str, host_token: str | None, notes: str) -> None:
        await self._as_host(session_id, host_token)
        await self.store.update_session(session_id, notes=notes)

    def connected(self, session_id: str) -> set[str]:
        """The client ids connected to a session now."""
        room = self.rooms.loaded(session_id)
        return set(room.members) if room else set()

    async def record_left(self, session_id: str, participant: Participant) -> None:
        """Record that a participant left (kept, with its time, for the session's record)."""
        participant.left_at = time.time()
        log.info(
            "session %s: %s (%s) left",
            session_id,
            participant.display_name,
            participant.client_id,
            extra=about(session_id),
        )
        if self._closing:
            return  # connections close as the server stops; the database is closing too
        try:
            await self.store.participant_left(
                session_id, participant.client_id, participant.left_at
            )
        except Exception:
            log.exception("session %s: could not record that %s left", session_id, participant)

    # Execution

    async def execute(
        self,
        session_id: str,
        code: str,
        language: str | None = None,
        time_limit_ms: int | None = None,
        stdin: list[str] | None = None,
        cell_id: str | None = None,
        as_host: bool = False,
        author: str | None = None,
    ) -> Execution:
        """Run ``code`` in the session's kernel for ``language`` and record the run (by
        ``author``, a participant's client_id); ``stdin`` holds the lines its input requests
        are answered with."""
        if not self.settings.enable_server_execution:
            raise ExecutionDisabled(
                "Running code is turned off on this server (ENABLE_SERVER_EXECUTION=false)."
            )
        session_language = await self._active_language(session_id)
        self.check_may_run(session_id, as_host)
        installed = self.registry.get(language or session_language)
        runner = self._runner(session_id, installed)
        # A run refused for a full queue does not count against the rate limit.
        runner.check_room()
        self.limiter.hit(session_id)

        cap = self.settings.code_execution_timeout
        time_limit = cap if time_limit_ms is None else min(time_limit_ms / 1000, cap)
        time_limit = max(time_limit, MIN_TIME_LIMIT)
        limits = Limits(
            time_limit=time_limit,
            interrupt_grace=self.settings.interrupt_grace,
            max_output=self.settings.code_max_output_size,
            flood_limit=self.settings.output_flood_limit,
        )
        started_at = time.time()
        execution_id = uuid.uuid4().hex
        # Whoever has the session open watches the run, however it was started.
        room = self.rooms.loaded(session_id)
        run = None
        if room is not None:
            self.rooms.hold(room)  # loaded until the run has written its end into it
            run = room.start_run(execution_id, cell_id, installed.language.id, code)
            if runner.kernel is None:
                starting = {"language": installed.language.id, "state": "starting"}
                room.broadcast_json("kernel_status", starting)
        try:
            report = await runner.run(code, limits, stdin, run, execution_id)
            result = report.result
            notices = _notices(report, installed, limits)
            if (
                report.new_kernel
                and not report.lost_kernel
                and await self.store.count_executions(session_id, installed.language.id)
            ):
                notices.insert(
                    0,
                    f"This run started a new {installed.language.display_name} kernel: variables"
                    " from earlier runs are gone (the server restarted or the idle kernel was shut"
                    " down).",
                )
            finished_at = time.time()
            execution = Execution(
                id=execution_id,
                session_id=session_id,
                language=installed.language.id,
                code=code,
                status=result.status,
                stdout=result.stdout,
                stderr=result.stderr,
                outputs=result.outputs,
                error=result.error,
                execution_count=result.execution_count,
                time_limit_ms=round(limits.time_limit * 1000),
                started_at=started_at,
                finished_at=finished_at,
                duration_ms=result.duration * 1000,
                queued_ms=report.queued * 1000,
                timed_out=result.timed_out,
                state_kept=report.state_kept,
                kernel_restarted=report.kernel_restarted,
                new_kernel=report.new_kernel,
                output_truncated=result.output_truncated,
                notices=notices,
                cell_id=cell_id,
                author=author,
            )
            await self.store.add_execution(execution)
            _count(execution)
            if run is not None:
                run.finish(
                    {
                        "status": execution.status,
                        "execution_count": execution.execution_count,
                        "execution_time": round(execution.duration_ms, 3),
                        "queued_time": round(execution.queued_ms, 3),
                        "timed_out": execution.timed_out,
                        "state_kept": execution.state_kept,
                        "kernel_restarted": execution.kernel_restarted,
                        "notices": execution.notices,
                    },
                )
        except BaseException:
            if run is not None:
                # Those watching must not see the cell run for ever.
                run.finish(
                    {
                        "status": "internal_error",
                        "execution_count": None,
                        "notices": ["The run did not finish: kernelpad hit an error or stopped."],
                    }
                )
            raise
        finally:
            if room is not None:
                self.rooms.release(room)
        log.info(
            "session %s: %s run %s in %.1f ms",
            session_id,
            installed.language.id,
            result.status,
            execution.duration_ms,
            extra=about(session_id, installed.language.id),
        )
        return execution

    async def _active_language(self, session_id: str) -> str:
        """The language of an active session; raises if it is unknown or has ended."""
        while session_id not in self._active:
            ends = self._ends
            session = await self.get(session_id)
            if session.status != ACTIVE:
                raise SessionEnded(f"Session {session_id} has ended; its code can no longer run.")
            if ends == self._ends:  # no session ended meanwhile: the row read is current
                self._active[session_id] = session.language
                # Unless the host changed them meanwhile: those are newer than this read.
                self._rules.setdefault(
                    session_id, Rules(session.editing_locked, session.candidate_execution)
                )
        return self._active[session_id]

    async def interrupt(
        self, session_id: str, language: str | None, execution_id: str | None = None
    ) -> bool:
        """Interrupt the session's run ``execution_id``, or whatever runs in ``language``;
        whether there was such a run (a run still waiting its turn is not interrupted)."""
        for (session, kernel_language), runner in self._runners.items():
            mine = session == session_id and language in (None, kernel_language)
            if mine and runner.interrupt(execution_id):
                return True
        return False

    async def restart_kernel(self, session_id: str, language: str) -> None:
        """Give the session a new kernel for ``language`` (its variables are gone)."""
        runner = self._runners.get((session_id, language))
        room = self.rooms.loaded(session_id)
        if room is not None:
            room.broadcast_json("kernel_status", {"language": language, "state": "restarting"})
        if runner is not None:
            await runner.restart()
        if room is not None:
            room.broadcast_json("kernel_status", {"language": language, "state": "idle"})

    def kernel_states(self, session_id: str) -> dict[str, str]:
        """The state of each kernel the session has: ``busy`` or ``idle``."""
        return {
            language: "busy" if runner.busy else "idle"
            for (session, language), runner in self._runners.items()
            if session == session_id and runner.kernel is not None
        }

    def _runner(self, session_id: str, language: InstalledLanguage) -> KernelRunner:
        key = (session_id, language.language.id)
        runner = self._runners.get(key)
        if runner is None:
            runner = KernelRunner(
                self.pool, language, self.settings.execution_queue_size, label=session_id
            )
            self._runners[key] = runner
        return runner

    async def executions(
        self, session_id: str, token: str | None, limit: int, offset: int
    ) -> tuple[list[Execution], int]:
        """The session's runs, oldest first, for its host."""
        await self._as_host(session_id, token)
        return await self.store.list_executions(session_id, limit, offset)

    # Housekeeping

    async def snapshot(self) -> metrics.Snapshot:
        """What the server holds now, for /metrics."""
        kernels: dict[tuple[str, str], int] = {}
        for (_, language), runner in self._runners.items():
            if runner.kernel is not None:
                state = "busy" if runner.busy else "idle"
            elif runner.busy:
                state = "starting"  # a run holds the runner while its kernel starts
            else:
                continue
            kernels[language, state] = kernels.get((language, state), 0) + 1
        return metrics.Snapshot(
            sessions_active=await self.store.count_sessions(ACTIVE),
            participants_connected=self.rooms.participants_connected(),
            kernels=kernels,
            pool_ready=self.pool.ready_by_language(),
        )

    @property
    def kernels_running(self) -> int:
        return sum(1 for runner in self._runners.values() if runner.kernel is not None)

    @property
    def executions_running(self) -> int:
        return sum(1 for runner in self._runners.values() if runner.busy)

    @property
    def executions_queued(self) -> int:
        return sum(runner.waiting for runner in self._runners.values())

    async def cull(self) -> None:
        """End expired sessions and shut down kernels idle for too long."""
        max_age = self.settings.max_session_age_hours * 3600
        for session_id in await self.store.expired_sessions(time.time() - max_age):
            await self._end(session_id, f"expired after {self.settings.max_session_age_hours:g} h")
        idle_timeout = self.settings.kernel_idle_timeout
        if not idle_timeout:
            return
        now = time.monotonic()
        for key, runner in list(self._runners.items()):
            if not runner.busy and not runner.waiting and now - runner.last_used > idle_timeout:
                del self._runners[key]
                log.info("session %s: shutting down its idle %s kernel", *key, extra=about(*key))
                await runner.close()

    async def _cull_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.cull_interval)
            try:
                await self.cull()
            except Exception:
                log.exception("culling sessions failed")


def until(changes: list[DocumentChange], at: float) -> list[DocumentChange]:
    """The changes that make a notebook as it was at the time ``at``: those stored before
    the first one made after ``at`` (the stored order is the order they were applied in, even
    if a clock stepped back)."""
    for index, change in enumerate(changes):
        if change.at > at:
            return changes[:index]
    return changes


def _count(execution: Execution) -> None:
    """A finished run, for /metrics."""
    metrics.EXECUTIONS.labels(execution.language, execution.status).inc()
    metrics.EXECUTION_SECONDS.labels(execution.language).observe(execution.duration_ms / 1000)
    if execution.timed_out:
        metrics.EXECUTION_TIMEOUTS.labels(execution.language).inc()


def _notices(report: RunReport, installed: InstalledLanguage, limits: Limits) -> list[str]:
    """What happened around a run, said for the people in the interview."""
    name = installed.language.display_name
    result = report.result
    notices = []
    if report.lost_kernel:
        notices.append(
            f"The {name} kernel had stopped since the last run; this run started a new one:"
            " variables from earlier runs are gone."
        )
    if report.stopped:
        notices.append("The run was stopped: the session ended or kernelpad is shutting down.")
    elif result.input_missing is not None and result.interrupted:
        notices.append("The run was stopped: it asked for input and no line was left in 'stdin'.")
    elif result.input_missing is not None:
        got = "the end of input" if installed.language.eof else "an empty line (no end of input)"
        notices.append(f"The code asked for more input than 'stdin' had; it got {got}.")
    elif result.timed_out:
        notices.append(
            f"The run passed its time limit of {limits.time_limit:g} s and was interrupted."
        )
    elif result.status == "output_limit":
        notices.append(
            "The run kept printing past the output limit of"
            f" {limits.max_output} characters and was interrupted."
        )
    if report.kernel_restarted:
        why = "died" if result.status == "kernel_died" else "did not stop when interrupted"
        notices.append(
            f"The {name} kernel {why} and was restarted: variables from earlier runs are gone."
        )
    return notices
