"""What a sandboxed kernel writes to its stdout and stderr, at the level of the descriptors (its
runtime's own logs, a crash's last words; ipykernel copies there whatever reaches descriptors 1
and 2): read by the server through a pipe and kept as a short tail, never written to disk.

A file for it in the kernel's folder (as kernels had before) was disk of the host's that no
quota counted: up to the file size limit, on the host's ``/tmp``, with a kernel able to write it
at will. The pipe holds nothing, and the server keeps the last few KiB: logged if the kernel
fails to start, at debug level when it stops.

Reading costs the server a wake-up per chunk, so a kernel that floods its descriptors is read
at a bounded rate: past it, the pipe is left full for the rest of the second, and the kernel's
writes wait, in its own time rather than the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import cast

log = logging.getLogger(__name__)

TAIL = 8192  # bytes kept
RATE = 4 * 2**20  # bytes read per second, at most


class KernelOutput(asyncio.Protocol):
    """The reading end of a kernel's stdout and stderr."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.total = 0
        self._tail = bytearray()
        self._transport: asyncio.ReadTransport | None = None
        self._window_end = 0.0
        self._window_bytes = 0
        self._closed = False
        self._eof = asyncio.Event()

    @classmethod
    async def open(cls, name: str) -> tuple[KernelOutput, int]:
        """A pipe read by a new ``KernelOutput``; the descriptor to give the kernel as its
        stdout and stderr (close-on-exec: only the kernel it is given to gets it; the caller
        closes it once the kernel has started)."""
        read_fd, write_fd = os.pipe()
        loop = asyncio.get_running_loop()
        try:
            pipe = os.fdopen(read_fd, "rb", buffering=0)
        except OSError:
            os.close(read_fd)
            os.close(write_fd)
            raise
        try:
            _, output = await loop.connect_read_pipe(lambda: cls(name), pipe)
        except BaseException:
            pipe.close()
            os.close(write_fd)
            raise
        return output, write_fd

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.ReadTransport, transport)

    def data_received(self, data: bytes) -> None:
        self.total += len(data)
        self._tail += data[-TAIL:]
        del self._tail[:-TAIL]
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now >= self._window_end:
            self._window_end, self._window_bytes = now + 1.0, 0
        self._window_bytes += len(data)
        if self._window_bytes >= RATE and self._transport is not None:
            self._transport.pause_reading()
            loop.call_at(self._window_end, self._resume)

    def _resume(self) -> None:
        if not self._closed and self._transport is not None:
            self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._eof.set()

    async def ended(self, timeout: float) -> None:
        """Wait (``timeout`` seconds at most) for the writing end to close."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._eof.wait(), timeout)

    def tail(self) -> str:
        """The last of what the kernel wrote, as text."""
        return self._tail.decode(errors="replace")

    def close(self) -> None:
        """Stop reading (the kernel is gone, or going): what it writes from now on has no
        reader, and fails."""
        self._closed = True
        if self._transport is not None:
            self._transport.close()
        if self.total:
            log.debug(
                "kernel %s wrote %d bytes to its stdout and stderr; the last: %r",
                self.name,
                self.total,
                self.tail()[-1024:],
            )
