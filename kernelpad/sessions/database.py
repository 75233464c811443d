"""The databases kernelpad stores in: a SQLite file (the default) or a PostgreSQL server (for
several kernelpad processes; see docs/deploy.md).

kernelpad's SQL is written once: queries in the SQL both databases share, with ``?``
placeholders, and the schema as SQLite DDL (:mod:`kernelpad.sessions.migrations`). A
:class:`Connection` takes that SQL and does what differs: connecting, placeholders, how DDL
spells its types, and where the schema version is kept. Rows come back as dicts in both.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kernelpad.errors import KernelpadError

Row = dict[str, Any]

# How DATABASE_URL may look, for error messages.
URL_FORMS = (
    "sqlite:///relative/path, sqlite:////absolute/path"
    " or postgresql://user:password@host:port/database"
)


class Rows(Protocol):
    """What a statement returns: a DB-API cursor whose rows are dicts."""

    def fetchone(self) -> Row | None: ...

    def fetchall(self) -> list[Row]: ...

    def __iter__(self) -> Iterator[Row]: ...


class DatabaseUnavailable(KernelpadError):
    """The database server cannot be reached, or the connection to it was lost. (Its message
    is for the operator: it names the database, its password masked.)"""

    code = "database_unavailable"
    public_message = "kernelpad cannot reach its database just now; try again in a moment."


class Connection(ABC):
    """One open connection in autocommit mode, taking kernelpad's SQL. Used from one thread at
    a time (the store's)."""

    @abstractmethod
    def execute(self, sql: str, args: Sequence[Any] = ()) -> Rows:
        """Run one statement, with ``?`` placeholders."""

    @abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A block whose statements commit together, or not at all if it raises."""

    @abstractmethod
    def schema_version(self) -> int:
        """The version of the last migration applied; 0 for an empty database."""

    @abstractmethod
    def apply_migration(self, version: int, sql: str) -> None:
        """Run a migration's SQLite DDL and record ``version``, in one transaction."""

    @abstractmethod
    def close(self) -> None: ...


class Database(ABC):
    """Where kernelpad's data lives. ``str()`` names it for logs, without secrets."""

    @abstractmethod
    def connect(self) -> Connection:
        """Open a connection (blocking: call it off the event loop)."""


@dataclass(frozen=True)
class SQLite(Database):
    path: Path

    def connect(self) -> Connection:
        return _SQLiteConnection(self.path)

    def __str__(self) -> str:
        return f"SQLite {self.path}"


def database_from_url(url: str) -> Database:
    """The database a DATABASE_URL names; ValueError, saying why, if it names none."""
    scheme, separator, rest = url.partition("://")
    # The messages never quote the URL: it may hold a password.
    if not separator:
        raise ValueError(f"not a URL; expected {URL_FORMS}")
    if scheme == "sqlite":
        # As SQLAlchemy reads it: sqlite:/// then the path, relative unless it starts with /.
        if not rest.startswith("/") or rest == "/":
            raise ValueError(f"a SQLite URL has no host and needs a path: {URL_FORMS}")
        return SQLite(Path(rest[1:]))
    if scheme in ("postgresql", "postgres"):
        if importlib.util.find_spec("psycopg") is None:
            raise ValueError(
                "a PostgreSQL URL needs the psycopg driver: pip install 'kernelpad[postgresql]'"
            )
        from kernelpad.sessions.postgresql import PostgreSQL

        return PostgreSQL(url)
    raise ValueError(f"unknown kind of database {scheme!r}; expected {URL_FORMS}")


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
