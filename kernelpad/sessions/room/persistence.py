"""What a live document leaves on disk: every update in the record, the document in one piece
now and then, and the session's ``code`` column.

The promise is that what anyone has seen is on disk: a change reaches the other participants
only once it is committed (:meth:`DocumentLog.append` gives the commit to wait for). Writes are
batched by the store (those that arrive while the database thread is busy commit together), so
waiting costs a commit's latency, not a commit per keystroke. The store keeps their order: a
snapshot is queued behind every update before it and ahead of every later one, so nothing is
lost between the two, and commits complete in the order changes were made.

The ``code`` column (the first code cell, for the REST API and sessions nobody has open) is
written behind the document with one write in flight at a time: a burst of keystrokes costs a
few writes, and once edits stop the column equals the document as soon as the last write lands.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from kernelpad.sessions.storage.store import SessionStore

log = logging.getLogger(__name__)

# Stored updates of a live document folded into one after this many new ones.
COMPACT_AFTER = 2000


class DocumentLog:
    """The storage of one session's live document; ``state()`` is the whole document now."""

    def __init__(self, store: SessionStore, session_id: str, state: Callable[[], bytes]) -> None:
        self.store = store
        self.session_id = session_id
        self.state = state
        self._since_compaction = 0
        self._code: str | None = None  # the code to write next, if it changed
        self._writing = False  # a code write is in flight

    def append(self, update: bytes, author: str | None) -> asyncio.Future[None] | None:
        """Store one change of the document, by ``author``: the commit to wait for before
        anyone else sees it (None if storage has closed: the server is stopping)."""
        try:
            stored = self.store.append_update(self.session_id, update, time.time(), author)
        except RuntimeError:
            # Only a run's last output can still come this late.
            log.warning("session %s: a change came after storage closed", self.session_id)
            return None
        stored.add_done_callback(self._log_failure)
        self._since_compaction += 1
        if self._since_compaction >= COMPACT_AFTER:
            asyncio.get_running_loop().call_soon(self.compact)
        return stored

    def compact(self) -> None:
        """Store the document as it is now, in one piece, for the next load to start from
        (every change stays in the record too)."""
        self._since_compaction = 0
        done = self.store.save_snapshot(self.session_id, self.state(), time.time())
        done.add_done_callback(self._log_failure)

    @property
    def pending(self) -> bool:
        """Whether changes were stored since the document was last stored in one piece."""
        return self._since_compaction > 0

    def save_code(self, code: str) -> None:
        """Store ``code`` as the session's code: now, or right after the write in flight
        (only the newest code is written then)."""
        self._code = code
        if not self._writing:
            self._write_code()

    def _write_code(self) -> None:
        code, self._code = self._code, None
        if code is None:
            return
        try:
            saved = self.store.set_code(self.session_id, code)
        except RuntimeError:
            log.warning("session %s: its code came after storage closed", self.session_id)
            return
        self._writing = True
        saved.add_done_callback(self._code_written)

    def _code_written(self, saved: asyncio.Future[None]) -> None:
        self._writing = False
        self._log_failure(saved)
        self._write_code()

    def _log_failure(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error(
                "session %s: storing a document change failed",
                self.session_id,
                exc_info=future.exception(),
            )
