"""The databases kernelpad stores in: a SQLite file (the default) or a PostgreSQL server (for
several kernelpad processes; see docs/deploy.md).

kernelpad's SQL is written once: queries in the SQL both databases share, with ``?``
placeholders, and the schema as SQLite DDL (:mod:`kernelpad.sessions.storage.migrations`). A
:class:`Connection` takes that SQL and does what differs: connecting, placeholders, how DDL
spells its types, and where the schema version is kept. Rows come back as dicts in both.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
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
    def refused(self, error: Exception) -> bool:
        """Whether ``error`` is the database refusing one statement's data (a constraint, a
        value it cannot hold), which the same statement alone would meet again, rather than
        a state in which every statement fails alike (locked, lost)."""

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
