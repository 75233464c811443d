"""Per-session limits on how often code may run."""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Callable

from kernelpad.errors import RateLimited

WINDOW = 60.0


class RateLimiter:
    """A sliding one-minute window of run times per key; ``per_minute=0`` means no limit."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._hits: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)

    def hit(self, key: str, per_minute: int | None = None) -> None:
        """Count a run for ``key``, or raise :class:`RateLimited` saying when to retry;
        ``per_minute``: this key's limit, if not the limiter's."""
        limit = self.per_minute if per_minute is None else per_minute
        if not limit:
            return
        now = self._clock()
        hits = self._hits[key]
        while hits and hits[0] <= now - WINDOW:
            hits.popleft()
        if len(hits) >= limit:
            retry_after = max(1, math.ceil(hits[0] + WINDOW - now))
            raise RateLimited(
                f"{key} may run code {limit} times per minute"
                f" (RATE_LIMIT_EXECUTIONS_PER_MINUTE, or the host's); try again in"
                f" {retry_after} s.",
                retry_after,
                public=f"You may run code {limit} times a minute: try again in {retry_after} s.",
            )
        hits.append(now)

    def forget(self, prefix: str) -> None:
        """Drop the counts of every key that starts with ``prefix`` and a space (a session's
        participants)."""
        for key in [k for k in self._hits if k == prefix or k.startswith(f"{prefix} ")]:
            del self._hits[key]
