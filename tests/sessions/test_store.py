"""The store and its migrations, each test on a real SQLite file and on a real PostgreSQL
server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pycrdt import Doc, Text

from kernelpad.sessions.models import ENDED, Execution, Participant, Session
from kernelpad.sessions.storage import worker
from kernelpad.sessions.storage.database import Connection, Database, DatabaseUnavailable, Rows
from kernelpad.sessions.storage.factory import database_from_url
from kernelpad.sessions.storage.migrations import MIGRATIONS, Migration, SchemaTooNew, migrate
from kernelpad.sessions.storage.sqlite import SQLite
from kernelpad.sessions.storage.store import SessionStore


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """A new, empty database of each kind."""
    if request.param == "sqlite":
        return SQLite(tmp_path / "deep" / "kp.sqlite")  # folders made as needed
    return database_from_url(request.getfixturevalue("postgresql_url"))


@pytest.fixture
def connection(database: Database) -> Iterator[Connection]:
    conn = database.connect()
    yield conn
    conn.close()


def a_session(session_id: str = "s1", created_at: float = 100.0) -> Session:
    return Session(
        id=session_id,
        name="Loop",
        host_name="Ada",
        language="python",
        code="print(1)",
        max_participants=4,
        host_token_hash="h",
        created_at=created_at,
        last_activity=created_at,
        participants=[Participant("host-1", "Ada", "host", created_at)],
    )


def an_execution(
    execution_id: str, session_id: str = "s1", at: float = 1_764_201_076.123456
) -> Execution:
    return Execution(
        id=execution_id,
        session_id=session_id,
        language="python",
        code="1/0",
        status="error",
        stdout="",
        stderr="ZeroDivisionError\n",
        outputs=[{"output_type": "error", "ename": "ZeroDivisionError"}],
        error={"ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": []},
        execution_count=3,
        time_limit_ms=5000,
        started_at=at,
        finished_at=at + 1,
        duration_ms=1000.0,
        queued_ms=0.0,
        timed_out=False,
        state_kept=True,
        kernel_restarted=False,
        new_kernel=True,
        output_truncated=False,
        notices=["a notice"],
    )


async def test_round_trip_survives_reopening(database: Database) -> None:
    store = SessionStore(database)
    assert await store.open() == MIGRATIONS[-1].version
    await store.add_session(a_session())
    await store.add_execution(an_execution("e1"))
    await store.add_execution(an_execution("e2", at=300.0))
    await store.close()

    reopened = SessionStore(database)
    assert await reopened.open() == MIGRATIONS[-1].version  # nothing left to migrate
    session = await reopened.get_session("s1")
    assert session is not None and session.name == "Loop"
    assert session.last_activity == 301.0
    assert [p.display_name for p in session.participants] == ["Ada"]
    runs, total = await reopened.list_executions("s1", 10, 0)
    assert total == 2
    assert [r.id for r in runs] == ["e1", "e2"]
    assert runs[0] == an_execution("e1")  # every field, timestamps to the microsecond
    assert await reopened.count_executions("s1", "python") == 2
    assert await reopened.count_executions("s1", "java") == 0
    await reopened.close()


async def test_listing_ending_and_expiry(database: Database) -> None:
    store = SessionStore(database)
    await store.open()
    assert await store.list_sessions(10, 0) == ([], 0)
    for i in range(5):
        await store.add_session(a_session(f"s{i}", created_at=100.0 + i))
    page, total = await store.list_sessions(2, 0)
    assert total == 5
    assert [(s.id, n) for s, n in page] == [("s4", 1), ("s3", 1)]
    assert await store.list_sessions(2, 10) == ([], 5)
    assert await store.expired_sessions(102.5) == ["s0", "s1", "s2"]
    await store.end_session("s0", 500.0, "expired")
    ended, count = await store.list_sessions(10, 0, ENDED)
    assert count == 1 and ended[0][0].end_reason == "expired"
    assert await store.count_sessions("active") == 4
    assert await store.get_session("nope") is None
    await store.close()


async def test_database_work_runs_off_the_event_loop(database: Database) -> None:
    store = SessionStore(database)
    await store.open()
    threads: set[str] = set()
    execute = store.conn.execute

    def noting_the_thread(sql: str, args: Sequence[Any] = ()) -> Rows:
        threads.add(threading.current_thread().name)
        return execute(sql, args)

    store.conn.execute = noting_the_thread  # type: ignore[method-assign]
    await store.add_session(a_session())
    await store.add_execution(an_execution("e1"))
    await store.get_session("s1")
    await store.list_sessions(10, 0)
    await store.list_executions("s1", 10, 0)
    await store.end_session("s1", 300.0, "test")
    assert len(threads) == 1
    assert threads.pop().startswith("kernelpad-database")
    await store.close()


def test_migrations_apply_in_order_and_keep_data(connection: Connection) -> None:
    latest = MIGRATIONS[-1].version
    assert migrate(connection, MIGRATIONS) == latest
    connection.execute(
        "INSERT INTO sessions (id, name, host_name, language, code, max_participants,"
        " host_token_hash, status, created_at, last_activity)"
        " VALUES ('s', 'n', 'h', 'python', '', 2, 'x', 'active', 1, 1)"
    )
    extra = Migration(latest + 1, "a later change", "ALTER TABLE sessions ADD COLUMN extra TEXT;")
    assert migrate(connection, (*MIGRATIONS, extra)) == latest + 1
    assert connection.execute("SELECT id, extra FROM sessions").fetchall() == [
        {"id": "s", "extra": None}
    ]
    assert migrate(connection, (*MIGRATIONS, extra)) == latest + 1  # nothing left to do
    assert connection.schema_version() == latest + 1


def test_a_failed_migration_changes_nothing(connection: Connection) -> None:
    migrate(connection, MIGRATIONS)
    latest = MIGRATIONS[-1].version
    broken = Migration(
        latest + 1, "broken", "CREATE TABLE t (x INT); INSERT INTO nowhere VALUES (1);"
    )
    with pytest.raises((sqlite3.Error, psycopg.Error), match="nowhere"):
        migrate(connection, (*MIGRATIONS, broken))
    assert connection.schema_version() == latest
    # No table t is left in the way, and the connection is not stuck in a transaction.
    fixed = Migration(latest + 1, "fixed", "CREATE TABLE t (x INT);")
    assert migrate(connection, (*MIGRATIONS, fixed)) == latest + 1


def test_a_newer_database_is_refused(connection: Connection) -> None:
    migrate(connection, (Migration(99, "a newer kernelpad's", ""),))
    with pytest.raises(SchemaTooNew, match="version 99"):
        migrate(connection, MIGRATIONS)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_processes_that_start_together_migrate_once(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if kind == "sqlite":
        database: Database = SQLite(tmp_path / "shared.sqlite")
    else:
        database = database_from_url(request.getfixturevalue("postgresql_url"))
    connections = [database.connect() for _ in range(3)]
    try:
        with concurrent.futures.ThreadPoolExecutor(len(connections)) as pool:
            versions = list(pool.map(migrate, connections))
        assert versions == [MIGRATIONS[-1].version] * len(connections)
        # One that read the version before another migrated skips what that one did.
        connections[0].apply_migration(1, MIGRATIONS[0].sql)
        assert connections[0].schema_version() == MIGRATIONS[-1].version
    finally:
        for conn in connections:
            conn.close()


async def test_a_join_saved_after_a_removal_does_not_undo_it(database: Database) -> None:
    store = SessionStore(database)
    await store.open()
    try:
        session = a_session("s-removal")
        await store.add_session(session)
        alan = Participant("alan", "Alan", "candidate", 1.0, token_hash="h")
        await store.save_participant(session.id, alan)
        await store.remove_participant(session.id, "alan", 2.0)
        # A join that read the session before the removal saves its copy afterwards.
        await store.save_participant(session.id, alan)
        stored = await store.get_session(session.id)
        assert stored is not None
        (again,) = [p for p in stored.participants if p.client_id == "alan"]
        assert again.removed_at == 2.0 and again.token_hash == "h"
        await store.readmit_participant(session.id, "alan")
        stored = await store.get_session(session.id)
        assert stored is not None
        (back,) = [p for p in stored.participants if p.client_id == "alan"]
        assert back.removed_at is None and back.token_hash == "h"
    finally:
        await store.close()


async def test_the_shared_notebooks_updates_keep_their_bytes_and_order(database: Database) -> None:
    store = SessionStore(database)
    await store.open()
    try:
        await store.add_session(a_session())
        updates = [bytes(range(256)), b"\x00", b"second"]
        for update in updates:
            store.append_update("s1", update, 1.0, "alan")
        assert await store.load_updates("s1") == updates
        # A snapshot: loads start from it, and read only what came after it.
        await store.save_snapshot("s1", b"all in one", 2.0)
        store.append_update("s1", b"later", 3.0)
        assert await store.load_updates("s1") == [b"all in one", b"later"]
        assert await store.count_updates("s1") == 2
        await store.save_snapshot("s1", b"all in two", 4.0)
        assert await store.load_updates("s1") == [b"all in two"]
        # The record keeps every change, with its time and author.
        history = await store.history("s1")
        assert [(c.update, c.at, c.author) for c in history] == [
            *((u, 1.0, "alan") for u in updates),
            (b"later", 3.0, None),
        ]
        assert [c.seq for c in history] == sorted({c.seq for c in history})
    finally:
        await store.close()


async def test_settings_a_host_changes_are_stored(database: Database) -> None:
    store = SessionStore(database)
    await store.open()
    try:
        await store.add_session(a_session())
        await store.update_session("s1", notes="n", editing_locked=True, candidate_execution=False)
        session = await store.get_session("s1")
        assert session is not None
        assert (session.notes, session.editing_locked, session.candidate_execution) == (
            "n",
            True,
            False,
        )
    finally:
        await store.close()


async def test_a_lost_postgresql_connection_is_a_clear_error_then_comes_back(
    postgresql_url: str,
) -> None:
    store = SessionStore(database_from_url(postgresql_url))
    await store.open()
    try:
        await store.add_session(a_session())
        with psycopg.connect(postgresql_url, autocommit=True) as admin:
            # As a restart or a failover would: end the store's connection, wait till it is gone.
            admin.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(DatabaseUnavailable, match="connection to PostgreSQL .* was lost"):
            await store.get_session("s1")
        session = await store.get_session("s1")
        assert session is not None and session.name == "Loop"
    finally:
        await store.close()


async def test_updates_written_in_batches_keep_their_order(database: Database) -> None:
    store = SessionStore(database)
    await store.open()
    try:
        await store.add_session(a_session())
        updates = [f"update {i}".encode() for i in range(300)]
        # Submitted faster than the database thread writes them: they go in batches.
        written = [store.append_update("s1", update, float(i)) for i, update in enumerate(updates)]
        # A read made after them sees them all, in order; each caller hears of its own.
        assert await store.load_updates("s1") == updates
        assert all(future.done() and future.exception() is None for future in written)
        assert [c.at for c in await store.history("s1")] == [float(i) for i in range(300)]
    finally:
        await store.close()


async def test_a_failed_batch_tells_every_caller(database: Database) -> None:
    store = SessionStore(database)
    await store.open()
    try:
        # No such session: the database refuses the rows (foreign key).
        written = [store.append_update("missing", b"x", 1.0) for _ in range(5)]
        results = await asyncio.gather(*written, return_exceptions=True)
        assert all(isinstance(result, Exception) for result in results)
        await store.add_session(a_session())
        await store.append_update("s1", b"after", 2.0)  # the next batch is written
        assert await store.load_updates("s1") == [b"after"]
    finally:
        await store.close()


async def test_text_with_nul_characters_is_stored(database: Database) -> None:
    """A run's output or a participant's code may hold NUL, which PostgreSQL's text cannot:
    there U+FFFD takes its place, and the write and its batch go through."""
    store = SessionStore(database)
    await store.open()
    try:
        await store.add_session(a_session())
        run = an_execution("e1")
        run.code, run.stdout = "print('\\0')", "a\0b\n"
        neighbour = store.append_update("s1", b"same batch", 1.0)
        await store.add_execution(run)
        await store.set_code("s1", "x = '\0'")
        await neighbour
        nul = "\0" if isinstance(database, SQLite) else "\ufffd"
        runs, _ = await store.list_executions("s1", 10, 0)
        assert (runs[0].code, runs[0].stdout) == ("print('\\0')", f"a{nul}b\n")
        session = await store.get_session("s1")
        assert session is not None and session.code == f"x = '{nul}'"
    finally:
        await store.close()


@contextlib.contextmanager
def transactions_counted(store: SessionStore) -> Iterator[list[int]]:
    """The transactions ``store``'s connection opens inside the block, one entry each."""
    conn, transaction = store.conn, store.conn.transaction
    opened: list[int] = []

    def counted() -> Any:
        opened.append(1)
        return transaction()

    conn.transaction = counted  # type: ignore[method-assign]
    try:
        yield opened
    finally:
        conn.transaction = transaction  # type: ignore[method-assign]


