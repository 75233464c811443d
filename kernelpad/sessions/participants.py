"""The people of a session: who may join as whom, with which token, and their comings and
goings, kept for the session's record."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from kernelpad.errors import (
    Forbidden,
    InvalidValue,
    ParticipantNotFound,
    ParticipantRemoved,
    SessionEnded,
)
from kernelpad.logs import about
from kernelpad.sessions.access import Access
from kernelpad.sessions.colours import colour_at
from kernelpad.sessions.models import ACTIVE, Participant, Session
from kernelpad.sessions.room.registry import Rooms
from kernelpad.sessions.room.room import Room
from kernelpad.sessions.storage.store import SessionStore
from kernelpad.sessions.tokens import hash_token, new_token, token_matches

log = logging.getLogger(__name__)


class Participants:
    """Joins, leaves and removals. ``get_session(session_id)`` reads a session (raising if
    there is none); ``closing()`` says whether the server is stopping."""

    def __init__(
        self,
        store: SessionStore,
        access: Access,
        rooms: Rooms,
        get_session: Callable[[str], Awaitable[Session]],
        closing: Callable[[], bool],
    ) -> None:
        self.store = store
        self.access = access
        self.rooms = rooms
        self.get_session = get_session
        self.closing = closing

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
        session = await self.get_session(room.session_id)
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
        session = await self.get_session(session_id)
        if session.status != ACTIVE:
            raise SessionEnded(f"Session {session_id} has ended.")
        known = {p.client_id for p in session.participants}
        if client_id not in known and self.access.is_host(session, host_token):
            # The host has one identity, made with the session: a host's page (a first visit,
            # another tab or browser) joins as it, not as a second host.
            hosts = [p for p in session.participants if p.role == "host" and p.removed_at is None]
            if hosts:
                client_id = hosts[0].client_id
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
        host = self.access.is_host(session, host_token)
        earlier = next((p for p in session.participants if p.client_id == client_id), None)
        if earlier is not None and earlier.removed_at is not None:
            raise ParticipantRemoved(
                f"Session {session.id}: {earlier.display_name} ({client_id}) was removed by the"
                " host and cannot join again."
            )
        if earlier is not None and earlier.role == "host" and not host:
            raise Forbidden(
                f"Session {session.id}: client_id {client_id!r} is the host's; joining as the"
                " host needs the host token.",
                public="That identity is the host's: joining as the host needs the host token.",
            )
        if (
            earlier is not None
            and earlier.token_hash
            and not host
            and not token_matches(participant_token or "", earlier.token_hash)
        ):
            raise Forbidden(
                f"Session {session.id}: client_id {client_id!r} is taken; joining as it needs"
                " its participant token.",
                public="Someone else has that identity in this interview: open the join link"
                " again to join as yourself.",
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
            colour=earlier.colour if earlier else colour_at(len(session.participants)),
        )
        return participant, token

    async def remove(self, session: Session, client_id: str) -> Participant:
        """For the host: a participant leaves (its connections close; its token and its
        ``client_id`` are refused until the host lets it back in)."""
        participant = next((p for p in session.participants if p.client_id == client_id), None)
        if participant is None or participant.removed_at is not None:
            raise ParticipantNotFound(
                f"Session {session.id} has no participant {client_id!r} to remove.",
                public=f"There is no participant {client_id!r} to remove.",
            )
        if participant.role == "host":
            raise InvalidValue(
                f"Session {session.id}: the host cannot be removed.",
                public="The host cannot be removed.",
            )
        participant.removed_at = participant.left_at = time.time()
        room = self.rooms.loaded(session.id)
        if room is not None:
            room.remove(client_id)  # first, before any wait: a join under way finds it removed
        await self.store.remove_participant(session.id, client_id, participant.removed_at)
        if room is not None:
            room.expel(client_id, f"{participant.display_name} was removed by the host")
        log.info(
            "session %s: participant %s removed by the host",
            session.id,
            client_id,
            extra=about(session.id),
        )
        return participant

    async def readmit(self, session: Session, client_id: str) -> Participant:
        """For the host: a participant removed by mistake may join again, as itself (with
        the token it had: nobody else can take its place)."""
        participant = next((p for p in session.participants if p.client_id == client_id), None)
        if participant is None or participant.removed_at is None:
            raise ParticipantNotFound(
                f"Session {session.id} has no removed participant {client_id!r}.",
                public="There is no such removed participant to let back in.",
            )
        if session.status != ACTIVE:
            raise SessionEnded(f"Session {session.id} has ended.")
        participant.removed_at = None
        room = self.rooms.loaded(session.id)
        if room is not None:
            room.readmit(client_id)
        await self.store.readmit_participant(session.id, client_id)
        log.info(
            "session %s: participant %s let back in by the host",
            session.id,
            client_id,
            extra=about(session.id),
        )
        return participant

    def connected(self, session_id: str) -> set[str]:
        """The client ids connected to a session now."""
        room = self.rooms.loaded(session_id)
        return set(room.members) if room else set()

    async def left(self, session_id: str, participant: Participant) -> None:
        """Record that a participant left (kept, with its time, for the session's record)."""
        participant.left_at = time.time()
        log.info(
            "session %s: %s (%s) left",
            session_id,
            participant.display_name,
            participant.client_id,
            extra=about(session_id),
        )
        if self.closing():
            return  # connections close as the server stops; the database is closing too
        try:
            await self.store.participant_left(
                session_id, participant.client_id, participant.left_at
            )
        except Exception:
            log.exception("session %s: could not record that %s left", session_id, participant)
