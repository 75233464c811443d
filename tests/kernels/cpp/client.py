"""kernelpad's C++ kernel started as Jupyter starts it (its kernelspec), with a ready client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from jupyter_client.manager import AsyncKernelManager


@contextlib.asynccontextmanager
async def cpp_kernel(graceful: bool = False) -> AsyncIterator[Any]:
    """A started C++ kernel's client; shut down after (``graceful``: with a shutdown request,
    so that the kernel cleans up after itself, rather than killed)."""
    manager = AsyncKernelManager(kernel_name="cpp")
    await manager.start_kernel()
    client = manager.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)
    try:
        yield client
    finally:
        client.stop_channels()
        await manager.shutdown_kernel(now=not graceful)
