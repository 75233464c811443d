"""Interview sessions: made, found, listed and ended, and the parts that serve them.

:class:`SessionManager` owns a session's lifetime and composes the parts that each do one job:
:mod:`~kernelpad.sessions.access` (every rule), :mod:`~kernelpad.sessions.participants`,
:mod:`~kernelpad.sessions.runs`, :mod:`~kernelpad.sessions.history`, the host's changes
(:mod:`~kernelpad.sessions.host_controls`), which process drives a session
(:mod:`~kernelpad.sessions.leases`) and the live rooms (:mod:`kernelpad.sessions.room`). The
web layer calls the part it needs; the parts get narrow callables from here (a session's
language, a session read), never the manager itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernelpad import metrics
from kernelpad.errors import InvalidValue, SessionElsewhere, SessionEnded, SessionNotFound
from kernelpad.kernels.languages import LanguageRegistry
from kernelpad.kernels.pool import KernelPool
from kernelpad.logs import about
from kernelpad.sessions.access import Access, DocumentLimits, Role, Rules, RunLimits
from kernelpad.sessions.colours import colour_at
from kernelpad.sessions.document import SessionDocument
from kernelpad.sessions.events import SessionEnded as SessionEndedEvent
from kernelpad.sessions.grading.grader import Grader
from kernelpad.sessions.grading.nbgrader_format import QuestionFormatError, Release, release
from kernelpad.sessions.grading.service import Grading
from kernelpad.sessions.history import History
from kernelpad.sessions.host_controls import HostControls
from kernelpad.sessions.introspection import Introspection
from kernelpad.sessions.leases import Leases
from kernelpad.sessions.models import ACTIVE, Participant, Session
from kernelpad.sessions.notebooks import (
    notebook_brief,
    notebook_language,
    notebook_title,
    read_ipynb,
    starting_cells,
)
from kernelpad.sessions.participants import Participants
from kernelpad.sessions.questions import QuestionLibrary
from kernelpad.sessions.room.registry import Rooms
from kernelpad.sessions.room.room import Gate, Room
from kernelpad.sessions.runs import Runs, RunSettings
from kernelpad.sessions.storage.store import SessionStore
from kernelpad.sessions.tokens import hash_token, new_session_id, new_token

log = logging.getLogger(__name__)

# WebSocket close code for the connections of a session that ends.
SESSION_ENDED_CLOSE = 4410
# ... of a session another process drives from now on: reconnect (through the proxy).
SESSION_MOVED_CLOSE = 4503


@dataclass(frozen=True)
class SessionOptions:
    """What the operator sets for sessions (server.py makes it from the settings)."""

    questions_dir: Path
    session_id_length: int = 12
    max_participants: int = 10
    max_age_hours: float = 24.0
    kernel_idle_timeout: float = 0.0
    cull_interval: float = 60.0
    lease_seconds: float = 10.0
    runs: RunSettings = field(default_factory=RunSettings)
    run_limits: RunLimits = field(default_factory=RunLimits)
    document_limits: DocumentLimits = field(default_factory=DocumentLimits)


class SessionManager:
    """Creates, finds and ends sessions; its parts serve everything else about them."""

    def __init__(
        self,
        options: SessionOptions,
        store: SessionStore,
        registry: LanguageRegistry,
        pool: KernelPool,
    ) -> None:
        self.options = options
        self.store = store
        self.registry = registry
        self.pool = pool
        self.access = Access(
            options.run_limits, options.document_limits, time_cap=options.runs.time_limit
        )
        self.rooms = Rooms(store, self._gate, options.document_limits)
        self.leases = Leases(
            store, options.lease_seconds, self._let_go, self._idle, self._forget_cached
        )
        self.questions = QuestionLibrary(options.questions_dir, registry)
        self.participants = Participants(
            store, self.access, self.rooms, self.get, lambda: self._closing
        )
        self.runs = Runs(
            options.runs,
            self.access,
            store,
            registry,
            pool,
            self.rooms,
            self.active_language,
            self.leases.hold,
        )
        self.history = History(store, registry, self.rooms)
        self.hosts = HostControls(store, self.access, self.rooms, self.as_host)
        self.introspection = Introspection(self.runs, self.access)
        self.grading = Grading(
            store,
            self.rooms,
            Grader(pool, registry),
            self.history.notebook,
            lambda session: options.runs.limits(None, session.time_limit),
        )
        self.runs.visible_test = self.grading.visible_result
        # Language of each active session seen since start: a run needs no database read.
        self._active: dict[str, str] = {}
        # Active sessions' host token hashes (they never change), for the role of a request.
        self._host_hashes: dict[str, str] = {}
        # Counts sessions ended, so a cache fill can tell that an end raced with it.
        self._ends = 0
        self._ending: set[str] = set()  # sessions being ended: nobody may enter them
        self._culler: asyncio.Task[None] | None = None
        self._closing = False

    def _gate(self, session_id: str) -> Gate:
        return functools.partial(self.access.check, session_id)

    async def start(self) -> None:
        """Fill the kernel pool and start the periodic culler."""
        await self.questions.install_examples()
        self.pool.fill()
        self.leases.start()
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
        await self.runs.close()
        await self.pool.close()
        # Last: the next process takes the sessions over once their kernels are let go of.
        await self.leases.close()

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
        statement: str | None = None,
        suggested_minutes: int | None = None,
    ) -> tuple[Session, str]:
        """A new session and its host token (returned only here; only its hash is stored).

        It starts from ``notebook`` (nbformat JSON) or the question ``question_id`` if given
        (their outputs only with ``include_outputs``), in the notebook's language if this
        server offers it; else from the language's template. That first notebook is the first
        change of its record. The statement and minutes given win over the notebook's."""
        document = None
        brief: tuple[str, int | None] = ("", None)
        released: Release | None = None
        if question_id is not None:
            notebook = await self.questions.load(question_id)
        if notebook is not None:
            read = await asyncio.to_thread(read_ipynb, notebook)
            language = notebook_language(read, self.registry) or language
            document = SessionDocument(language)
            cells = starting_cells(read, language, self.registry, include_outputs)
            try:
                released = release(cells["cells"], language)
            except QuestionFormatError as exc:
                raise InvalidValue(
                    f"The notebook is not a question nbgrader reads: {exc}"
                ) from None
            if released is not None:
                cells["cells"] = released.cells
            document.notebook.set(cells)
            if session_name is None:
                session_name = notebook_title(read)
            brief = notebook_brief(read)
        installed = self.registry.get(language)
        if document is None:
            document = SessionDocument.create(installed.language.template, installed.language.id)
        self.access.check_document(*document.sizes())
        limit = self.options.max_participants
        if max_participants is not None and max_participants > limit:
            raise InvalidValue(
                f"max_participants is {max_participants}, but this server allows at most {limit}"
                " per session (MAX_PARTICIPANTS_PER_SESSION)."
            )
        token = new_token()
        now = time.time()
        session = Session(
            id=new_session_id(self.options.session_id_length),
            name=session_name or f"Interview with {host_name}",
            host_name=host_name,
            language=installed.language.id,
            code=document.code,
            max_participants=max_participants or limit,
            host_token_hash=hash_token(token),
            created_at=now,
            last_activity=now,
            statement=brief[0] if statement is None else statement,
            suggested_minutes=suggested_minutes or brief[1],
            participants=[
                Participant(
                    "host-" + secrets.token_hex(4), host_name, "host", now, colour=colour_at(0)
                )
            ],
        )
        await self.store.add_session(session)
        if released is not None:
            await self.grading.keep(session.id, released)
        await self.store.append_update(session.id, document.state(), now)
        self._active[session.id] = session.language
        self.access.set_rules(session.id, Rules())
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

    async def role_of(self, session_id: str, token: str | None) -> Role:
        """The role a request with ``token`` has in the session (raises if there is none).

        Asked on every run and completion over REST: an active session's host token hash is
        kept, so that these do not read the session's row each time (a database round trip,
        some 0.15 ms of a trivial run's 5)."""
        token_hash = self._host_hashes.get(session_id)
        if token_hash is None:
            ends = self._ends
            session = await self.get(session_id)
            token_hash = session.host_token_hash
            if session.status == ACTIVE and ends == self._ends:
                self._host_hashes[session_id] = token_hash
        return self.access.role_by_hash(token_hash, token)

    async def as_host(self, session_id: str, token: str | None) -> Session:
        """The session, for its host only (the token is checked by the access rules)."""
        session = await self.get(session_id)
        self.access.authorize_host(session, token)
        if session.status == ACTIVE:
            session = await self._drive(session)  # a host's changes are the driver's to make
        return session

    async def _drive(self, session: Session) -> Session:
        """Drive the session here (hold its lease, or raise :class:`SessionElsewhere`); the
        session as the last driver left it, if another drove it until now."""
        if await self.leases.hold(session.id):
            return await self.get(session.id)
        return session

    async def list_page(
        self, limit: int, offset: int, status: str | None = None
    ) -> tuple[list[tuple[Session, int]], int]:
        return await self.store.list_sessions(limit, offset, status)

    async def end(self, session_id: str, token: str | None) -> Session:
        """End a session for its host: its kernels shut down, its record stays."""
        session = await self.as_host(session_id, token)
        if session.status != ACTIVE:
            raise SessionEnded(
                f"Session {session_id} has already ended.",
                public="This interview has already ended.",
            )
        await self._end(session_id, "ended by host")
        return await self.get(session_id)

    async def _end(self, session_id: str, reason: str) -> None:
        self._ends += 1
        self._ending.add(session_id)
        try:
            self._active.pop(session_id, None)
            self._host_hashes.pop(session_id, None)
            self.grading.forget(session_id)  # read again if the host grades after the end
            review = self.access.rules(session_id).review_after_end
            self.access.forget(session_id)
            room = self.rooms.loaded(session_id)
            if room is not None:
                ended = SessionEndedEvent(
                    session_id=session_id, reason=reason, review_after_end=review
                )
                room.broadcast(ended)
                self.rooms.close(session_id, SESSION_ENDED_CLOSE, f"session {reason}"[:120])
            await self.store.end_session(session_id, time.time(), reason)
            await self.runs.close_session(session_id)
            await self.leases.release(session_id)
            log.info("session %s: %s", session_id, reason, extra=about(session_id))
        finally:
            self._ending.discard(session_id)

    # The live room

    async def room(self, session_id: str) -> Room:
        """The live room of an active session; the caller owes ``rooms.release``."""
        ends = self._ends
        session = await self.get(session_id)
        if session.status != ACTIVE or session_id in self._ending:
            raise SessionEnded(f"Session {session_id} has ended.")
        session = await self._drive(session)
        self.access.remember(session)
        try:
            # Its kernels, if an earlier server left them running: a page that joins sees them.
            await self.runs.take_back(session_id)
        except Exception:
            log.exception("session %s: its kernels were not taken back", session_id)
        room = await self.rooms.get(session)
        if self._ends != ends and (
            session_id in self._ending or (await self.get(session_id)).status != ACTIVE
        ):
            # It ended while its room loaded: the room must not live on.
            self.rooms.release(room)
            self.rooms.close(session_id, SESSION_ENDED_CLOSE, "session ended")
            raise SessionEnded(f"Session {session_id} has ended.")
        return room

    async def _let_go(self, session_id: str) -> None:
        """Stop driving a session here: another process drives it from now on. Its people
        reconnect (through the proxy, to that process); its kernels are left running for it."""
        self._forget_cached(session_id)
        self.rooms.close(session_id, SESSION_MOVED_CLOSE, "moving to another server")
        await self.runs.let_go(session_id)

    def _forget_cached(self, session_id: str) -> None:
        """What this process read of a session before it drove it: read again."""
        self._active.pop(session_id, None)
        self._host_hashes.pop(session_id, None)
        self.access.forget(session_id)

    def _idle(self, session_id: str) -> bool:
        """Nobody is connected to the session here, and no run holds it."""
        room = self.rooms.loaded(session_id)
        return (room is None or not room.members) and not self.runs.busy(session_id)

    async def active_language(self, session_id: str) -> str:
        """The language of an active session; raises if it is unknown or has ended."""
        while session_id not in self._active:
            ends = self._ends
            session = await self.get(session_id)
            if session.status != ACTIVE:
                raise SessionEnded(f"Session {session_id} has ended; its code can no longer run.")
            if ends == self._ends:  # no session ended meanwhile: the row read is current
                self._active[session_id] = session.language
                self.access.remember(session)
        return self._active[session_id]

    # Housekeeping

    async def snapshot(self) -> metrics.Snapshot:
        """What the server holds now, for /metrics."""
        return metrics.Snapshot(
            sessions_active=await self.store.count_sessions(ACTIVE),
            participants_connected=self.rooms.participants_connected(),
            kernels=self.runs.kernels(),
            pool_ready=self.pool.ready_by_language(),
        )

    async def cull(self) -> None:
        """End expired sessions and shut down kernels idle for too long."""
        hours = self.options.max_age_hours
        for session_id in await self.store.expired_sessions(time.time() - hours * 3600):
            try:
                await self.leases.hold(session_id)
            except SessionElsewhere:
                continue  # the process that drives it ends it
            await self._end(session_id, f"expired after {hours:g} h")
        if self.options.kernel_idle_timeout:
            await self.runs.cull(self.options.kernel_idle_timeout)

    async def _cull_forever(self) -> None:
        while True:
            await asyncio.sleep(self.options.cull_interval)
            try:
                await self.cull()
            except Exception:
                log.exception("culling sessions failed")
