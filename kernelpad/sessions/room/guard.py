"""What only kernelpad writes in a notebook: a cell's run outputs, its execution count and its
run state. A participant's change to any of them is refused (undone, see :mod:`.refusal`):
otherwise a candidate could show the interviewer outputs their code never printed.

A participant may still add a code cell (with no outputs, no count), delete one, switch a cell
between code and markdown (which clears them), and edit every source and metadata. Moving a
cell, which in Yjs means copying it with its outputs, is kernelpad's to do
(:meth:`~kernelpad.sessions.document.SessionDocument.move_cell`).

The check listens to the cells, each cell, and each cell's outputs, and to nothing inside a
cell's source: typing, the change made thousands of times a minute, costs it nothing. (A deep
observer of the cells would hear every keystroke, at a hundred times the cost of applying it.)
"""

from __future__ import annotations

import contextlib
from typing import Any

from pycrdt import Array, ArrayEvent, Map, MapEvent, Subscription
from pycrdt._base import BaseType

from kernelpad.sessions.document import SessionDocument

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
        self.cells: Array[Any] = document.ydoc.get("cells", type=Array)
        self.trespass: str | None = None  # what the change being watched touched, if it did
        self._watching = False
        self._stale = True  # cells came or went since the watchers were set
        self._watchers: list[tuple[BaseType, Subscription]] = []
        self._cells = self.cells.observe(self._cells_changed)

    def begin(self) -> None:
        """Changes made from now until :meth:`end` are a participant's: :attr:`trespass` says,
        after, whether they touched what only kernelpad writes."""
        if self._stale:
            self._watch_cells()
        self.trespass = None
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
        for cell in self.cells:
            if not isinstance(cell, Map):
                continue
            self._watchers.append((cell, cell.observe(self._cell_changed)))
            outputs = cell.get("outputs")
            if isinstance(outputs, Array):
                self._watchers.append((outputs, outputs.observe_deep(self._outputs_changed)))
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
        delta: list[Any] = getattr(event, "delta", [])
        for change in delta:
            for value in change.get("insert", ()) if isinstance(change, dict) else ():
                if isinstance(value, Map):
                    for key in _CLEARED:
                        if not _clears(key, value.get(key)):
                            self._trespassed(f"a new cell's {key.replace('_', ' ')}")

    def _cell_changed(self, event: MapEvent) -> None:
        keys: dict[str, dict[str, Any]] = getattr(event, "keys", {})
        if "outputs" in keys:
            self._stale = True
        if not self._watching:
            return
        for key, change in keys.items():
            if key in _CLEARED:
                value = None if change.get("action") == "delete" else change.get("newValue")
                if not _clears(key, value):
                    self._trespassed(f"a cell's {key.replace('_', ' ')}")

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
