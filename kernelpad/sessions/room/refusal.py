"""Changes a room may have to take back, and how it knows when it must.

A CRDT cannot refuse an update by ignoring it: the client that made it keeps it, and every later
update of that client depends on it, so none of them would ever be integrated again (a locked
candidate's whole session of typing lost, while their page said "Connected"). A change that may
be refused is therefore applied like any other, under an undo manager, and, if refused, undone
at once by kernelpad. Both the change and its undoing reach every copy, the author's included:
every copy converges on the same text, and later changes integrate as usual.

Whether a change could take the notebook past its size limits is known without reading the
document: an update of ``n`` bytes adds at most ``n`` characters (Yjs encodes text as UTF-8),
so the room keeps upper bounds of its sizes and measures the document only when an update could
cross a limit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pycrdt import UndoManager

from kernelpad.sessions.access import DocumentLimits
from kernelpad.sessions.document import SessionDocument

T = TypeVar("T")

# The origin of a transaction that may be taken back (the undo manager tracks only these).
REFUSABLE = "kernelpad:refusable"


def undo_manager(document: SessionDocument) -> UndoManager:
    """An undo manager of ``document`` that tracks only changes that may be taken back. One per
    document, made once and kept: a pycrdt undo manager must not be dropped while its document
    is in a transaction, which a garbage collection at any moment could do to a short-lived
    one."""
    undo = UndoManager(scopes=document.roots(), capture_timeout_millis=0)
    undo.include_origin(REFUSABLE)
    return undo


def apply_refusably(
    document: SessionDocument,
    undo: UndoManager,
    apply: Callable[[], T],
    refusal: Callable[[], Exception | None],
    author: Callable[[], contextlib.AbstractContextManager[None]],
) -> tuple[T, Exception | None]:
    """Run ``apply`` (which changes ``document``) as ``author()`` says whose change it is,
    then ask ``refusal`` whether the change may stay; if it says no, undo the change
    (kernelpad's own change, which everyone gets). ``undo`` is the document's
    :func:`undo_manager`. Returns what ``apply`` returned and the refusal, if any."""
    try:
        # (The undo manager's stacks are empty: they are cleared after each use.)
        # The author's block holds the whole transaction: its change is seen (stored, sent)
        # as the transaction ends, the undoing after, as kernelpad's.
        with author(), document.ydoc.transaction(origin=REFUSABLE):
            result = apply()
        if not undo.can_undo():
            # It changed nothing (an empty sync step 2, sent on every connection, say):
            # there is nothing to refuse, and nobody to tell.
            return result, None
        refused = refusal()
        if refused is not None:
            while undo.can_undo():
                undo.undo()
        return result, refused
    finally:
        undo.clear()


@dataclass
class SizeBound:
    """Upper bounds of a notebook's size and of its largest cell, in characters."""

    limits: DocumentLimits
    total: int
    largest: int

    @classmethod
    def of(cls, document: SessionDocument, limits: DocumentLimits) -> SizeBound:
        return cls(limits, *document.sizes())

    def fits(self, growth: int) -> bool:
        """Whether ``growth`` more characters surely keep the notebook within its limits."""
        return (
            self.total + growth <= self.limits.max_notebook_size
            and self.largest + growth <= self.limits.max_cell_size
        )

    def grew(self, growth: int) -> None:
        self.total += growth
        self.largest += growth

    def measure(self, document: SessionDocument) -> tuple[int, int]:
        """The document's sizes now (read in full), which become the bounds."""
        self.total, self.largest = document.sizes()
        return self.total, self.largest
