"""What the host changes in an interview as it goes: its rules (editing, running code, the
time limit and rate, what candidates read after the end, the shared score), its brief (the
statement and minutes), and the host's private notes. Everyone connected is told at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from kernelpad.errors import SessionEnded
from kernelpad.sessions.access import Access
from kernelpad.sessions.events import SessionBrief, SessionSettings
from kernelpad.sessions.models import ACTIVE, Session
from kernelpad.sessions.room.registry import Rooms
from kernelpad.sessions.storage.store import SessionStore


class HostControls:
    """The host's changes to a session; ``as_host(session_id, token)`` is the session, for its
    host only (raises for anyone else)."""

    def __init__(
        self,
        store: SessionStore,
        access: Access,
        rooms: Rooms,
        as_host: Callable[[str, str | None], Awaitable[Session]],
    ) -> None:
        self.store = store
        self.access = access
        self.rooms = rooms
        self.as_host = as_host

    async def update_rules(
        self,
        session_id: str,
        host_token: str | None,
        editing_locked: bool | None = None,
        candidate_execution: bool | None = None,
        time_limit: float | None = None,
        runs_per_minute: int | None = None,
        review_after_end: bool | None = None,
        share_score: bool | None = None,
    ) -> Session:
        """For the host: lock editing, let candidates run code or not, set the interview's
        time limit and rate (within the server's; 0: back to the server's), let candidates
        read the final notebook after the end or not; everyone connected is told."""
        session = await self.as_host(session_id, host_token)
        if session.status != ACTIVE:
            raise SessionEnded(f"Session {session_id} has ended.")
        self.access.check_limits(time_limit or None, runs_per_minute or None)
        changes: dict[str, Any] = {}
        if editing_locked is not None:
            changes["editing_locked"] = editing_locked
        if candidate_execution is not None:
            changes["candidate_execution"] = candidate_execution
        if time_limit is not None:
            changes["time_limit"] = time_limit or None
        if runs_per_minute is not None:
            changes["runs_per_minute"] = runs_per_minute or None
        if review_after_end is not None:
            changes["review_after_end"] = review_after_end
        if share_score is not None:
            changes["share_score"] = share_score
        # Changed from the rules in memory, with no wait between reading and setting them:
        # two hosts' changes at once (a lock, and running turned off) both stay.
        rules = replace(self.access.remember(session), **changes)
        self.access.set_rules(session_id, rules)
        session.editing_locked, session.candidate_execution = (
            rules.editing_locked,
            rules.candidate_execution,
        )
        session.time_limit, session.runs_per_minute = rules.time_limit, rules.runs_per_minute
        session.review_after_end, session.share_score = rules.review_after_end, rules.share_score
        if changes:
            await self.store.update_session(session_id, **changes)
        room = self.rooms.loaded(session_id)
        if room is not None:
            room.broadcast(SessionSettings(**vars(rules)))
        return session

    async def set_brief(
        self,
        session_id: str,
        host_token: str | None,
        statement: str | None = None,
        suggested_minutes: int | None = None,
    ) -> Session:
        """For the host: the question's statement beside the notebook, and the minutes it
        should take (0: none said); everyone connected reads the new one at once."""
        session = await self.as_host(session_id, host_token)
        if session.status != ACTIVE:
            raise SessionEnded(f"Session {session_id} has ended.")
        changes: dict[str, Any] = {}
        if statement is not None:
            changes["statement"] = session.statement = statement
        if suggested_minutes is not None:
            changes["suggested_minutes"] = session.suggested_minutes = suggested_minutes or None
        if not changes:
            return session
        await self.store.update_session(session_id, **changes)
        room = self.rooms.loaded(session_id)
        if room is not None:
            room.brief = SessionBrief.of(session)
            room.broadcast(room.brief)
        return session

    async def set_notes(self, session_id: str, host_token: str | None, notes: str) -> None:
        await self.as_host(session_id, host_token)
        await self.store.update_session(session_id, notes=notes)
