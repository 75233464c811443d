"""Changes on their way from the participant who made them to the others: stored first, sent
once committed, in the order they were made.

What anyone has seen is on disk: a change is sent only once it, and every change before it,
is committed (:class:`~kernelpad.sessions.room.persistence.DocumentLog` writes again what
failed to be written, so a change waits for that too). The changes of one commit go out
together; all one typist's, they go out as one merged update, one message per reader instead of
one per keystroke.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass

from pycrdt import merge_updates

from kernelpad.sessions.room.persistence import DocumentLog
from kernelpad.sessions.room.text_sync import TextSync
from kernelpad.sessions.room.yjs import YjsSync


@dataclass(slots=True)
class _Unsent:
    """A change not yet sent to the others: ``committed`` is None until its commit completes
    (False: storage closed first). Or, with ``then``, no change: something to do once every
    change before it is committed."""

    update: bytes
    origin: object | None
    committed: bool | None = None
    then: Callable[[], None] | None = None


class Relay:
    """Stores each change of a document in ``log`` and sends it, once committed, to the Yjs
    connections (``yjs``) and the JSON ones (``text``)."""

    def __init__(self, log: DocumentLog, yjs: YjsSync, text: TextSync) -> None:
        self.log = log
        self.yjs = yjs
        self.text = text
        self._unsent: collections.deque[_Unsent] = collections.deque()
        # Committed changes not yet sent (and what to do after them).
        self._outbox: list[_Unsent] = []
        self._flush: asyncio.Handle | None = None

    def changed(self, update: bytes, origin: object | None) -> None:
        """A change of the document, made by ``origin`` (a peer; None: kernelpad)."""
        unsent = _Unsent(update, origin)
        self._unsent.append(unsent)

        def stored(committed: bool) -> None:
            unsent.committed = committed
            self._committed()

        if not self.log.append(update, getattr(origin, "client_id", None), stored):
            stored(True)  # storage has closed: the server is stopping

    def after_stored(self, then: Callable[[], None]) -> None:
        """Call ``then`` once every change made so far is committed, in order with them: what
        it shows (a run's outputs) is on disk when anyone sees it."""
        self._unsent.append(_Unsent(b"", None, True, then))
        self._committed()

    def _committed(self) -> None:
        """Move what is committed, from the oldest change on, to the outbox (commits complete
        in order, except a failed one written again later: what comes after it waits). A
        change storage closed on before it was committed is not sent."""
        while self._unsent and self._unsent[0].committed is not None:
            unsent = self._unsent.popleft()
            if unsent.committed:
                self._outbox.append(unsent)
        if self._outbox and self._flush is None:
            self._flush = asyncio.get_running_loop().call_soon(self._deliver)

    def _deliver(self) -> None:
        """Send what was committed since the last delivery (see the module)."""
        self._flush = None
        outbox, self._outbox = self._outbox, []
        changes: list[_Unsent] = []
        for unsent in outbox:
            if unsent.then is None:
                changes.append(unsent)
                continue
            # The changes up to here are sent first: what follows them shows what they wrote.
            self._send(changes)
            changes = []
            unsent.then()
        self._send(changes)

    def _send(self, changes: list[_Unsent]) -> None:
        if not changes:
            return
        origin = changes[0].origin
        if len(changes) > 1 and all(change.origin is origin for change in changes):
            self.yjs.relay(merge_updates(*(change.update for change in changes)), origin)
        else:
            for change in changes:
                self.yjs.relay(change.update, change.origin)
        for change in changes:
            self.text.changed(change.origin)
