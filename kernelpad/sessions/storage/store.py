"""Sessions and their history, in SQLite or PostgreSQL (one set of SQL for both: see
:mod:`kernelpad.sessions.storage.database`), on the database thread
(:mod:`kernelpad.sessions.storage.worker`)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import TypeVar

from kernelpad.sessions.colours import colour_at
from kernelpad.sessions.models import ACTIVE, ENDED, DocumentChange, Execution, Participant, Session
from kernelpad.sessions.storage.grades import GradeRecords
from kernelpad.sessions.storage.rows import (
    EXECUTION_COLUMNS,
    HOST_SETTINGS,
    JSON_FIELDS,
    PARTICIPANT_COLUMNS,
    SESSION_COLUMNS,
    execution_of,
    session_of,
)

T = TypeVar("T")


class SessionStore(GradeRecords):
    """Async access to kernelpad's tables."""

    # Sessions

    async def add_session(self, session: Session) -> None:
        await self._call(self._add_session, session)

    def _add_session(self, s: Session) -> None:
        with self.conn.transaction():
            self.conn.execute(
                f"INSERT INTO sessions ({SESSION_COLUMNS})"
                f" VALUES ({', '.join('?' * len(SESSION_COLUMNS.split(',')))})",
                (
                    s.id,
                    s.name,
                    s.host_name,
                    s.language,
                    s.code,
                    s.max_participants,
                    s.host_token_hash,
                    s.created_at,
                    s.last_activity,
                    s.status,
                    s.ended_at,
                    s.end_reason,
                    s.notes,
                    s.editing_locked,
                    s.candidate_execution,
                    s.time_limit,
                    s.runs_per_minute,
                    s.review_after_end,
                    s.statement,
                    s.suggested_minutes,
                    s.share_score,
                ),
            )
            for p in s.participants:
                self._insert_participant(s.id, p)

    def _insert_participant(self, session_id: str, p: Participant) -> None:
        # A participant saved again (it joined again) keeps its removal and its token: a join
        # that read the session before a removal must not undo it.
        self.conn.execute(
            f"INSERT INTO participants (session_id, {PARTICIPANT_COLUMNS})"
            " VALUES (?,?,?,?,?,?,?,?)"
            " ON CONFLICT (session_id, client_id) DO UPDATE SET"
            " display_name = excluded.display_name, role = excluded.role,"
            " left_at = excluded.left_at,"
            " token_hash = COALESCE(participants.token_hash, excluded.token_hash)"
            " WHERE participants.removed_at IS NULL",
            (
                session_id,
                p.client_id,
                p.display_name,
                p.role,
                p.joined_at,
                p.left_at,
                p.token_hash,
                p.removed_at,
            ),
        )

    async def get_session(self, session_id: str) -> Session | None:
        return await self._call(self._get_session, session_id)

    def _get_session(self, session_id: str) -> Session | None:
        row = self.conn.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        if row is None:
            return None
        session = session_of(row)
        session.participants = [
            Participant(**p, colour=colour_at(position))
            for position, p in enumerate(
                self.conn.execute(
                    f"SELECT {PARTICIPANT_COLUMNS} FROM participants"
                    " WHERE session_id = ? ORDER BY joined_at, client_id",
                    (session_id,),
                )
            )
        ]
        return session

    async def update_session(self, session_id: str, **values: object) -> None:
        """Change what the host may change (:data:`~.rows.HOST_SETTINGS`)."""
        unknown = set(values) - set(HOST_SETTINGS)
        if unknown:
            raise ValueError(f"not a session setting: {sorted(unknown)}")
        if values:
            columns = ", ".join(f"{name} = ?" for name in values)
            await self._call(
                self._execute,
                f"UPDATE sessions SET {columns} WHERE id = ?",
                (*values.values(), session_id),
            )

    async def list_sessions(
        self, limit: int, offset: int, status: str | None = None
    ) -> tuple[list[tuple[Session, int]], int]:
        """A page of sessions, newest first, each with its number of present participants;
        and the number of sessions in all."""
        return await self._call(self._list_sessions, limit, offset, status)

    def _list_sessions(
        self, limit: int, offset: int, status: str | None
    ) -> tuple[list[tuple[Session, int]], int]:
        where, args = ("WHERE status = ?", (status,)) if status else ("", ())
        total = self._count(f"SELECT count(*) AS n FROM sessions {where}", args)
        rows = self.conn.execute(
            f"SELECT {SESSION_COLUMNS} FROM sessions {where}"
            " ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
        sessions = [session_of(row) for row in rows]
        if not sessions:  # (PostgreSQL refuses an empty IN ())
            return [], total
        counts = {
            row["session_id"]: row["n"]
            for row in self.conn.execute(
                "SELECT session_id, count(*) AS n FROM participants WHERE left_at IS NULL"
                f" AND session_id IN ({','.join('?' * len(sessions))}) GROUP BY session_id",
                [s.id for s in sessions],
            )
        }
        return [(session, counts.get(session.id, 0)) for session in sessions], total

    async def save_participant(self, session_id: str, participant: Participant) -> None:
        """Add a participant, or update one who comes back (same ``client_id``)."""
        await self._call(self._insert_participant, session_id, participant)

    async def remove_participant(self, session_id: str, client_id: str, at: float) -> None:
        """The host removed a participant: its token is refused until the host lets it back
        in (kept, so that only that participant can come back as itself)."""
        await self._call(
            self._execute,
            "UPDATE participants SET removed_at = ?, left_at = COALESCE(left_at, ?)"
            " WHERE session_id = ? AND client_id = ?",
            (at, at, session_id, client_id),
        )

    async def readmit_participant(self, session_id: str, client_id: str) -> None:
        """The host lets a removed participant back in: it joins again with a new token."""
        await self._call(
            self._execute,
            "UPDATE participants SET removed_at = NULL WHERE session_id = ? AND client_id = ?",
            (session_id, client_id),
        )

    async def participant_left(self, session_id: str, client_id: str, at: float) -> None:
        """Record when a participant left (only that: a removal meanwhile stays)."""
        await self._call(
            self._execute,
            "UPDATE participants SET left_at = ? WHERE session_id = ? AND client_id = ?",
            (at, session_id, client_id),
        )

    async def end_session(self, session_id: str, at: float, reason: str) -> None:
        await self._call(
            self._execute,
            "UPDATE sessions SET status = ?, ended_at = ?, end_reason = ?, last_activity = ?"
            " WHERE id = ? AND status = ?",
            (ENDED, at, reason, at, session_id, ACTIVE),
        )

    async def expired_sessions(self, created_before: float) -> list[str]:
        return await self._call(self._expired_sessions, created_before)

    def _expired_sessions(self, created_before: float) -> list[str]:
        rows = self.conn.execute(
            "SELECT id FROM sessions WHERE status = ? AND created_at < ?",
            (ACTIVE, created_before),
        )
        return [row["id"] for row in rows]

    async def count_sessions(self, status: str) -> int:
        return await self._call(self._count_sessions, status)

    def _count_sessions(self, status: str) -> int:
        return self._count("SELECT count(*) AS n FROM sessions WHERE status = ?", (status,))

    # Executions

    def add_execution(self, execution: Execution) -> asyncio.Future[None]:
        """Store the record of a run. Queued as the document's changes are
        (:meth:`append_update`), in order with them: queued in the same turn of the event loop
        as the end of a cell's run, both commit in one transaction, not one each (one database
        round trip less before the participants are told)."""
        return self._queue(self._add_execution, (execution,))

    def _add_execution(self, execution: Execution) -> None:
        values = asdict(execution)
        for name in JSON_FIELDS:
            values[name] = json.dumps(values[name])
        columns = [c.strip() for c in EXECUTION_COLUMNS.split(",")]
        self.conn.execute(
            f"INSERT INTO executions ({EXECUTION_COLUMNS}) VALUES ({','.join('?' * len(columns))})",
            [values[c] for c in columns],
        )
        self.conn.execute(
            "UPDATE sessions SET last_activity = ? WHERE id = ?",
            (execution.finished_at, execution.session_id),
        )

    async def list_executions(
        self, session_id: str, limit: int, offset: int
    ) -> tuple[list[Execution], int]:
        return await self._call(self._list_executions, session_id, limit, offset)

    def _list_executions(
        self, session_id: str, limit: int, offset: int
    ) -> tuple[list[Execution], int]:
        total = self._count(
            "SELECT count(*) AS n FROM executions WHERE session_id = ?", (session_id,)
        )
        rows = self.conn.execute(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE session_id = ?"
            " ORDER BY seq LIMIT ? OFFSET ?",
            (session_id, limit, offset),
        ).fetchall()
        return [execution_of(row) for row in rows], total

    async def all_executions(self, session_id: str) -> list[Execution]:
        """Every run of the session, oldest first."""
        return await self._call(self._all_executions, session_id)

    def _all_executions(self, session_id: str) -> list[Execution]:
        rows = self.conn.execute(
            f"SELECT {EXECUTION_COLUMNS} FROM executions WHERE session_id = ? ORDER BY seq",
            (session_id,),
        ).fetchall()
        return [execution_of(row) for row in rows]

    async def count_executions(self, session_id: str, language: str) -> int:
        return await self._call(self._count_executions, session_id, language)

    def _count_executions(self, session_id: str, language: str) -> int:
        return self._count(
            "SELECT count(*) AS n FROM executions WHERE session_id = ? AND language = ?",
            (session_id, language),
        )

    # The shared notebook

    # Every change is kept, in order, with its author: the interview's record, to replay it.
    # Loading the document reads its latest snapshot (the whole document as one update) and
    # only the changes stored after it.

    def append_update(
        self, session_id: str, data: bytes, at: float, author: str | None = None
    ) -> asyncio.Future[None]:
        """Store a document update made by ``author`` (a client_id; None: kernelpad).
        Submitted at once, in order with every other write: the caller need not wait for it,
        and a read made after it sees it.

        Every keystroke of every participant is an update. Those queued in one turn of the
        event loop, and those that arrive while the database thread is busy, are written
        together, in one transaction, and answered with one wake-up of the event loop: under
        load, one write for many keystrokes."""
        return self._queue(self._append_update, (session_id, data, at, author))

    def _append_update(self, session_id: str, data: bytes, at: float, author: str | None) -> None:
        self.conn.execute(
            "INSERT INTO document_updates (session_id, data, created_at, author)"
            " VALUES (?, ?, ?, ?)",
            (session_id, data, at, author),
        )

    def save_snapshot(self, session_id: str, state: bytes, at: float) -> asyncio.Future[None]:
        """Keep ``state``, the whole document as one update, to load from instead of every
        change before it. Queued with the updates (:meth:`append_update`), so that it covers
        exactly those appended before this call: an update appended after it, even one
        written in the same batch, gets a later seq than the snapshot claims."""
        return self._queue(self._save_snapshot, (session_id, state, at))

    def _save_snapshot(self, session_id: str, state: bytes, at: float) -> None:
        # The updates before this call are stored (one thread, in order): the snapshot covers
        # them all, up to the last one's seq.
        upto = self.conn.execute(
            "SELECT max(seq) AS n FROM document_updates WHERE session_id = ?", (session_id,)
        ).fetchone()
        self.conn.execute(
            "INSERT INTO document_snapshots (session_id, upto_seq, data, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET"
            " upto_seq = excluded.upto_seq, data = excluded.data, created_at = excluded.created_at",
            (session_id, (upto["n"] if upto else None) or 0, state, at),
        )

    async def count_updates(self, session_id: str) -> int:
        """How many stored pieces loading the document reads: its snapshot and the changes
        after it (compaction keeps this small)."""
        return len(await self.load_updates(session_id))

    async def load_updates(self, session_id: str) -> list[bytes]:
        """What rebuilds the document as it is now: the snapshot, then later changes."""
        return await self._call(self._load_updates, session_id)

    def _load_updates(self, session_id: str) -> list[bytes]:
        snapshot = self.conn.execute(
            "SELECT upto_seq, data FROM document_snapshots WHERE session_id = ?", (session_id,)
        ).fetchone()
        upto = snapshot["upto_seq"] if snapshot else 0
        rows = self.conn.execute(
            "SELECT data FROM document_updates WHERE session_id = ? AND seq > ? ORDER BY seq",
            (session_id, upto),
        )
        return ([bytes(snapshot["data"])] if snapshot else []) + [bytes(r["data"]) for r in rows]

    async def history(self, session_id: str) -> list[DocumentChange]:
        """Every change of the document, in order, with its time and author."""
        return await self._call(self._history, session_id)

    def _history(self, session_id: str) -> list[DocumentChange]:
        rows = self.conn.execute(
            "SELECT seq, created_at, author, data FROM document_updates WHERE session_id = ?"
            " ORDER BY seq",
            (session_id,),
        )
        return [
            DocumentChange(int(r["seq"]), float(r["created_at"]), r["author"], bytes(r["data"]))
            for r in rows
        ]

    def set_code(self, session_id: str, code: str) -> asyncio.Future[None]:
        """Keep the session's ``code`` (its first code cell) current for the REST API, which
        reads it for sessions nobody has open (an open one's is read from its document).
        Lazy: it commits with the next write queued (any session's), or on its own within
        ``LAZY_WITHIN`` seconds, without a transaction and two thread wake-ups of its own."""
        sql = "UPDATE sessions SET code = ? WHERE id = ?"
        return self._queue(self._execute, (sql, (code, session_id)), lazy=True)
