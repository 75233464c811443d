"""The rooms of the sessions someone has open: loaded from storage on demand, kept while
anyone holds them, stored and let go when the last one lets go."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import time
from collections.abc import Callable

from kernelpad.sessions.access import DocumentLimits
from kernelpad.sessions.document import SessionDocument
from kernelpad.sessions.events import SessionBrief
from kernelpad.sessions.models import Session
from kernelpad.sessions.room.room import Gate, Room
from kernelpad.sessions.storage.store import SessionStore

# A room whose notebook held more than this many characters gives its memory back to the
# system when it unloads (a full collection and malloc_trim cost a few ms, not worth it for
# a small room).
LARGE_ROOM = 1_000_000


def give_memory_back() -> None:
    """Collect what unloaded rooms left (their documents are cycles), and hand freed memory
    back to the system: glibc keeps it otherwise, and the server's RSS would stay at its peak."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class Rooms:
    """Every loaded room, by session id. ``gate_for(session_id)`` is the room's check of who
    may do what (see :class:`~kernelpad.sessions.room.room.Room`)."""

    def __init__(
        self,
        store: SessionStore,
        gate_for: Callable[[str], Gate],
        limits: DocumentLimits | None = None,
    ) -> None:
        self.store = store
        self.gate_for = gate_for
        self.limits = limits or DocumentLimits()
        self._rooms: dict[str, Room] = {}
        self._loading: dict[str, asyncio.Lock] = {}

    async def get(self, session: Session) -> Room:
        """The room of a session, its document rebuilt from what is stored (or created from
        the session's code the first time); the caller owes :meth:`release`."""
        session_id, code, language = session.id, session.code, session.language
        lock = self._loading.setdefault(session_id, asyncio.Lock())
        async with lock:
            if session_id not in self._rooms:
                updates = await self.store.load_updates(session_id)
                if updates:
                    document = SessionDocument(language, updates)
                else:
                    document = SessionDocument.create(code, language)
                    await self.store.append_update(session_id, document.state(), time.time())
                room = Room(
                    session_id, document, self.store, self.gate_for(session_id), self.limits
                )
                room.brief = SessionBrief.of(session)
                # A run the server did not see end (it stopped mid-run) is not running now.
                document.reset_running()
                if len(updates) > 1:
                    room.compact()
                if document.code != code:
                    # The code column lagged behind the document when the server stopped.
                    room.log.save_code(document.code)
                self._rooms[session_id] = room
        room = self._rooms[session_id]
        room.holds += 1
        return room

    def hold(self, room: Room) -> None:
        """Keep ``room`` loaded until the matching :meth:`release`."""
        room.holds += 1

    def loaded(self, session_id: str) -> Room | None:
        """The room of a session if someone has it open."""
        return self._rooms.get(session_id)

    def participants_connected(self) -> int:
        """Participants with a connection open, over every room."""
        return sum(len(room.members) for room in self._rooms.values())

    def release(self, room: Room) -> None:
        """Let go of a room from :meth:`get` or :meth:`hold`; the last to let go unloads it
        (its document is stored, in one piece; the next connection loads it again)."""
        room.holds -= 1
        if room.holds <= 0 and self._rooms.get(room.session_id) is room:
            del self._rooms[room.session_id]
            self._loading.pop(room.session_id, None)
            room.settle()
            if room.size.total > LARGE_ROOM:
                asyncio.get_running_loop().call_soon(give_memory_back)

    def close_all(self, code: int, reason: str) -> None:
        """Close every room and connection (the server is stopping)."""
        for session_id in list(self._rooms):
            self.close(session_id, code, reason)

    def close(self, session_id: str, code: int, reason: str) -> None:
        """Close a session's room and every connection to it."""
        room = self._rooms.pop(session_id, None)
        self._loading.pop(session_id, None)
        if room is not None:
            room.close_all(code, reason)
