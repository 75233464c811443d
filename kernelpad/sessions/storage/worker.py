"""The database thread: all database work runs on one dedicated thread, never on the event loop.
One thread also means one connection and a strict order: a read submitted after a write sees
that write.

The writes of the documents' record (every keystroke is one) and of runs are queued rather than
submitted one by one: those made in one turn of the event loop (the messages of every socket
read in it) and those that arrive while the thread is busy are written together, in one
transaction, and answered with one wake-up of the event loop. A write nobody waits on (the
``code`` column, which only readers of a session nobody has open read) does not wake the thread
itself: it rides with the next write, or goes on its own within ``LAZY_WITHIN`` seconds. Waking
a thread is the dear part of a small write (on a 2-core virtual machine, most of the event
loop's time in giving it), and each keystroke made two of them.

The thread is kernelpad's own (:class:`DatabaseThread`), not a ``ThreadPoolExecutor``'s: an
executor's task is a concurrent future with its own lock and condition, and a semaphore taken
and given back, on both threads, for every keystroke; a handoff through a ``SimpleQueue`` costs
a little over half the CPU (``bench/edit_cost.py``, ``bench/README.md``)."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from prometheus_client import Histogram

from kernelpad.sessions.storage.database import Connection, Database
from kernelpad.sessions.storage.migrations import migrate

log = logging.getLogger(__name__)

T = TypeVar("T")
# A write, its arguments, its caller's future, and when it was queued (``time.perf_counter``:
# uvloop's ``loop.time()`` counts whole milliseconds; None for a lazy write, which waits on
# purpose).
Write = tuple[Callable[..., None], tuple[Any, ...], "asyncio.Future[None]", float | None]

WRITE_SECONDS = Histogram(
    "kernelpad_database_write_seconds",
    "From a write being queued to the event loop hearing it stored, for the oldest write of"
    " each transaction: what an edit waits before it is relayed, a run before it is told"
    " finished.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)

#: Seconds a lazy write waits for another write to ride with before it goes on its own.
LAZY_WITHIN = 0.2


class DatabaseThread:
    """A thread that runs the tasks it is given, in order, until :meth:`stop`.

    It starts with its first task. It is a daemon, so that a store never closed cannot keep the
    process from exiting; what it was given before the process exits is still done (as an
    executor's queued tasks are)."""

    def __init__(self, name: str = "kernelpad-database") -> None:
        self.name = name
        self._tasks: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` after every task given before it (its caller hears of its outcome its
        own way: what it raises is only logged)."""
        if self._stopped:
            raise RuntimeError("the database thread has stopped")
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
            self._thread.start()
            atexit.register(self.stop)
        self._tasks.put(task)

    def call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """``fn(*args)`` on the thread, in order with every task; its outcome in a future of
        the running loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def task() -> None:
            try:
                result = fn(*args)
            except BaseException as exc:  # the caller hears of it, whatever it is
                loop.call_soon_threadsafe(_conclude, future, None, exc)
            else:
                loop.call_soon_threadsafe(_conclude, future, result, None)

        self.submit(task)
        return future

    def stop(self) -> None:
        """Let the tasks given so far finish, then end the thread (and wait for it)."""
        self._stopped = True
        thread, self._thread = self._thread, None
        if thread is None:
            return
        atexit.unregister(self.stop)
        self._tasks.put(None)
        if thread is not threading.current_thread():
            thread.join()

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            try:
                task()
            except BaseException:  # the thread goes on: later writes must not hang
                log.exception("a task of the database thread failed")


def _conclude(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile: its caller no longer waits
        return
    if error is None:
        future.set_result(result)  # type: ignore[arg-type]
    else:
        future.set_exception(error)


class DatabaseWorker:
    """One connection to ``database``, used from its own thread (see the module)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._thread = DatabaseThread()
        self._conn: Connection | None = None
        # Queued writes not yet taken by the thread, in order, each with its caller's future.
        self._writes: list[Write] = []
        self._writes_lock = threading.Lock()
        # A task of the thread is to come that will take self._writes (guarded by the lock).
        self._taking = False
        # What gives the waiting writes to the thread: at the end of this turn of the event
        # loop, or, for lazy writes alone, within LAZY_WITHIN.
        self._handoff: asyncio.Handle | None = None
        self._lazy: asyncio.TimerHandle | None = None
        self._closed = False

    def _call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        self._hand_over()  # a read submitted after a write sees it, lazy or not
        return self._thread.call(fn, *args)

    async def open(self) -> int:
        """Open (creating if needed) and migrate the database; return its schema version."""
        return await self._call(self._open)

    def _open(self) -> int:
        conn = self.database.connect()
        try:
            version = migrate(conn)
        except BaseException:
            with contextlib.suppress(Exception):  # a connection that failed may not close well
                conn.close()
            raise
        self._conn = conn
        return version

    async def close(self) -> None:
        self._hand_over()  # written before the connection closes: the thread keeps the order
        self._closed = True
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        self._thread.stop()

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("the session store is not open")
        return self._conn

    def _execute(self, sql: str, args: tuple[Any, ...]) -> None:
        self.conn.execute(sql, args)

    def _count(self, sql: str, args: Sequence[Any]) -> int:
        """The ``n`` of a ``SELECT count(*) AS n`` query."""
        row = self.conn.execute(sql, args).fetchone()
        return int(row["n"]) if row else 0

    def _queue(
        self, write: Callable[..., None], args: tuple[Any, ...], lazy: bool = False
    ) -> asyncio.Future[None]:
        """Queue ``write(*args)`` behind the writes queued before it. They are written in
        order by one task of the database thread, together: those of this turn of the event
        loop, and any that come while the thread is busy. A ``lazy`` write waits for the next
        write to go with, ``LAZY_WITHIN`` seconds at most (see the module)."""
        if self._closed:
            raise RuntimeError("the session store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._writes_lock:
            self._writes.append((write, args, future, None if lazy else time.perf_counter()))
            taken = self._taking  # by a task to come, which takes this one too
        if not taken and self._handoff is None:
            if not lazy:
                # Given at the end of this turn, with every write made in it: the writes of
                # the messages read in one turn commit as one (a run's record and its cell's
                # end; under load, the keystrokes of many interviews).
                self._handoff = loop.call_soon(self._hand_over)
            elif self._lazy is None:
                self._lazy = loop.call_later(LAZY_WITHIN, self._hand_over)
        return future

    def _hand_over(self) -> None:
        """Give the thread the writes waiting, unless a task to come takes them already."""
        for handle in (self._handoff, self._lazy):
            if handle is not None:
                handle.cancel()
        self._handoff = self._lazy = None
        with self._writes_lock:
            first = bool(self._writes) and not self._taking
            self._taking = self._taking or first
        if not first:
            return
        # Queued now, in order with every other call: it writes whatever has arrived by the
        # time the thread gets to it.
        try:
            loop = asyncio.get_running_loop()
            self._thread.submit(lambda: self._write_queued(loop))
        except RuntimeError as exc:  # the thread has stopped (the process is exiting)
            with self._writes_lock:
                dropped, self._writes, self._taking = self._writes, [], False
            _settle([(future, exc) for _, _, future, _ in dropped])

    def _write_queued(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._writes_lock:
            batch, self._writes, self._taking = self._writes, [], False
        error: BaseException | None = None
        try:
            with self.conn.transaction():
                for write, args, _, _ in batch:
                    write(*args)
        except BaseException as exc:  # every caller hears of it
            error = exc
        # One write the database refused must not take the others along (another session's
        # keystrokes, a cell's end beside a record it refused): each is tried alone. (Locked
        # or lost, each alone would fail, or wait, as well.)
        alone = isinstance(error, Exception) and len(batch) > 1 and self.conn.refused(error)
        outcomes = [
            (future, self._write_alone(write, args) if alone else error)
            for write, args, future, _ in batch
        ]
        oldest = min((queued for *_, queued in batch if queued is not None), default=None)
        loop.call_soon_threadsafe(_settle, outcomes, oldest)

    def _write_alone(
        self, write: Callable[..., None], args: tuple[Any, ...]
    ) -> BaseException | None:
        try:
            with self.conn.transaction():
                write(*args)
        except Exception as exc:
            return exc
        return None


def _settle(
    outcomes: list[tuple[asyncio.Future[None], BaseException | None]], oldest: float | None = None
) -> None:
    if oldest is not None:
        WRITE_SECONDS.observe(time.perf_counter() - oldest)
    for future, error in outcomes:
        _conclude(future, None, error)
