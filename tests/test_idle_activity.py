"""How bench/kernel_memory.py reads what an idle kernel does (bench/idle_activity.py): CPU and
wakeups per thread, from Linux's counters. A thread that polls shows; one that sleeps does not."""

from __future__ import annotations

import ctypes
import os
import threading
import time
from types import ModuleType

import pytest

from tests.bench_scripts import bench_module

PR_SET_NAME = 15  # prctl(2)


@pytest.fixture(scope="module")
def idle_activity() -> ModuleType:
    return bench_module("idle_activity")


def test_a_polling_thread_is_seen_waking_and_a_sleeping_one_is_not(
    idle_activity: ModuleType,
) -> None:
    stop = threading.Event()
    named_both = threading.Barrier(3)

    def poll() -> None:
        named(b"poller")
        named_both.wait()
        while not stop.wait(0.01):  # a look every 10 ms: about 100 wakeups a second
            pass

    def sleep() -> None:
        named(b"sleeper")
        named_both.wait()
        stop.wait()

    polling = threading.Thread(target=poll)
    sleeping = threading.Thread(target=sleep)
    polling.start()
    sleeping.start()
    try:
        named_both.wait()
        time.sleep(0.1)  # the sleeper is asleep by now
        before = idle_activity.thread_counters(os.getpid())
        time.sleep(1.0)
        after = idle_activity.thread_counters(os.getpid())
    finally:
        stop.set()
        polling.join()
        sleeping.join()
    done = idle_activity.activity(before, after, 1.0)
    assert done.busy_threads.get("poller", 0) >= 20
    # Asleep: no wakeup of its own (once, the system may still move it, on a busy machine).
    assert done.busy_threads.get("sleeper", 0) <= 1
    assert done.wakeups_per_s >= done.busy_threads["poller"]
    assert done.cpu_ms_per_s > 0


def named(name: bytes) -> None:
    """Give the calling thread a name the system sees (Python's names are its own)."""
    assert ctypes.CDLL(None).prctl(PR_SET_NAME, name) == 0


def test_threads_not_there_at_both_readings_are_left_out(idle_activity: ModuleType) -> None:
    before = {1: ("main", 1_000_000, 10), 2: ("gone", 0, 0)}
    after = {1: ("main", 3_000_000, 14), 3: ("new", 9_000_000, 900)}
    done = idle_activity.activity(before, after, 2.0)
    assert (done.cpu_ms_per_s, done.wakeups_per_s, done.busy_threads) == (1.0, 2.0, {"main": 2.0})
    assert idle_activity.thread_counters(2**22 + 7) == {}  # no such process
