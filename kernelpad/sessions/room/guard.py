"""What only kernelpad writes in a notebook: a cell's run outputs, its execution count and its
run state. A participant's change to any of them is refused (undone, see :mod:`.refusal`):
otherwise a candidate could show the interviewer outputs their code never printed.

A participant may still add a code cell (with no outputs, no count), delete one, switch a cell
between code and markdown (which clears them), and edit every source and metadata. Moving a
cell, which in Yjs means copying it with its outputs, is kernelpad's to do
(:meth:`~kernelpad.sessions.document.SessionDocument.move_cell`).

A question's locked cells (its tests, and cells marked read-only:
:func:`~kernelpad.sessions.document.locked_cell`) are the host's alone: a candidate's change to
one (its source, its metadata, its type, or deleting it) is refused the same way.

The check listens to the cells, each cell, and each cell's outputs, and to nothing inside a
cell's source: typing, the change made thousands of times a minute, costs it nothing. (A deep
observer of the cells would hear every keystroke, at a hundred times the cost of applying it.)
"""

from __future__ import annotations

import contextlib
from typing import Any

from pycrdt import Array, ArrayEvent, Map, MapEvent, Subscription
from pycrdt._base import BaseType

from kernelpad.sessions.document import SessionDocument, locked_cell

# A cell's keys that only kernelpad writes, and what a participant may set them to (clearing
# them: a code cell made anew, or one made markdown). None stands for "deleted".
_CLEARED: dict[str, tuple[object, ...]] = {
    "outputs": (None,),  # or an empty array, see _clears
    "execution_count": (None,),
    "execution_state": (None, "idle"),
}


class KernelFields:
    """Watches a document for participants' changes to what only kernelpad writes."""

    def __init__(self, document: SessionDocument) -> None:
        self.cells: Array[Any] = document.cell_array
        self.trespass: str | None = None  # what the change being watched touched, if it did
        self._watching = False
        self._locks = False  # the change being watched is a candidate's: locked cells hold
        self._locked: dict[str, str] = {}  # each locked cell's id and source, as last seen
        self._stale = True  # cells came or went since the watchers were set
        self._watchers: list[tuple[BaseType, Subscription]] = []
        self._cells = self.cells.observe(self._cells_changed)

    def begin(self, role: str | None = None) -> None:
        """Changes made from now until :meth:`end` are a participant's (of ``role``):
        :attr:`trespass` says, after, whether they touched what only kernelpad writes, or (a
        candidate's) a locked cell."""
        if self._stale:
            self._watch_cells()
        self.trespass = None
        self._locks = role != "host"
        self._watching = True

    def end(self) -> None:
        self._watching = False

    def close(self) -> None:
        self._unwatch()
        with contextlib.suppress(Exception):
            self.cells.unobserve(self._cells)

    # Watchers are set anew, before a participant's next change, whenever cells come or go or
    # a cell's outputs are replaced: not from within an observer, which runs as a transaction
    # ends.

    def _watch_cells(self) -> None:
        self._unwatch()
        self._locked = _locked_cells(self.cells)
        for cell in self.cells:
            if not isinstance(cell, Map):
                continue
            self._watchers.append((cell, cell.observe(self._cell_changed)))
            outputs = cell.get("outputs")
            if isinstance(outputs, Array):
                self._watchers.append((outputs, outputs.observe_deep(self._outputs_changed)))
            if locked_cell(cell):
                # Only locked cells' text and metadata are listened to: typing elsewhere costs
                # nothing more.
                for part in (cell.get("source"), cell.get("metadata")):
                    if isinstance(part, BaseType):
                        self._watchers.append((part, part.observe_deep(self._locked_changed)))
        self._stale = False

    def _unwatch(self) -> None:
        for shared, subscription in self._watchers:
            with contextlib.suppress(Exception):  # a deleted cell's type may refuse
                shared.unobserve(subscription)
        self._watchers.clear()

    def _cells_changed(self, event: ArrayEvent) -> None:
        self._stale = True
        if not self._watching:
            return
        if self._locks and self._locked and _locked_cells(self.cells) != self._locked:
            self._trespassed("a locked cell")  # deleted, or put back changed
        delta: list[Any] = getattr(event, "delta", [])
        for change in delta:
            for value in change.get("insert", ()) if isinstance(change, dict) else ():
                if isinstance(value, Map):
                    for key in _CLEARED:
                        if not _clears(key, value.get(key)):
                            self._trespassed(f"a new cell's {key.replace('_', ' ')}")

    def _cell_changed(self, event: MapEvent) -> None:
        keys: dict[str, dict[str, Any]] = getattr(event, "keys", {})
        cell = getattr(event, "target", None)
        if "outputs" in keys or (isinstance(cell, Map) and str(cell.get("id")) in self._locked):
            self._stale = True
        if not self._watching:
            return
        if self._locks and self._was_locked(cell, keys):
            self._trespassed("a locked cell")
        for key, change in keys.items():
            if key in _CLEARED:
                value = None if change.get("action") == "delete" else change.get("newValue")
                if not _clears(key, value):
                    self._trespassed(f"a cell's {key.replace('_', ' ')}")

    def _was_locked(self, cell: Any, keys: dict[str, dict[str, Any]]) -> bool:
        """Whether the cell changed was locked (it may not be any more: that is the change)."""
        if isinstance(cell, Map) and (locked_cell(cell) or str(cell.get("id")) in self._locked):
            return True
        return str(keys.get("id", {}).get("oldValue")) in self._locked

    def _locked_changed(self, events: list[Any]) -> None:
        self._stale = True  # the host may change it: what is locked is then the new text
        if self._watching and self._locks:
            self._trespassed("a locked cell")

    def _outputs_changed(self, events: list[Any]) -> None:
        if self._watching:
            self._trespassed("a cell's outputs")

    def _trespassed(self, what: str) -> None:
        if self.trespass is None:
            self.trespass = what


def _clears(key: str, value: object) -> bool:
    """Whether setting ``key`` to ``value`` clears it."""
    if key == "outputs" and isinstance(value, Array):
        return len(value) == 0
    return value in _CLEARED[key]


def _locked_cells(cells: Array[Any]) -> dict[str, str]:
    return {
        str(cell.get("id")): str(cell.get("source"))
        for cell in cells
        if isinstance(cell, Map) and locked_cell(cell)
    }