async def test_writes_queued_in_one_turn_are_one_transaction(database: Database) -> None:
    """Writes queued in one turn of the event loop are not given to the idle database thread
    one by one: they commit in one transaction (a run's record and its cell's end; the
    keystrokes of the messages read in one turn). The next turn's go in the next."""
    store = SessionStore(database)
    await store.open()
    try:
        await store.add_session(a_session())
        with transactions_counted(store) as opened:
            first = store.append_update("s1", b"one", 1.0)
            time.sleep(0.05)  # an idle thread given the first would have written it by now
            second = store.append_update("s1", b"two", 2.0)
            await asyncio.gather(first, second)
            assert len(opened) == 1
            await store.append_update("s1", b"three", 3.0)
            assert len(opened) == 2
        assert await store.load_updates("s1") == [b"one", b"two", b"three"]
        # A read queued in the same turn as writes is behind them.
        store.append_update("s1", b"four", 4.0)
        assert (await store.load_updates("s1"))[-1] == b"four"
    finally:
        await store.close()
    # Once the store has closed, a write is refused at once.
    with pytest.raises(RuntimeError, match="closed"):
        store.append_update("s1", b"too late", 5.0)


async def test_writes_given_to_a_stopped_thread_tell_their_callers(database: Database) -> None:
    """The database thread stopped under the store (the process exiting): writes queued in
    the turn it stopped in fail, each caller told, rather than wait for ever."""
    store = SessionStore(database)
    await store.open()
    try:
        await store.add_session(a_session())
        written = store.append_update("s1", b"one", 1.0)
        store._thread.stop()
        with pytest.raises(RuntimeError, match="stopped"):
            await written
    finally:
        store._thread = worker.DatabaseThread()  # for close() to have one to stop
        await store.close()


