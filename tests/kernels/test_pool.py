"""The pool of pre-started kernels, on real ipykernel processes."""

from __future__ import annotations

import asyncio
import os
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from kernelpad.kernels.base import KernelHandle
from kernelpad.kernels.languages import LanguageRegistry
from kernelpad.kernels.local import LocalKernelBackend
from kernelpad.kernels.pool import KernelPool
from kernelpad.kernels.run_loop import Limits
from kernelpad.kernels.runner import KernelRunner
from tests.conftest import eventually, gone


@pytest.fixture(scope="module")
async def registry() -> LanguageRegistry:
    registry = LanguageRegistry()
    await registry.refresh()
    return registry


@pytest.fixture
async def pool(registry: LanguageRegistry) -> AsyncIterator[KernelPool]:
    with tempfile.TemporaryDirectory(prefix="kp-") as runtime:
        backend = LocalKernelBackend(Path(runtime), registry.spec_manager, Path(runtime))
        pool = KernelPool(backend, registry, {"python": 1})
        yield pool
        await pool.close()


async def test_acquire_hands_out_a_ready_kernel_and_refills(
    pool: KernelPool, registry: LanguageRegistry
) -> None:
    python = registry.get("python")
    pool.fill()
    await eventually(lambda: pool.ready_count == 1, "the pool to fill")
    kernel = await pool.acquire(python)
    assert await kernel.is_alive()
    assert kernel.language_info["name"] == "python"
    await eventually(lambda: pool.ready_count == 1, "the pool to refill")
    await kernel.shutdown()
    assert kernel.pid is None or gone(kernel.pid)


async def test_a_dead_pooled_kernel_is_never_handed_out(
    pool: KernelPool, registry: LanguageRegistry
) -> None:
    python = registry.get("python")
    pool.fill()
    await eventually(lambda: pool.ready_count == 1, "the pool to fill")
    dead = pool._ready["python"][0]
    assert dead.pid is not None
    os.kill(dead.pid, signal.SIGKILL)
    # A killed kernel's threads take a moment to exit before its parent can see it dead.
    await eventually(lambda: _dead(dead), "the kernel to be seen dead")
    kernel = await pool.acquire(python)
    assert kernel is not dead and await kernel.is_alive()
    await kernel.shutdown()


async def _dead(kernel: KernelHandle) -> bool:
    return not await kernel.is_alive()


async def test_close_shuts_down_ready_and_starting_kernels(
    pool: KernelPool, registry: LanguageRegistry
) -> None:
    pool.sizes["python"] = 2
    pool.fill()
    await eventually(lambda: pool.ready_count >= 1, "a kernel to be ready")
    ready = [k.pid for k in pool._ready["python"]]
    await pool.close()
    assert pool.ready_count == 0
    assert all(pid is not None and gone(pid) for pid in ready)
    assert not [
        p
        for p in psutil.Process().children(recursive=True)
        if "ipykernel_launcher" in " ".join(p.cmdline())
    ]


async def test_a_run_during_a_restart_leaves_no_kernel_unowned(
    pool: KernelPool, registry: LanguageRegistry
) -> None:
    started: list[KernelHandle] = []
    start = pool.backend.start

    async def recording_start(language: Any) -> KernelHandle:
        kernel = await start(language)
        started.append(kernel)
        return kernel

    pool.backend.start = recording_start  # type: ignore[method-assign]
    runner = KernelRunner(pool, registry.get("python"), queue_size=4, label="race")
    limits = Limits(time_limit=30, interrupt_grace=1, max_output=10_000, flood_limit=10_000)
    await runner.run("x = 1", limits)
    # A restart and a run at the same moment: the run must use the restart's kernel.
    await asyncio.gather(runner.restart(), runner.run("y = 2", limits))
    owned = runner.kernel
    await runner.close()
    await pool.close()
    assert owned in started
    # Every kernel started is shut down: none was left behind by the race.
    assert [kernel for kernel in started if await kernel.is_alive()] == []


def native_threads() -> int:
    return len(os.listdir("/proc/self/task"))


async def test_kernels_share_one_zeromq_context_so_threads_do_not_grow_with_them(
    registry: LanguageRegistry,
) -> None:
    # A context of its own per kernel (jupyter_client's default, for a manager and for each of
    # its clients) is two threads each: four of this server's threads per kernel, 800 at 200.
    python = registry.get("python")
    with tempfile.TemporaryDirectory(prefix="kp-") as runtime:
        backend = LocalKernelBackend(Path(runtime), registry.spec_manager, Path(runtime))
        first = await backend.start(python)
        before = native_threads()  # the shared context's threads are there from now on
        kernels = [await backend.start(python) for _ in range(4)]
        try:
            for kernel in [first, *kernels]:
                await kernel.interrupt()  # the manager's control socket, on the context too
            assert native_threads() - before < 4
        finally:
            await asyncio.gather(*(kernel.shutdown() for kernel in [first, *kernels]))
