"""The garbage collector's pauses: what they cost the event loop, and keeping them short.

A full (generation 2) collection walks every object the process holds. With kernelpad's
libraries loaded (jupyter_client, pydantic, tornado, pycrdt, prometheus_client) that is a few
hundred thousand objects that live as long as the server, and each full collection held the
event loop for 130-165 ms here: every edit and every run under way waited that long, which was
the whole of the edit fan-out's p99. :func:`settle` moves what start-up made into the permanent
generation (``gc.freeze``), which collections skip; what sessions make later is collected as
before. :func:`watch` times every collection, for ``/metrics``.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from prometheus_client import Gauge, Histogram

GC_PAUSES = Histogram(
    "kernelpad_gc_pause_seconds",
    "Pauses of the event loop for garbage collection, by generation (2: a full collection).",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)
GC_LONGEST = Gauge(
    "kernelpad_gc_pause_longest_seconds",
    "The longest garbage collection pause since the server started, by generation.",
    ["generation"],
)

_began = 0.0
_longest: dict[int, float] = {}


def _timed(phase: str, info: dict[str, Any]) -> None:
    global _began
    if phase == "start":
        _began = time.perf_counter()
        return
    pause = time.perf_counter() - _began
    generation = int(info["generation"])
    GC_PAUSES.labels(str(generation)).observe(pause)
    if pause > _longest.get(generation, 0.0):
        _longest[generation] = pause
        GC_LONGEST.labels(str(generation)).set(pause)


def watch() -> None:
    """Time every collection from now on (once per process, however many servers)."""
    if _timed not in gc.callbacks:
        gc.callbacks.append(_timed)


def settle() -> None:
    """Collect what start-up left, and set what remains aside for good: the modules, the
    settings, the kernels' specs live as long as the server, and no collection need walk them
    again."""
    gc.collect()
    gc.freeze()
