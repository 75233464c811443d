"""SQLite, kernelpad's default database: one file in DATA_DIR, WAL mode, one connection."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kernelpad.sessions.storage.database import Connection, Database, Row, Rows


@dataclass(frozen=True)
class SQLite(Database):
    path: Path

    def connect(self) -> Connection:
        return _SQLiteConnection(self.path)

    def __str__(self) -> str:
        return f"SQLite {self.path}"


class _SQLiteConnection(Connection):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.row_factory = _dict_row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        self._conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Rows:
        return self._conn.execute(sql, args)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def schema_version(self) -> int:
        # PRAGMA user_version, as kernelpad has always kept it: existing files need no change.
        return int(self._conn.execute("PRAGMA user_version").fetchone()["user_version"])

    def apply_migration(self, version: int, sql: str) -> None:
        # Processes that start together on one file take turns: BEGIN IMMEDIATE waits for the
        # write lock (busy_timeout), and the version is read again once it is held. The
        # migration and its version are one transaction.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            if self.schema_version() < version:
                for statement in _statements(sql):
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {version:d}")
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def refused(self, error: Exception) -> bool:
        return isinstance(error, sqlite3.Error) and not isinstance(error, sqlite3.OperationalError)

    def close(self) -> None:
        self._conn.close()


def _statements(sql: str) -> Iterator[str]:
    """The statements of a script, one by one (executescript() would commit the transaction
    they must run in)."""
    pending = ""
    for part in sql.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):  # not a ";" inside a string
            if pending.strip(" \t\n;"):
                yield pending
            pending = ""
    if pending.strip(" \t\n;"):
        raise ValueError(f"an incomplete statement in a migration: {pending.strip()[:80]!r}")


def _dict_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Row:
    return {column[0]: value for column, value in zip(cursor.description, values, strict=True)}
