"""A session's shared notebook: a CRDT document in jupyter_ydoc's notebook shape.

The document is a ``pycrdt`` ``Doc`` read and written through ``jupyter_ydoc.YNotebook``, so a
browser's ``yjs`` / ``@jupyter/ydoc`` sees the same structure, and the notebook converts to and
from nbformat without a mapping of kernelpad's own. Every change is an update (bytes) that is
both stored and sent to the other participants; a document is rebuilt from its stored updates.
"""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from jupyter_ydoc import YNotebook
from pycrdt import Doc, Map, Subscription, Text, TransactionEvent


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


class SessionDocument:
    """The notebook of one session."""

    def __init__(self, language: str, updates: Iterable[bytes] = ()) -> None:
        self.ydoc: Doc[Any] = Doc()
        for update in updates:
            self.ydoc.apply_update(update)
        self.notebook = YNotebook(self.ydoc)
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

    # The first code cell: the session's "code" in the original API.

    def _first_code_cell(self) -> Map[Any] | None:
        for cell in self.notebook.ycells:
            if cell.get("cell_type") == "code":
                return cell  # type: ignore[no-any-return]
        return None

    @property
    def code(self) -> str:
        cell = self._first_code_cell()
        return str(cell["source"]) if cell is not None else ""

    @property
    def language(self) -> str:
        cell = self._first_code_cell()
        if cell is not None:
            metadata = cell.get("metadata")
            ours = metadata.get("kernelpad") if metadata is not None else None
            if ours is not None and ours.get("language"):
                return str(ours["language"])
        return self.default_language

    def cell(self, cell_id: str) -> tuple[str, str] | None:
        """The source and language of the cell ``cell_id``."""
        for cell in self.notebook.ycells:
            if cell.get("id") == cell_id:
                metadata = cell.get("metadata")
                ours = metadata.get("kernelpad") if metadata is not None else None
                language = ours.get("language") if ours is not None else None
                return str(cell["source"]), str(language or self.default_language)
        return None

    def set_outputs(
        self, cell_id: str, outputs: list[dict[str, Any]], execution_count: int | None
    ) -> None:
        """A run's outputs, as the cell's (what a Yjs-only client sees of the run)."""
        for index, cell in enumerate(self.notebook.ycells):
            if cell.get("id") == cell_id:
                value = self.notebook.get_cell(index)
                value["outputs"] = outputs
                value["execution_count"] = execution_count
                self.notebook.set_cell(index, value)
                return

    def replace_code(self, new: str, base: str | None = None) -> None:
        """Make the first code cell's source ``new``, a whole text written on top of ``base``
        (the text its writer last had; default: the current one).

        The change is applied as the smallest edits from ``base`` to ``new``, moved onto the
        current text: edits others made meanwhile elsewhere in the text survive (a whole-text
        replace would erase them).
        """
        cell = self._first_code_cell()
        if cell is None:
            self.notebook.append_cell(new_notebook(new, self.default_language)["cells"][0])
            return
        source: Text = cell["source"]
        current = str(source)
        base = current if base is None else base
        if base == new:
            return
        to_current = _PositionMap(base, current)
        edits = difflib.SequenceMatcher(None, base, new, autojunk=False).get_opcodes()
        with self.ydoc.transaction():
            # From the end backwards, so earlier offsets stay valid.
            for tag, i1, i2, j1, j2 in reversed(edits):
                if tag == "equal":
                    continue
                start, end = to_current(i1), to_current(i2)
                if end > start:
                    del source[start:end]
                if j2 > j1:
                    source.insert(start, new[j1:j2])


class _PositionMap:
    """Maps offsets in one version of a text to the same places in a later version."""

    def __init__(self, old: str, new: str) -> None:
        self.blocks = difflib.SequenceMatcher(None, old, new, autojunk=False).get_matching_blocks()

    def __call__(self, offset: int) -> int:
        after = 0  # where the last unchanged stretch before ``offset`` ends in the new text
        for a, b, size in self.blocks:
            if a <= offset <= a + size:
                return b + (offset - a)
            if a > offset:
                break
            after = b + size
        return after
