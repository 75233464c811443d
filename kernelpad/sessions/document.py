"""A session's shared notebook: a CRDT document in jupyter_ydoc's notebook shape.

The document is a ``pycrdt`` ``Doc`` read and written through ``jupyter_ydoc.YNotebook``, so a
browser's ``yjs`` / ``@jupyter/ydoc`` sees the same structure, and the notebook converts to and
from nbformat without a mapping of kernelpad's own. Every change is an update (bytes) that is
both stored and sent to the other participants; a document is rebuilt from its stored updates.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Array, Doc, Map, Subscription, Text, TransactionEvent
from pycrdt._base import BaseType

# The notebook's shared types (jupyter_ydoc's names): a change may add to nothing else.
ROOTS = ("cells", "meta", "state")


def new_notebook(code: str, language: str) -> dict[str, Any]:
    """An nbformat notebook with one code cell."""
    return {
        "cells": [
            {
                "id": uuid.uuid4().hex[:12],
                "cell_type": "code",
                "source": code,
                "metadata": {"kernelpad": {"language": language}},
                "outputs": [],
                "execution_count": None,
            }
        ],
        "metadata": {"kernelpad": {"language": language}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


# What a run cut short by a server's stop says, under what it printed until then.
CUT_SHORT = {
    "output_type": "stream",
    "name": "stderr",
    "text": "This run stopped here: the server restarted while it ran, and what it printed"
    " after this point, if anything, is not shown. If its kernel could not be kept, the next"
    " run says so.\n",
}


class SessionDocument:
    """The notebook of one session."""

    def __init__(self, language: str, updates: Iterable[bytes] = ()) -> None:
        self.ydoc: Doc[Any] = Doc()
        for update in updates:
            self.ydoc.apply_update(update)
        self.notebook = YNotebook(self.ydoc)
        # The cells' array, found once: each lookup of a root type by name is a write
        # transaction in pycrdt, a fifth of reading the code once a keystroke.
        self.cell_array: Array[Any] = self.ydoc.get("cells", type=Array)
        self.default_language = language

    @classmethod
    def create(cls, code: str, language: str) -> SessionDocument:
        document = cls(language)
        document.notebook.set(new_notebook(code, language))
        return document

    def observe(self, callback: Callable[[bytes], None]) -> Subscription:
        """Call ``callback`` with every update made to the document, from anywhere."""

        def on_change(event: TransactionEvent) -> None:
            callback(event.update)

        return self.ydoc.observe(on_change)

    def state(self) -> bytes:
        """The whole document as one update."""
        return self.ydoc.get_update()

    def apply(self, update: bytes) -> None:
        self.ydoc.apply_update(update)

    def roots(self) -> list[BaseType]:
        """The shared types a client can change: the cells, the notebook's metadata and
        state (jupyter_ydoc's names)."""
        cells, meta, state = ROOTS
        return [
            self.cell_array,
            self.ydoc.get(meta, type=Map),
            self.ydoc.get(state, type=Map),
        ]

    def sizes(self) -> tuple[int, int]:
        """How much participants have put in the notebook, in characters: in all, and in its
        largest cell's source. Everything counts but run outputs, which kernelpad writes
        within limits of its own. (Reads the whole document: for checks near a limit.)"""
        cells = self.cell_array
        meta, state = self.ydoc.get("meta", type=Map), self.ydoc.get("state", type=Map)
        total, largest = len(str(meta)) + len(str(state)), 0
        for item in cells:
            if not isinstance(item, Map):
                total += len(str(item))
                continue
            for key, value in item.items():
                if key == "outputs":
                    continue
                size = len(str(value))
                total += size
                if key == "source":
                    largest = max(largest, size)
        return total, largest

    def cells(self) -> list[dict[str, Any]]:
        """The cells as plain values (anything in the list that is not a cell left out)."""
        return [cell.to_py() or {} for cell in self._cells()]

    # The first code cell: the session's "code" in the original API.

    def _cells(self) -> list[Map[Any]]:
        """The cells, skipping anything in the list that is not one (a client can put
        anything there: it must not break the session)."""
        return [cell for cell in self.cell_array if isinstance(cell, Map)]

    def _first_code_cell(self) -> Map[Any] | None:
        for cell in self.cell_array:  # the first is enough: not every cell made a Map
            if isinstance(cell, Map) and cell.get("cell_type") == "code":
                return cell
        return None

    @property
    def code(self) -> str:
        # Read in one transaction: pycrdt makes one for each read it is not given.
        with self.ydoc.transaction():
            cell = self._first_code_cell()
            source = cell.get("source") if cell is not None else None
            return str(source) if source is not None else ""

    @property
    def language(self) -> str:
        with self.ydoc.transaction():
            cell = self._first_code_cell()
            return (_language(cell) if cell is not None else "") or self.default_language

    def cell(self, cell_id: str) -> tuple[str, str] | None:
        """The source and language of the cell ``cell_id``."""
        for cell in self._cells():
            if cell.get("id") == cell_id:
                return str(cell.get("source", "")), _language(cell) or self.default_language
        return None

    def is_locked(self, cell_id: str) -> bool:
        """Whether the cell ``cell_id`` is the host's alone (see :func:`locked_cell`)."""
        return any(c.get("id") == cell_id and locked_cell(c) for c in self._cells())

    def first_code_cell_locked(self) -> bool:
        cell = self._first_code_cell()
        return cell is not None and locked_cell(cell)

    def grade_id(self, cell_id: str) -> str | None:
        """The nbgrader ``grade_id`` of the code cell ``cell_id``, if it has one."""
        cell = self._code_cell(cell_id)
        metadata = cell.get("metadata") if cell is not None else None
        nbgrader = metadata.get("nbgrader") if isinstance(metadata, Map) else None
        # A nested value is a plain dict, or a Map if a client wrote one.
        grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, dict | Map) else None
        return grade_id if isinstance(grade_id, str) else None

    def _code_cell(self, cell_id: str) -> Map[Any] | None:
        for cell in self._cells():
            if cell.get("id") == cell_id and cell.get("cell_type") == "code":
                return cell
        return None

    # A run's outputs, in the cell (what a Yjs-only client sees of the run). Only the outputs,
    # the count and the state change: the source, which someone may be typing in, is left
    # alone. A cell deleted during its run just gets nothing.

    def begin_run(self, cell_id: str) -> None:
        """A run of the cell starts: its old outputs go, as in Jupyter."""
        cell = self._code_cell(cell_id)
        if cell is not None:
            with self.ydoc.transaction():
                self.notebook._set_ycell_outputs(cell, [])
                cell["execution_count"] = None
                cell["execution_state"] = "running"

    def append_outputs(self, cell_id: str, outputs: list[dict[str, Any]]) -> None:
        """Outputs of the cell's run, in the order they came; a stream output continues the
        text of the one before it if that is the same stream."""
        cell = self._code_cell(cell_id)
        if cell is None:
            return
        with self.ydoc.transaction():
            youtputs = cell.get("outputs")
            if not isinstance(youtputs, Array):
                youtputs = cell["outputs"] = Array()
            for output in outputs:
                text = _stream_text(youtputs, output)
                if text is not None:
                    text.insert(len(text), str(output.get("text", "")))
                else:
                    # jupyter_ydoc's own form (a stream's text as Text, to grow in place).
                    youtputs.extend(self.notebook._create_youtputs([output]))

    def reset_running(self) -> None:
        """Mark every cell idle (no run is going on when a document is loaded), and say on each
        that was running why its run stopped there: whoever reads it must not wait for more."""
        running = [cell for cell in self._cells() if cell.get("execution_state") == "running"]
        if running:
            with self.ydoc.transaction():
                for cell in running:
                    cell["execution_state"] = "idle"
                    youtputs = cell.get("outputs")
                    if not isinstance(youtputs, Array):
                        youtputs = cell["outputs"] = Array()
                    youtputs.extend(self.notebook._create_youtputs([CUT_SHORT]))

    def end_run(
        self,
        cell_id: str,
        execution_count: int | None,
        outputs: Sequence[dict[str, Any]] = (),
    ) -> None:
        """The cell's run ended with ``execution_count``, its last ``outputs`` (those not yet
        appended) with it: one change of the document, one stored update, not two."""
        cell = self._code_cell(cell_id)
        if cell is not None:
            with self.ydoc.transaction():
                if outputs:
                    self.append_outputs(cell_id, list(outputs))
                cell["execution_count"] = execution_count
                cell["execution_state"] = "idle"

    def replace_code(self, new: str, base: str | None = None) -> None:
        """Make the first code cell's source ``new``, a whole text written on top of ``base``
        (the text its writer last had; default: the current one).

        The writer's change (what differs between ``base`` and ``new``, found as the span
        between their common beginning and end) is made on the current text, at the place it
        maps to: edits others made meanwhile outside that span survive. Linear in the size of
        the texts, whatever they hold.
        """
        cell = self._first_code_cell()
        if cell is None:
            self.notebook.append_cell(new_notebook(new, self.default_language)["cells"][0])
            return
        source = cell.get("source")
        if not isinstance(source, Text):
            return
        current = str(source)
        base = current if base is None else base
        start, base_end, new_end = changed_span(base, new)
        if start == base_end and start == new_end:
            return
        begin, end = _map_span(base, current, start, base_end)
        # pycrdt counts a text's offsets in UTF-8 bytes, not characters.
        at = _utf8_length(current[:begin])
        with self.ydoc.transaction():
            if end > begin:
                del source[at : at + _utf8_length(current[begin:end])]
            if new_end > start:
                source.insert(at, new[start:new_end])

    # Cells moved, deleted and brought back: kernelpad's changes, outputs and all (a
    # participant may not write outputs, see kernelpad.sessions.room.guard).

    def find_cell(self, cell_id: str) -> int | None:
        """The position of the cell ``cell_id``, if there is one."""
        for position, cell in enumerate(self.cell_array):
            if isinstance(cell, Map) and cell.get("id") == cell_id:
                return position
        return None

    def move_cell(self, cell_id: str, index: int) -> int | None:
        """Move the cell ``cell_id`` to ``index`` (clamped to the notebook); where it was, or
        None if there is no such cell. Yjs has no move: the cell is copied to its new place
        and deleted from the old, in one change."""
        position = self.find_cell(cell_id)
        if position is None:
            return None
        cells = self.cell_array
        index = max(0, min(index, len(cells) - 1))
        if index != position:
            with self.ydoc.transaction():
                value = self.delete_cell(cell_id)
                assert value is not None
                self.insert_cell(index, value[1])
        return position

    def delete_cell(self, cell_id: str) -> tuple[int, dict[str, Any]] | None:
        """Delete the cell ``cell_id``: where it was and what it held (to bring it back)."""
        position = self.find_cell(cell_id)
        if position is None:
            return None
        cells = self.cell_array
        value = cells[position].to_py() or {}
        del cells[position]
        return position, value

    def insert_cell(self, index: int, value: dict[str, Any]) -> None:
        """Put a cell, as :meth:`delete_cell` gave it, at ``index`` (clamped)."""
        cells = self.cell_array
        state = value.get("execution_state")
        with self.ydoc.transaction():
            cell = self.notebook.create_ycell(value)
            cells.insert(max(0, min(index, len(cells))), cell)
            if state is not None:  # create_ycell makes every code cell idle
                cell["execution_state"] = state


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _stream_text(youtputs: Array[Any], output: dict[str, Any]) -> Text | None:
    """The text of the last output, if ``output`` continues its stream."""
    if output.get("output_type") != "stream" or not len(youtputs):
        return None
    last = youtputs[len(youtputs) - 1]
    if not isinstance(last, Map) or last.get("output_type") != "stream":
        return None
    text = last.get("text")
    return text if isinstance(text, Text) and last.get("name") == output.get("name") else None


