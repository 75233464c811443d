"""The database a DATABASE_URL names. A module of its own so that the base module knows no
back-end and each back-end imports only the base (no circle)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from kernelpad.sessions.storage.database import URL_FORMS, Database
from kernelpad.sessions.storage.sqlite import SQLite


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
        from kernelpad.sessions.storage.postgresql import PostgreSQL

        return PostgreSQL(url)
    raise ValueError(f"unknown kind of database {scheme!r}; expected {URL_FORMS}")


def database_for(url: str | None, default: Path) -> Database:
    """Where sessions are stored: the database ``url`` names, or else the SQLite file
    ``default``."""
    return database_from_url(url) if url else SQLite(default)
