"""Sessions' leases: one process drives a session at a time; another takes it over only once
the holder stops renewing (or, on one machine, is gone), or lets go of it. Two holders on one
real database, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kernelpad.errors import SessionElsewhere
from kernelpad.sessions.leases import Leases
from kernelpad.sessions.storage.database import Database
from kernelpad.sessions.storage.factory import database_from_url
from kernelpad.sessions.storage.sqlite import SQLite
from kernelpad.sessions.storage.store import SessionStore
from tests.sessions.test_store import a_session


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return SQLite(tmp_path / "kp.sqlite")
    return database_from_url(request.getfixturevalue("postgresql_url"))


@pytest.fixture
async def stores(database: Database) -> AsyncIterator[tuple[SessionStore, SessionStore]]:
    """Two processes' stores on one database, with a session in it."""
    one, two = SessionStore(database), SessionStore(database)
    await one.open()
    await two.open()
    await one.add_session(a_session("s1"))
    yield one, two
    await one.close()
    await two.close()


class Process:
    """What a process does with its leases: who it let go of, whether it is idle."""

    def __init__(self, store: SessionStore, name: str, seconds: float = 0.6) -> None:
        self.let_go_of: list[str] = []
        self.busy = True
        self.leases = Leases(store, seconds, self._let_go, lambda _: not self.busy)
        # Another machine's name: not judged gone by its pid.
        self.leases.holder = f"machine-{name}:1:{name}"

    async def _let_go(self, session_id: str) -> None:
        self.let_go_of.append(session_id)


async def test_one_holder_at_a_time_until_it_stops_renewing(
    stores: tuple[SessionStore, SessionStore],
) -> None:
    one, two = Process(stores[0], "one"), Process(stores[1], "two")
    await one.leases.hold("s1")
    with pytest.raises(SessionElsewhere) as refused:
        await two.leases.hold("s1")
    assert "moving to another server" in refused.value.public
    # Renewed, it stays one's however long; busy, one does not hand it over though wanted.
    for _ in range(4):
        await asyncio.sleep(0.3)
        await one.leases.renew()
        with pytest.raises(SessionElsewhere):
            await two.leases.hold("s1")
    assert one.leases.holds("s1") and one.let_go_of == []
    # One stops renewing (stuck): past the lease, two takes it; one learns it lost it.
    await asyncio.sleep(0.8)
    await two.leases.hold("s1")
    assert two.leases.holds("s1")
    await one.leases.renew()
    assert not one.leases.holds("s1") and one.let_go_of == ["s1"]
    await one.leases.close()
    await two.leases.close()


async def test_a_holder_lets_go_of_a_wanted_session_nobody_uses(
    stores: tuple[SessionStore, SessionStore],
) -> None:
    one, two = Process(stores[0], "one", seconds=30), Process(stores[1], "two", seconds=30)
    await one.leases.hold("s1")
    await one.leases.renew()  # not wanted: nothing happens, even idle
    one.busy = False
    await one.leases.renew()
    assert one.leases.holds("s1")
    with pytest.raises(SessionElsewhere):
        await two.leases.hold("s1")  # wanted now
    await one.leases.renew()
    assert one.let_go_of == ["s1"] and not one.leases.holds("s1")
    await two.leases.hold("s1")
    assert two.leases.holds("s1")
    # A stopping process lets go of every lease: the next takes it at once.
    await two.leases.close()
    await one.leases.hold("s1")
    await one.leases.close()


async def test_a_holder_gone_from_this_machine_is_not_waited_for(
    stores: tuple[SessionStore, SessionStore],
) -> None:
    """Its lease, far from expired, names a process of this machine that has exited."""
    exited = subprocess.Popen(["true"])
    exited.wait()
    holder = f"{socket.gethostname()}:{exited.pid}:x"
    assert await stores[0].take_lease("s1", holder, time.time(), time.time() + 3600) == holder
    two = Process(stores[1], "two", seconds=60)
    await two.leases.hold("s1")
    assert two.leases.holds("s1")
    await two.leases.close()
