"""The pool of pre-started kernels, on real ipykernel processes."""

from __future__ import annotations

import os
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from kernelpad.kernels.base import KernelHandle
from kernelpad.kernels.languages import LanguageRegistry
from kernelpad.kernels.local import LocalKernelBackend
from kernelpad.kernels.pool import KernelPool
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
