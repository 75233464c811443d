"""A session's history, for its host: the notebook at any time, every change and run in order,
and the runs page by page. All of it is stored, so ended sessions and sessions from before a
restart answer too."""

from __future__ import annotations

import asyncio
from typing import Any

from kernelpad.errors import KernelpadError
from kernelpad.kernels.languages import LanguageRegistry
from kernelpad.sessions.document import SessionDocument, new_notebook
from kernelpad.sessions.models import DocumentChange, Execution, Session
from kernelpad.sessions.notebooks import to_ipynb
from kernelpad.sessions.room.registry import Rooms
from kernelpad.sessions.storage.store import SessionStore


class History:
    """Reads of what a session did. The caller has checked that the host asks."""

    def __init__(self, store: SessionStore, registry: LanguageRegistry, rooms: Rooms) -> None:
        self.store = store
        self.registry = registry
        self.rooms = rooms

    async def notebook(self, session: Session, at: float | None = None) -> dict[str, Any]:
        """The session's notebook as an nbformat 4 notebook file, outputs included; as it was
        at the time ``at`` (seconds since the epoch), if given."""
        room = self.rooms.loaded(session.id)
        if at is None and room is not None:
            cells = room.document.cells()
        else:
            if at is None:
                updates = await self.store.load_updates(session.id)
            else:
                changes = until(await self.store.history(session.id), at)
                updates = [change.update for change in changes]
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

    async def timeline(self, session: Session) -> tuple[list[DocumentChange], list[Execution]]:
        """Every change of the notebook and every run, each in the order they happened."""
        changes = await self.store.history(session.id)
        runs = await self.store.all_executions(session.id)
        return changes, runs

    async def executions(
        self, session: Session, limit: int, offset: int
    ) -> tuple[list[Execution], int]:
        """The session's runs, oldest first, a page at a time."""
        return await self.store.list_executions(session.id, limit, offset)


def until(changes: list[DocumentChange], at: float) -> list[DocumentChange]:
    """The changes that make a notebook as it was at the time ``at``: those stored before
    the first one made after ``at`` (the stored order is the order they were applied in, even
    if a clock stepped back)."""
    for index, change in enumerate(changes):
        if change.at > at:
            return changes[:index]
    return changes
