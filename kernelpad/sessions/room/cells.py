"""A notebook's cells moved, deleted and brought back for a participant, by kernelpad.

Yjs has no move: moving a cell copies it, outputs and all, and bringing a deleted cell back
writes its outputs anew. Only kernelpad writes outputs (:mod:`.guard`), so these changes are
made here, for a participant who may edit, and remembered per participant: their Ctrl+Z outside
an editor (``undo``) brings back the cell they deleted last, or moves back the one they moved.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from kernelpad.errors import CellLocked, InvalidValue
from kernelpad.sessions.access import Action
from kernelpad.sessions.document import SessionDocument

# Cell changes remembered per participant, to be taken back.
KEPT = 20


class Peer(Protocol):
    @property
    def client_id(self) -> str: ...

    @property
    def role(self) -> str: ...


@dataclass(frozen=True)
class _Moved:
    cell_id: str
    came_from: int


@dataclass(frozen=True)
class _Deleted:
    position: int
    value: dict[str, Any]


class CellEdits:
    """``gate(role, action)`` raises unless the role may; ``applying(peer)`` is the block in
    which a change is the peer's (stored with it as the author)."""

    def __init__(
        self,
        document: SessionDocument,
        gate: Callable[[str, Action], None],
        applying: Callable[[object], AbstractContextManager[None]],
    ) -> None:
        self.document = document
        self.gate = gate
        self.applying = applying
        self._done: dict[str, collections.deque[_Moved | _Deleted]] = {}

    def move(self, peer: Peer, cell_id: str, index: int) -> None:
        self.gate(peer.role, Action.EDIT)
        with self.applying(peer):
            came_from = self.document.move_cell(cell_id, index)
        if came_from is None:
            raise InvalidValue(f"There is no cell {cell_id!r} in this notebook.")
        self._remember(peer, _Moved(cell_id, came_from))

    def delete(self, peer: Peer, cell_id: str) -> None:
        self.gate(peer.role, Action.EDIT)
        if peer.role != "host" and self.document.is_locked(cell_id):
            raise CellLocked(
                f"A candidate ({peer.client_id}) tried to delete the locked cell {cell_id}.",
                public="That cell is locked: only the interviewer can delete it.",
            )
        with self.applying(peer):
            deleted = self.document.delete_cell(cell_id)
        if deleted is None:
            raise InvalidValue(f"There is no cell {cell_id!r} in this notebook.")
        self._remember(peer, _Deleted(*deleted))

    def undo(self, peer: Peer) -> str | None:
        """Take back the peer's last cell change still possible; the id of the cell it
        concerned, or None if there was none."""
        self.gate(peer.role, Action.EDIT)
        done = self._done.get(peer.client_id)
        while done:
            last = done.pop()
            with self.applying(peer):
                if isinstance(last, _Deleted):
                    cell_id = str(last.value.get("id", ""))
                    if self.document.find_cell(cell_id) is None:
                        self.document.insert_cell(last.position, last.value)
                        return cell_id
                elif self.document.move_cell(last.cell_id, last.came_from) is not None:
                    return last.cell_id
        return None

    def _remember(self, peer: Peer, change: _Moved | _Deleted) -> None:
        done = self._done.setdefault(peer.client_id, collections.deque(maxlen=KEPT))
        done.append(change)
