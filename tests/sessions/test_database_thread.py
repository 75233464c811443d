"""The database thread: tasks in order on one thread of its own, outcomes on the event loop, a
failing task that does not stop the others, and a stop that lets what was given finish."""

from __future__ import annotations

import asyncio
import functools
import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from kernelpad.sessions.storage.worker import DatabaseThread


def _threads() -> set[str]:
    return {thread.name for thread in threading.enumerate()}


async def test_tasks_run_in_order_on_one_thread_of_their_own() -> None:
    thread = DatabaseThread("kp-test-order")
    assert "kp-test-order" not in _threads()  # it starts with its first task
    seen: list[tuple[int, str]] = []

    def note(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * 10

    results = await asyncio.gather(*(thread.call(note, n) for n in range(50)))
    assert results == [n * 10 for n in range(50)]
    assert seen == [(n, "kp-test-order") for n in range(50)]
    thread.stop()
    assert "kp-test-order" not in _threads()


async def test_a_call_that_raises_raises_in_its_caller_and_the_thread_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    thread = DatabaseThread("kp-test-raise")

    def fail() -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        await thread.call(fail)
    # A task given with submit that raises is logged, and the next one still runs.
    with caplog.at_level(logging.ERROR, "kernelpad.sessions.storage.worker"):
        thread.submit(fail)
        assert await thread.call(lambda: "still here") == "still here"
    assert "a task of the database thread failed" in caplog.text
    thread.stop()


async def test_a_cancelled_call_is_left_alone_when_its_outcome_comes() -> None:
    thread = DatabaseThread("kp-test-cancel")
    loop = asyncio.get_running_loop()
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    slow = thread.call(time.sleep, 0.1)
    slow.cancel()
    assert await thread.call(lambda: 1) == 1  # after the slow one: its outcome has come
    await asyncio.sleep(0)
    assert errors == []
    thread.stop()


async def test_stop_lets_what_was_given_finish_and_takes_nothing_after() -> None:
    thread = DatabaseThread("kp-test-stop")
    done: list[int] = []
    thread.call(time.sleep, 0.05)
    for n in range(5):
        thread.submit(functools.partial(done.append, n))
    thread.stop()
    assert done == [0, 1, 2, 3, 4]
    assert "kp-test-stop" not in _threads()
    with pytest.raises(RuntimeError, match="stopped"):
        thread.submit(lambda: None)
    thread.stop()  # again: nothing to do


def test_a_thread_never_stopped_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    """A store nobody closed must not hang the server's exit, and what it was given before
    the exit is still done."""
    written = tmp_path / "written"
    script = textwrap.dedent(
        f"""
        import time
        from kernelpad.sessions.storage.worker import DatabaseThread

        thread = DatabaseThread()

        def write():
            time.sleep(0.2)
            open({str(written)!r}, "w").write("done")

        thread.submit(write)
        """
    )
    began = time.monotonic()
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    assert time.monotonic() - began < 20
    assert written.read_text() == "done"
