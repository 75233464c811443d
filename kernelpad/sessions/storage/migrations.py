"""The schema, as an ordered list of migrations.

A migration is SQLite DDL, translated for PostgreSQL where their types differ (see
:mod:`kernelpad.sessions.storage.postgresql`: types are written in upper case, names in lower
case). The database records the last migration it has had (SQLite in ``PRAGMA user_version``,
PostgreSQL in a table); opening it applies the ones after that, each in its own transaction. A
migration, once released, is never edited: a change of schema is a new entry at the end, so no
upgrade loses data.
"""

from __future__ import annotations

from dataclasses import dataclass

from kernelpad.sessions.storage.database import Connection


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "sessions, participants and executions",
        """
        CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            host_name TEXT NOT NULL,
            language TEXT NOT NULL,
            code TEXT NOT NULL,
            max_participants INTEGER NOT NULL,
            host_token_hash TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            last_activity REAL NOT NULL,
            ended_at REAL,
            end_reason TEXT
        );
        CREATE INDEX sessions_by_status ON sessions (status, created_at);

        CREATE TABLE participants (
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            client_id TEXT NOT NULL,
            display_name TEXT NOT NULL,
            role TEXT NOT NULL,
            joined_at REAL NOT NULL,
            left_at REAL,
            PRIMARY KEY (session_id, client_id)
        );

        CREATE TABLE executions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            language TEXT NOT NULL,
            code TEXT NOT NULL,
            status TEXT NOT NULL,
            stdout TEXT NOT NULL,
            stderr TEXT NOT NULL,
            outputs TEXT NOT NULL,
            error TEXT,
            execution_count INTEGER,
            time_limit_ms INTEGER NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL NOT NULL,
            duration_ms REAL NOT NULL,
            queued_ms REAL NOT NULL,
            timed_out INTEGER NOT NULL,
            state_kept INTEGER NOT NULL,
            kernel_restarted INTEGER NOT NULL,
            new_kernel INTEGER NOT NULL,
            output_truncated INTEGER NOT NULL,
            notices TEXT NOT NULL
        );
        CREATE INDEX executions_by_session ON executions (session_id, seq);
        """,
    ),
    Migration(
        2,
        "the shared notebook: its CRDT updates, in order",
        """
        CREATE TABLE document_updates (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            data BLOB NOT NULL,
            created_at REAL NOT NULL
        );
        CREATE INDEX document_updates_by_session ON document_updates (session_id, seq);
        """,
    ),
    Migration(
        3,
        "roles: participant tokens and removal; the host's settings and private notes",
        """
        ALTER TABLE sessions ADD COLUMN notes TEXT NOT NULL DEFAULT '';
        ALTER TABLE sessions ADD COLUMN editing_locked INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sessions ADD COLUMN candidate_execution INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE participants ADD COLUMN token_hash TEXT;
        ALTER TABLE participants ADD COLUMN removed_at REAL;
        """,
    ),
    Migration(
        4,
        "the interview record: every notebook change kept with its author, loading from a"
        " snapshot; who ran what, in which cell",
        """
        ALTER TABLE document_updates ADD COLUMN author TEXT;
        CREATE TABLE document_snapshots (
            session_id TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
            upto_seq BIGINT NOT NULL,
            data BLOB NOT NULL,
            created_at REAL NOT NULL
        );
        ALTER TABLE executions ADD COLUMN cell_id TEXT;
        ALTER TABLE executions ADD COLUMN author TEXT;
        """,
    ),
    Migration(
        5,
        "the host's limits for an interview: a run's time, runs a participant may start a minute",
        """
        ALTER TABLE sessions ADD COLUMN time_limit REAL;
        ALTER TABLE sessions ADD COLUMN runs_per_minute INTEGER;
        """,
    ),
    Migration(
        6,
        "the question beside the notebook and its suggested length; whether candidates may"
        " read the final notebook after the end",
        """
        ALTER TABLE sessions ADD COLUMN statement TEXT NOT NULL DEFAULT '';
        ALTER TABLE sessions ADD COLUMN suggested_minutes INTEGER;
        ALTER TABLE sessions ADD COLUMN review_after_end INTEGER NOT NULL DEFAULT 1;
        """,
    ),
    Migration(
        7,
        "questions with tests: the tests as the grader runs them (hidden ones too), kept apart"
        " from everything a candidate may read; every grading; whether candidates see scores",
        """
        ALTER TABLE sessions ADD COLUMN share_score INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE session_tests (
            session_id TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
            data TEXT NOT NULL
        );
        CREATE TABLE grades (
            id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            at REAL NOT NULL,
            author TEXT,
            results TEXT NOT NULL,
            duration REAL NOT NULL
        );
        CREATE INDEX grades_by_session ON grades (session_id, at);
        """,
    ),
    Migration(
        8,
        "the kernel each session's language runs in, where a server after this one can take it"
        " back (kernels on a gateway)",
        """
        CREATE TABLE session_kernels (
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            language TEXT NOT NULL,
            kernel_id TEXT NOT NULL,
            PRIMARY KEY (session_id, language)
        );
        """,
    ),
    Migration(
        9,
        "which process drives each session, for several processes on one database",
        """
        CREATE TABLE session_leases (
            session_id TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
            holder TEXT NOT NULL,
            expires_at REAL NOT NULL,
            wanted_by TEXT
        );
        CREATE INDEX session_leases_by_holder ON session_leases (holder);
        """,
    ),
)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer kernelpad than this one."""


def migrate(conn: Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Bring the schema of ``conn`` up to date; return the version it is at."""
    current = conn.schema_version()
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise SchemaTooNew(
            f"the database is at schema version {current}, but this kernelpad knows only up to"
            f" {latest}; upgrade kernelpad or use another database"
        )
    for migration in migrations:
        if migration.version > current:
            conn.apply_migration(migration.version, migration.sql)
            current = migration.version
    return current
