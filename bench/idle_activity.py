"""What an idle kernel's processes do: CPU time and wakeups, thread by thread.

An idle kernel should sleep until a request comes. One that polls instead costs CPU and
wakeups on a server that holds many of them, and, if it sleeps between its looks at a socket, a
delay on every request (JJava's shell channel did: 50 ms). ``bench/kernel_memory.py`` reads
these counters at the start and end of its idle window and reports, for every process of a
kernel's tree, its CPU (milliseconds per second) and its threads' context switches per second
(each one a wakeup, or a thread made to wait), with the threads that woke most.

The counters are Linux's, per thread: ``/proc/PID/task/TID/schedstat`` (nanoseconds on a CPU)
and ``/proc/PID/task/TID/status`` (voluntary and involuntary context switches).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# (thread name, CPU ns, context switches), by thread id
Threads = dict[int, tuple[str, int, int]]


def thread_counters(pid: int) -> Threads:
    """Every thread of ``pid`` with its counters now; empty if the process is gone."""
    counters: Threads = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return counters
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as schedstat:
                cpu_ns = int(schedstat.read().split()[0])
            with open(f"/proc/{pid}/task/{tid}/status", encoding="utf-8") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
        switches = sum(
            int(fields.get(name, "0").strip())
            for name in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
        )
        counters[int(tid)] = (fields.get("Name", "?").strip(), cpu_ns, switches)
    return counters


@dataclass(frozen=True)
class Activity:
    """One process over a window: CPU in ms per second, wakeups per second, and its threads
    that woke at least once a second (name: wakeups per second), busiest first."""

    cpu_ms_per_s: float
    wakeups_per_s: float
    busy_threads: dict[str, float]


def activity(before: Threads, after: Threads, seconds: float) -> Activity:
    """What a process's threads did between two readings ``seconds`` apart (threads present
    at both)."""
    cpu_ns = switches = 0
    busy: dict[str, float] = {}
    for tid, (name, cpu, switched) in after.items():
        if tid not in before:
            continue
        _, cpu_before, switched_before = before[tid]
        cpu_ns += cpu - cpu_before
        switches += switched - switched_before
        rate = (switched - switched_before) / seconds
        if rate >= 1:
            busy[name] = round(busy.get(name, 0.0) + rate, 1)
    return Activity(
        round(cpu_ns / 1e6 / seconds, 2),
        round(switches / seconds, 1),
        dict(sorted(busy.items(), key=lambda item: -item[1])),
    )
