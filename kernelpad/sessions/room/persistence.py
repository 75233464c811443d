"""What a live document leaves on disk: every update in the record, the document in one piece
now and then, and the session's ``code`` column.

The promise is that what anyone has seen is on disk: a change reaches the other participants
only once it is committed (:meth:`DocumentLog.append` says when, and writes again what
failed to be written, until it is). Writes are batched by the store (those of one turn of the
event loop, or that arrive while the database thread is busy, commit together), so waiting
costs a commit's latency, not a commit per keystroke. The store keeps their order: a
snapshot is queued behind every update before it and ahead of every later one, so nothing is
lost between the two, and commits complete in the order changes were made.

The ``code`` column (the first code cell, for the REST API and sessions nobody has open) is
written behind the document with one write in flight at a time, each riding with a keystroke's
update (the store's lazy writes): a burst of keystrokes costs a few writes, and once edits stop
the column equals the document as soon as the last write lands (a fifth of a second at most).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from kernelpad.sessions.storage.store import SessionStore

log = logging.getLogger(__name__)

#: ``stored(committed)``: a change was committed (True), or storage closed first (False).
Stored = Callable[[bool], None]

# Stored updates of a live document folded into one after this many new ones.
COMPACT_AFTER = 2000
# A change whose write failed is written again after this many seconds, doubled each time
# up to the most.
RETRY_FIRST = 0.25
RETRY_MAX = 10.0


class DocumentLog:
    """The storage of one session's live document; ``state()`` is the whole document now.
    ``not_saving()`` is called when storing a change fails (once, until one succeeds again)."""

    def __init__(
        self,
        store: SessionStore,
        session_id: str,
        state: Callable[[], bytes],
        not_saving: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.session_id = session_id
        self.state = state
        self.not_saving = not_saving
        self._since_compaction = 0
        self._code: str | None = None  # the code to write next, if it changed
        self._writing = False  # a code write is in flight
        self._failing_since: float | None = None  # when storing changes began to fail

    def append(self, update: bytes, author: str | None, stored: Stored) -> bool:
        """Store one change of the document, by ``author``; ``stored(True)`` once it is
        committed (anyone else may see it then), ``stored(False)`` if storage closes first.
        False if storage has closed already (the server is stopping).

        A write that fails (a full disk, a database that went away) is tried again, a little
        later each time, for as long as storage is open: until it succeeds, nobody else is
        shown the change."""
        if not self._store(update, author, time.time(), stored, 0):
            return False
        self._since_compaction += 1
        if self._since_compaction >= COMPACT_AFTER:
            asyncio.get_running_loop().call_soon(self.compact)
        return True

    def _store(
        self, update: bytes, author: str | None, at: float, stored: Stored, attempt: int
    ) -> bool:
        try:
            written = self.store.append_update(self.session_id, update, at, author)
        except RuntimeError:
            if attempt == 0:
                # Only a run's last output can still come this late.
                log.warning("session %s: a change came after storage closed", self.session_id)
            else:
                log.error(
                    "session %s: storage closed before a change could be saved",
                    self.session_id,
                )
                stored(False)
            return False

        def written_or_again(written: asyncio.Future[None]) -> None:
            if not written.cancelled() and written.exception() is None:
                if self._failing_since is not None:
                    self._saving_again()
                stored(True)
                return
            self._failed(written)
            delay = min(RETRY_FIRST * 2**attempt, RETRY_MAX)
            asyncio.get_running_loop().call_later(
                delay, self._store, update, author, at, stored, attempt + 1
            )

        # Called straight from the store's own wake-up of the loop: no future in between.
        written.add_done_callback(written_or_again)
        return True

    def _failed(self, stored: asyncio.Future[None]) -> None:
        if self._failing_since is not None:
            return  # told once for the whole outage
        self._failing_since = time.monotonic()
        error = None if stored.cancelled() else stored.exception()
        log.error(
            "session %s: storing a document change failed; trying again, and nobody else"
            " sees it (nor anything after it) until it is stored",
            self.session_id,
            exc_info=error,
        )
        self.not_saving()

    def _saving_again(self) -> None:
        log.warning(
            "session %s: document changes are stored again, after %.1f s",
            self.session_id,
            time.monotonic() - (self._failing_since or 0.0),
        )
        self._failing_since = None

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