def _language(cell: Map[Any]) -> str:
    """The language a cell names in ``metadata.kernelpad.language``, or ""."""
    metadata = cell.get("metadata")
    ours = metadata.get("kernelpad") if isinstance(metadata, Map) else None
    language = ours.get("language") if isinstance(ours, (Map, dict)) else None
    return language if isinstance(language, str) else ""


def changed_span(old: str, new: str) -> tuple[int, int, int]:
    """Where ``new`` differs from ``old``: ``(start, end in old, end in new)``, between their
    common beginning and their common end."""
    limit = min(len(old), len(new))
    start = 0
    while start < limit and old[start] == new[start]:
        start += 1
    tail = 0
    while tail < limit - start and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    return start, len(old) - tail, len(new) - tail


def _map_span(base: str, current: str, start: int, end: int) -> tuple[int, int]:
    """The span ``base[start:end]`` in ``current``, a later version of ``base``: offsets in the
    part the two share at the beginning stay, offsets in the part they share at the end keep
    their distance from the end; offsets in between map to the edge of what changed."""
    common_start, base_changed_end, current_changed_end = changed_span(base, current)

    def place(offset: int) -> int:
        if offset <= common_start:
            return offset
        if offset >= base_changed_end:
            return current_changed_end + (offset - base_changed_end)
        return current_changed_end

    begin = place(start)
    return begin, max(begin, place(end))


def locked_cell(cell: Map[Any]) -> bool:
    """Whether a cell is the host's alone: a test or a locked cell by nbgrader's rule (an answer
    never is), or one Jupyter's metadata says is not editable."""
    metadata = cell.get("metadata")
    if not isinstance(metadata, Map):
        return False
    nbgrader = metadata.get("nbgrader")
    if isinstance(nbgrader, dict | Map):
        if nbgrader.get("solution"):
            return False
        if nbgrader.get("grade") or nbgrader.get("locked"):
            return True
    return metadata.get("editable") is False
