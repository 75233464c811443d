"""What a live document leaves on disk: every update in the record, the document in one piece
now and then, and the session's ``code`` column.

Writes go to the store's database thread and are never awaited here: the room hands them over
in the order they were made, and the store keeps that order (a snapshot is queued behind every
update before it and ahead of every later one, so nothing is lost between the two).
"""

from __future__ import annotations

import asyncio
import logging
import time

from kernelpad.sessions.storage.store import SessionStore

log = logging.getLogger(__name__)

# Stored updates of a live document folded into one after this many new ones.
COMPACT_AFTER = 2000
# How long the session's ``code`` column may lag behind the document (seconds): the REST API
# reads a live room's document itself, the column is for sessions nobody has open.
CODE_SAVE_DELAY = 1.0


class DocumentLog:
    """The storage of one session's live document."""

    def __init__(self, store: SessionStore, session_id: str) -> None:
        self.store = store
        self.session_id = session_id
        self._since_compaction = 0
        self._code_saver: asyncio.TimerHandle | None = None
        self._code = ""

    def append(self, update: bytes, author: str | None) -> bool:
        """Store one change of the document, by ``author``; whether the document should now
        be stored in one piece (:meth:`compact`)."""
        try:
            stored = self.store.append_update(self.session_id, update, time.time(), author)
        except RuntimeError:
            # The store has closed (the server is stopping): only a run's last output can
            # still come this late.
            log.warning("session %s: a change came after storage closed", self.session_id)
        else:
            stored.add_done_callback(self._log_failure)
        self._since_compaction += 1
        return self._since_compaction >= COMPACT_AFTER

    def compact(self, state: bytes) -> None:
        """Store the document as it is now (``state``), in one piece, for the next load to
        start from (every change stays in the record too)."""
        self._since_compaction = 0
        done = self.store.save_snapshot(self.session_id, state, time.time())
        done.add_done_callback(self._log_failure)

    @property
    def pending(self) -> bool:
        """Whether changes were stored since the document was last stored in one piece."""
        return self._since_compaction > 0

    def code_changed(self, code: str) -> None:
        """The code is now ``code``: store it soon (one write for a burst of keystrokes)."""
        self._code = code
        if self._code_saver is None:
            loop = asyncio.get_running_loop()
            self._code_saver = loop.call_later(CODE_SAVE_DELAY, self.save_code)

    def save_code(self, code: str | None = None) -> None:
        """Store the session's code now: ``code``, or what :meth:`code_changed` last said, if
        that is not stored yet."""
        if self._code_saver is not None:
            self._code_saver.cancel()
            self._code_saver = None
            code = self._code if code is None else code
        if code is not None:
            saved = self.store.set_code(self.session_id, code)
            saved.add_done_callback(self._log_failure)

    def _log_failure(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error(
                "session %s: storing a document change failed",
                self.session_id,
                exc_info=future.exception(),
            )
