"""The database thread: all database work runs on one dedicated thread, never on the event loop.
One thread also means one connection and a strict order: a read submitted after a write sees
that write."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kernelpad.sessions.storage.database import Connection, Database
from kernelpad.sessions.storage.migrations import migrate

T = TypeVar("T")


class DatabaseWorker:
    """One connection to ``database``, used from its own thread (see the module)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="kernelpad-database"
        )
        self._conn: Connection | None = None

    def _call(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, functools.partial(fn, *args))

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
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)

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
