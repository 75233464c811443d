"""How late the event loop runs what is due: the wait every message, edit and run shares.

One thread runs every interview's sockets, so whatever holds it (a long callback, a garbage
collection, a burst of edits, too little CPU) delays all of them at once. A timer that is due
every :data:`PERIOD` seconds and notes how late it fired measures that wait as every other
callback meets it, at the cost of a few callbacks a second. Operators read it in ``/metrics``
(its p99 rising with the number of interviews is the server's limit, where the kernels' is the
run time); ``bench/load.py`` reports it for each number of interviews.
"""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Histogram

#: Seconds between two looks: often enough for a p99 within a minute (1,200 looks).
PERIOD = 0.05

LOOP_LAG = Histogram(
    "kernelpad_event_loop_lag_seconds",
    f"How late the event loop ran a timer due every {PERIOD:g} s: the wait its callbacks"
    " (every socket's messages, edits, runs) met.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)


class LagProbe:
    """A timer on ``loop`` that observes its own lateness into :data:`LOOP_LAG`.

    Lateness is read on ``time.perf_counter``, not the loop's clock: uvloop's ``loop.time()``
    counts whole milliseconds, as of the start of the loop's turn, which would round most
    lags to 0 or 1 ms. (libuv also rounds the timer's delay to a millisecond, so a lag under
    one is within its timer's precision.)"""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._due = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._arm(time.perf_counter())

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, now: float) -> None:
        self._due = now + PERIOD
        self._timer = self.loop.call_later(PERIOD, self._look)

    def _look(self) -> None:
        now = time.perf_counter()
        LOOP_LAG.observe(max(0.0, now - self._due))
        # Due a period after now, not after the last due time: a stall is counted once, not
        # again by each look it made late.
        self._arm(now)
