"""The SQLite store and its migrations, on real database files."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from kernelpad.sessions.migrations import MIGRATIONS, Migration, SchemaTooNew, migrate
from kernelpad.sessions.models import ENDED, Execution, Participant, Session
from kernelpad.sessions.store import SessionStore


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


def an_execution(execution_id: str, session_id: str = "s1", at: float = 200.0) -> Execution:
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


async def test_round_trip_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "kp.sqlite"
    store = SessionStore(path)
    assert await store.open() == MIGRATIONS[-1].version
    await store.add_session(a_session())
    await store.add_execution(an_execution("e1"))
    await store.add_execution(an_execution("e2", at=300.0))
    await store.close()

    reopened = SessionStore(path)
    assert await reopened.open() == MIGRATIONS[-1].version
    session = await reopened.get_session("s1")
    assert session is not None and session.name == "Loop"
    assert session.last_activity == 301.0
    assert [p.display_name for p in session.participants] == ["Ada"]
    runs, total = await reopened.list_executions("s1", 10, 0)
    assert total == 2
    assert [r.id for r in runs] == ["e1", "e2"]
    assert runs[0] == an_execution("e1")
    assert await reopened.count_executions("s1", "python") == 2
    assert await reopened.count_executions("s1", "java") == 0
    await reopened.close()


async def test_listing_ending_and_expiry(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "kp.sqlite")
    await store.open()
    for i in range(5):
        await store.add_session(a_session(f"s{i}", created_at=100.0 + i))
    page, total = await store.list_sessions(2, 0)
    assert total == 5
    assert [(s.id, n) for s, n in page] == [("s4", 1), ("s3", 1)]
    assert await store.expired_sessions(102.5) == ["s0", "s1", "s2"]
    await store.end_session("s0", 500.0, "expired")
    ended, count = await store.list_sessions(10, 0, ENDED)
    assert count == 1 and ended[0][0].end_reason == "expired"
    assert await store.count_sessions("active") == 4
    assert await store.get_session("nope") is None
    await store.close()


async def test_database_work_runs_off_the_event_loop(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "kp.sqlite")
    await store.open()
    threads: set[str] = set()
    store.conn.set_trace_callback(lambda _: threads.add(threading.current_thread().name))
    await store.add_session(a_session())
    await store.add_execution(an_execution("e1"))
    await store.get_session("s1")
    await store.list_sessions(10, 0)
    await store.list_executions("s1", 10, 0)
    await store.end_session("s1", 300.0, "test")
    assert len(threads) == 1
    assert threads.pop().startswith("kernelpad-sqlite")
    await store.close()


def test_migrations_apply_in_order_and_keep_data(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "kp.sqlite", isolation_level=None)
    latest = MIGRATIONS[-1].version
    assert migrate(conn, MIGRATIONS) == latest
    conn.execute(
        "INSERT INTO sessions (id, name, host_name, language, code, max_participants,"
        " host_token_hash, status, created_at, last_activity)"
        " VALUES ('s', 'n', 'h', 'python', '', 2, 'x', 'active', 1, 1)"
    )
    extra = Migration(latest + 1, "a later change", "ALTER TABLE sessions ADD COLUMN extra TEXT;")
    assert migrate(conn, (*MIGRATIONS, extra)) == latest + 1
    assert conn.execute("SELECT id, extra FROM sessions").fetchall() == [("s", None)]
    assert migrate(conn, (*MIGRATIONS, extra)) == latest + 1  # nothing left to do


def test_a_failed_migration_changes_nothing(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "kp.sqlite", isolation_level=None)
    migrate(conn, MIGRATIONS)
    latest = MIGRATIONS[-1].version
    broken = Migration(
        latest + 1, "broken", "CREATE TABLE t (x INT); INSERT INTO nowhere VALUES (1);"
    )
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, (*MIGRATIONS, broken))
    assert not conn.in_transaction
    assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 't'").fetchone() is None


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "kp.sqlite", isolation_level=None)
    conn.execute("PRAGMA user_version = 99")
    with pytest.raises(SchemaTooNew, match="version 99"):
        migrate(conn, MIGRATIONS)


async def test_a_join_saved_after_a_removal_does_not_undo_it(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "kp.sqlite")
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
        assert again.removed_at == 2.0 and again.token_hash is None
    finally:
        await store.close()
