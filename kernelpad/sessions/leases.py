"""Which kernelpad process drives each session: one at a time, whatever the proxy does.

A session's live state (its document, its connections, its runs, its kernels' channels) is in
one process's memory, and two processes driving one session would each have their own copy.
The proxy pins a session to a process by hashing its id; but while a process dies, or comes
back, the proxy sends its sessions elsewhere. So a process drives a session only while it holds
the session's lease, a row of the database (:mod:`.storage.leases`):

* It takes the lease the first time it serves the session (its room opens, a run or a host's
  change comes over REST) if nobody holds it, or if its holder let it expire: a holder renews
  its leases every third of their length, so an expired lease means a holder gone or stuck.
  A holder on this machine whose process is gone is not waited for.
* Asked for a session another process holds, a process answers "moving, try again"
  (:class:`SessionElsewhere`, HTTP 503) and marks the lease wanted. The holder lets go of a
  wanted session that nobody is connected to there and no run holds (the proxy sends its
  people elsewhere now): it leaves its kernels for the next holder and deletes the lease.
* A process that finds, as it renews, that it lost a lease (stuck for longer than a lease
  lasts) stops driving that session at once.
* A stopping process lets go of all its leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable

from kernelpad.errors import SessionElsewhere
from kernelpad.logs import about
from kernelpad.sessions.storage.store import SessionStore

log = logging.getLogger(__name__)


class Leases:
    """This process's leases. ``let_go(session_id)`` stops driving a session here (its room
    closes, its kernels are left for the next holder); ``idle(session_id)`` says whether
    nobody is connected to it here and no run holds it; ``taken(session_id)`` is told when the
    lease is taken (what was read of the session before may be stale: another process may
    have changed it since)."""

    def __init__(
        self,
        store: SessionStore,
        seconds: float,
        let_go: Callable[[str], Awaitable[None]],
        idle: Callable[[str], bool],
        taken: Callable[[str], None] = lambda session_id: None,
    ) -> None:
        self.store = store
        self.seconds = seconds
        self.let_go = let_go
        self.idle = idle
        self.taken = taken
        #: Who this process is: its machine and pid (so that a process on the same machine
        #: can tell that it is gone), and a nonce (a pid is used again).
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._held: set[str] = set()
        self._taking: dict[str, asyncio.Lock] = {}
        self._renewing: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._renewing = asyncio.create_task(self._renew_forever())

    def holds(self, session_id: str) -> bool:
        return session_id in self._held

    async def hold(self, session_id: str) -> bool:
        """Hold the session's lease, taking it if it is free; raise :class:`SessionElsewhere`
        if another process drives it. Whether it was taken now (what was read of the session
        before may be stale)."""
        if session_id in self._held:
            return False
        lock = self._taking.setdefault(session_id, asyncio.Lock())
        async with lock:
            if session_id in self._held:
                return False
            now = time.time()
            holder = await self.store.take_lease(session_id, self.holder, now, now + self.seconds)
            if holder != self.holder and _gone(holder):
                log.info("session %s: its last process (%s) is gone", session_id, holder)
                if await self.store.take_over_lease(
                    session_id, self.holder, holder, now + self.seconds
                ):
                    holder = self.holder
            if holder != self.holder:
                await self.store.want_lease(session_id, self.holder)
                raise SessionElsewhere(
                    f"Session {session_id} is driven by {holder}; asked to let it go."
                )
            self._held.add(session_id)
            self._taking.pop(session_id, None)
            self.taken(session_id)
            log.info("session %s: driven by this process", session_id, extra=about(session_id))
            return True

    async def release(self, session_id: str) -> None:
        """Let go of one session's lease (it ended, or this process let go of it)."""
        self._held.discard(session_id)
        await self.store.release_leases(self.holder, session_id)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                await self.renew()
            except Exception:
                log.exception("renewing the sessions' leases failed")

    async def renew(self) -> None:
        """Renew every lease held; stop driving those lost; let go of those wanted elsewhere
        that nobody uses here."""
        if not self._held:
            return
        kept = await self.store.renew_leases(self.holder, time.time() + self.seconds)
        for session_id in self._held - set(kept):
            log.warning(
                "session %s: its lease was taken by another process (this one was stuck"
                " longer than a lease lasts): no longer driven here",
                session_id,
                extra=about(session_id),
            )
            self._held.discard(session_id)
            await self.let_go(session_id)
        for session_id, wanted_by in kept.items():
            if wanted_by and session_id in self._held and self.idle(session_id):
                log.info(
                    "session %s: handed over to %s, which is asked for it",
                    session_id,
                    wanted_by,
                    extra=about(session_id),
                )
                self._held.discard(session_id)
                await self.let_go(session_id)
                await self.store.release_leases(self.holder, session_id)

    async def close(self) -> None:
        """Stop renewing, and let go of every lease (the process is stopping)."""
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
        self._held.clear()
        await self.store.release_leases(self.holder)


def _gone(holder: str) -> bool:
    """Whether ``holder`` is a process of this machine that is no longer running. (A pid used
    again makes a dead holder look alive: its lease is then waited out, the safe way to be
    wrong.)"""
    host, _, rest = holder.partition(":")
    pid, _, _ = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not os.path.exists(f"/proc/{pid}")
