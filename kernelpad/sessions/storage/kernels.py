"""Which kernel each session's language runs in, for a server that starts after this one to take
back the kernels that outlive a server (a gateway's)."""

from __future__ import annotations

from kernelpad.sessions.storage.leases import LeaseRecords


class KernelRecords(LeaseRecords):
    """A part of :class:`~.store.SessionStore`."""

    async def save_kernel(self, session_id: str, language: str, kernel_id: str) -> None:
        await self._call(
            self._execute,
            "INSERT INTO session_kernels (session_id, language, kernel_id) VALUES (?, ?, ?)"
            " ON CONFLICT (session_id, language) DO UPDATE SET kernel_id = excluded.kernel_id",
            (session_id, language, kernel_id),
        )

    async def forget_kernels(self, session_id: str, language: str | None = None) -> None:
        """The session's kernels (of ``language`` only, if given) are gone."""
        sql = "DELETE FROM session_kernels WHERE session_id = ?"
        args: tuple[str, ...] = (session_id,)
        if language is not None:
            sql = "DELETE FROM session_kernels WHERE session_id = ? AND language = ?"
            args = (session_id, language)
        await self._call(self._execute, sql, args)

    async def session_kernels(self, session_id: str | None = None) -> list[tuple[str, str, str]]:
        """The kernels kept (of one session, if given): (session id, language, kernel id)."""
        return await self._call(self._session_kernels, session_id)

    def _session_kernels(self, session_id: str | None) -> list[tuple[str, str, str]]:
        where, args = ("WHERE session_id = ?", (session_id,)) if session_id else ("", ())
        rows = self.conn.execute(
            f"SELECT session_id, language, kernel_id FROM session_kernels {where}"
            " ORDER BY session_id",
            args,
        ).fetchall()
        return [(row["session_id"], row["language"], row["kernel_id"]) for row in rows]
