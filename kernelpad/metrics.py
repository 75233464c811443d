"""What kernelpad counts for Prometheus (``/metrics``).

Events (kernel starts, runs, restarts, WebSocket messages) are counted where they happen, in
process-wide metrics, as Prometheus clients do. What is true *now* (sessions open, participants
connected, kernels and their state, pooled kernels) is read from the server at each scrape, as
a :class:`Snapshot`: never a gauge to keep in step by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Runs take from milliseconds (a print) to the time limit; starts from 1 s (Python) to 10 s+
# (the JVM, or a remote kernel on a busy cluster).
_RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# Finer at the short end, where a trivial run's milliseconds are.
_BUSY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 1, 10, 120)
_START_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60, 120)

KERNEL_STARTS = Counter(
    "kernelpad_kernel_starts",
    "Kernels started, by language and outcome (ok or failed).",
    ["language", "outcome"],
)
KERNEL_START_SECONDS = Histogram(
    "kernelpad_kernel_start_seconds",
    "Time from asking for a kernel to its first answer, by language.",
    ["language"],
    buckets=_START_BUCKETS,
)
KERNEL_RESTARTS = Counter(
    "kernelpad_kernel_restarts",
    "Kernels of a session replaced, by language and reason (requested, timeout, kernel_died, ...).",
    ["language", "reason"],
)
EXECUTIONS = Counter(
    "kernelpad_executions",
    "Runs finished, by language and status (ok, error, timeout, ...).",
    ["language", "status"],
)
EXECUTION_SECONDS = Histogram(
    "kernelpad_execution_seconds",
    "Time a run spent in its kernel, by language.",
    ["language"],
    buckets=_RUN_BUCKETS,
)
KERNEL_BUSY_SECONDS = Histogram(
    "kernelpad_kernel_busy_seconds",
    "A run's time by its kernel's own clock, from its busy status to its idle status (the dates"
    " on its messages), by language: beside kernelpad_execution_seconds, which the server"
    " times, it tells the kernel's own time from the hops to and from it.",
    ["language"],
    buckets=_BUSY_BUCKETS,
)
EXECUTION_TIMEOUTS = Counter(
    "kernelpad_execution_timeouts",
    "Runs that passed their time limit and were interrupted, by language.",
    ["language"],
)
WEBSOCKET_MESSAGES = Counter(
    "kernelpad_websocket_messages",
    "WebSocket messages, by protocol (json or yjs) and direction (in or out).",
    ["protocol", "direction"],
)


@dataclass
class Snapshot:
    """One server's present state, taken for a scrape."""

    sessions_active: int
    participants_connected: int
    #: (language, state) -> kernels held by sessions; state is busy, idle or starting.
    kernels: dict[tuple[str, str], int]
    #: language -> pre-started kernels ready.
    pool_ready: dict[str, int]


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        state = self.snapshot
        yield GaugeMetricFamily(
            "kernelpad_sessions_active", "Sessions not ended.", value=state.sessions_active
        )
        yield GaugeMetricFamily(
            "kernelpad_participants_connected",
            "Participants with at least one open connection.",
            value=state.participants_connected,
        )
        kernels = GaugeMetricFamily(
            "kernelpad_kernels",
            "Kernels held by sessions, by language and state (busy, idle, starting).",
            labels=["language", "state"],
        )
        for (language, kernel_state), count in sorted(state.kernels.items()):
            kernels.add_metric([language, kernel_state], count)
        yield kernels
        pool = GaugeMetricFamily(
            "kernelpad_pool_ready",
            "Pre-started kernels ready for new sessions, by language.",
            labels=["language"],
        )
        for language, count in sorted(state.pool_ready.items()):
            pool.add_metric([language], count)
        yield pool


def exposition(snapshot: Snapshot) -> bytes:
    """The text Prometheus scrapes: the process's counters (and its CPU and memory), then
    the server's present state."""
    live = CollectorRegistry(auto_describe=False)
    live.register(_SnapshotCollector(snapshot))
    return generate_latest(REGISTRY) + generate_latest(live)