async def test_a_lazy_write_rides_with_the_next_or_goes_within_its_delay(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The code column's write wakes nobody: it commits in the transaction of the next write
    (a keystroke's update), or on its own within LAZY_WITHIN; a read queued after it sees it,
    and closing the store writes it."""
    lazy_within = 1.0  # long enough that a slow machine's loop does not reach it by chance
    monkeypatch.setattr(worker, "LAZY_WITHIN", lazy_within)
    store = SessionStore(database)
    await store.open()
    try:
        await store.add_session(a_session())
        with transactions_counted(store) as opened:
            code = store.set_code("s1", "print(1)")
            await asyncio.sleep(0.1)
            assert not code.done() and not opened  # not given to the idle thread
            await asyncio.gather(code, store.append_update("s1", b"one", 1.0))
            assert len(opened) == 1  # one transaction for both

            began = time.monotonic()
            await store.set_code("s1", "print(2)")  # alone: within its delay
            assert lazy_within - 0.1 < time.monotonic() - began < lazy_within + 2.0
            assert len(opened) == 2

        store.set_code("s1", "print(3)")
        session = await store.get_session("s1")  # a read after it sees it
        assert session is not None and session.code == "print(3)"
        store.set_code("s1", "print(4)")
    finally:
        await store.close()  # writes the last one
    with pytest.raises(RuntimeError):
        store.set_code("s1", "too late")
    reopened = SessionStore(database)
    await reopened.open()
    try:
        session = await reopened.get_session("s1")
        assert session is not None and session.code == "print(4)"
    finally:
        await reopened.close()


async def test_a_write_the_database_refuses_fails_alone(database: Database) -> None:
    """One write of a batch refused (here, an update of a session that does not exist): the
    others in the batch, another session's keystrokes say, are written all the same."""
    store = SessionStore(database)
    await store.open()
    try:
        await store.add_session(a_session())
        written = [  # one turn of the event loop: one batch
            store.append_update("s1", b"one", 1.0),
            store.append_update("missing", b"refused", 2.0),
            store.append_update("s1", b"three", 3.0),
        ]
        results = await asyncio.gather(*written, return_exceptions=True)
        assert results[0] is None and results[2] is None, results
        assert isinstance(results[1], Exception)
        assert await store.load_updates("s1") == [b"one", b"three"]
    finally:
        await store.close()


async def test_a_snapshot_covers_only_the_updates_appended_before_it(database: Database) -> None:
    """An update appended after a snapshot, while the database thread is busy (so that both
    go in one batch), is not counted as covered by it: loading the document keeps it."""
    store = SessionStore(database)
    await store.open()
    try:
        await _snapshot_then_update(store)
    finally:
        await store.close()


async def _snapshot_then_update(store: SessionStore) -> None:
    await store.add_session(a_session())
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("t", type=Text)
    text += "before"
    snapshot = doc.get_update()
    text += " after"
    busy = store._call(time.sleep, 0.3)  # the thread is busy: what follows waits, together
    written = [
        store.append_update("s1", updates[0], 1.0),
        store.save_snapshot("s1", snapshot, 2.0),
        store.append_update("s1", updates[1], 3.0),
    ]
    await busy
    await asyncio.gather(*written)
    loaded: Doc[Any] = Doc()
    for update in await store.load_updates("s1"):
        loaded.apply_update(update)
    assert str(loaded.get("t", type=Text)) == "before after"
