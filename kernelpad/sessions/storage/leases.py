"""The leases of sessions: which kernelpad process drives each one now (see
:mod:`kernelpad.sessions.leases` for the rules). Every step is one statement or one
transaction, so two processes asking at once get one answer."""

from __future__ import annotations

from kernelpad.sessions.storage.worker import DatabaseWorker

# Taken when free (no row), when its own (a renewal), or when expired; else left as it is.
_TAKE = (
    "INSERT INTO session_leases (session_id, holder, expires_at, wanted_by) VALUES (?, ?, ?, NULL)"
    " ON CONFLICT (session_id) DO UPDATE"
    " SET holder = excluded.holder, expires_at = excluded.expires_at, wanted_by = NULL"
    " WHERE session_leases.holder = excluded.holder OR session_leases.expires_at < ?"
)


class LeaseRecords(DatabaseWorker):
    """A part of :class:`~.store.SessionStore`."""

    async def take_lease(self, session_id: str, holder: str, now: float, until: float) -> str:
        """Take the session's lease for ``holder`` until ``until`` if it is free, its own or
        expired at ``now``; return who holds it after."""
        return await self._call(self._take_lease, session_id, holder, now, until)

    def _take_lease(self, session_id: str, holder: str, now: float, until: float) -> str:
        with self.conn.transaction():
            self.conn.execute(_TAKE, (session_id, holder, until, now))
            row = self.conn.execute(
                "SELECT holder FROM session_leases WHERE session_id = ?", (session_id,)
            ).fetchone()
        return str(row["holder"]) if row else ""

    async def take_over_lease(self, session_id: str, holder: str, gone: str, until: float) -> bool:
        """Take the lease from ``gone`` (a holder known to be dead); whether it was taken."""
        return await self._call(self._take_over_lease, session_id, holder, gone, until)

    def _take_over_lease(self, session_id: str, holder: str, gone: str, until: float) -> bool:
        with self.conn.transaction():
            self.conn.execute(
                "UPDATE session_leases SET holder = ?, expires_at = ?, wanted_by = NULL"
                " WHERE session_id = ? AND holder = ?",
                (holder, until, session_id, gone),
            )
            row = self.conn.execute(
                "SELECT holder FROM session_leases WHERE session_id = ?", (session_id,)
            ).fetchone()
        return row is not None and row["holder"] == holder

    async def want_lease(self, session_id: str, holder: str) -> None:
        """Ask the session's holder (another) to let go of it when nobody is there."""
        await self._call(
            self._execute,
            "UPDATE session_leases SET wanted_by = ? WHERE session_id = ? AND holder <> ?",
            (holder, session_id, holder),
        )

    async def renew_leases(self, holder: str, until: float) -> dict[str, str | None]:
        """Renew every lease of ``holder`` until ``until``; the sessions it still holds, each
        with who wants it (or None)."""
        return await self._call(self._renew_leases, holder, until)

    def _renew_leases(self, holder: str, until: float) -> dict[str, str | None]:
        with self.conn.transaction():
            self.conn.execute(
                "UPDATE session_leases SET expires_at = ? WHERE holder = ?", (until, holder)
            )
            rows = self.conn.execute(
                "SELECT session_id, wanted_by FROM session_leases WHERE holder = ?", (holder,)
            ).fetchall()
        return {row["session_id"]: row["wanted_by"] for row in rows}

    async def release_leases(self, holder: str, session_id: str | None = None) -> None:
        """Let go of ``holder``'s lease of ``session_id``, or of all of its leases."""
        sql, args = "DELETE FROM session_leases WHERE holder = ?", [holder]
        if session_id is not None:
            sql, args = sql + " AND session_id = ?", [holder, session_id]
        await self._call(self._execute, sql, tuple(args))

    async def lease_holder(self, session_id: str) -> str | None:
        return await self._call(self._lease_holder, session_id)

    def _lease_holder(self, session_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT holder FROM session_leases WHERE session_id = ?", (session_id,)
        ).fetchone()
        return str(row["holder"]) if row else None
