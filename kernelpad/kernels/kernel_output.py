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

The reading end is this object's own descriptor, watched with ``loop.add_reader`` and closed
once, here. Not a transport of ``loop.connect_read_pipe``: uvloop's, once libuv has closed the
descriptor, closes the pipe's file object as well, a second ``close`` of the same number, which
in a process whose other threads open descriptors (ZeroMQ's, the database's, a folder removed
in a worker thread) can close one of theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

log = logging.getLogger(__name__)

TAIL = 8192  # bytes kept
RATE = 4 * 2**20  # bytes read per second, at most
CHUNK = 65536  # bytes read at a time


class KernelOutput:
    """The reading end of a kernel's stdout and stderr."""

    def __init__(self, name: str, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self.name = name
        self.total = 0
        self._fd = fd  # -1 once closed
        self._loop = loop
        self._tail = bytearray()
        self._window_end = 0.0
        self._window_bytes = 0
        self._eof = asyncio.Event()

    @classmethod
    async def open(cls, name: str) -> tuple[KernelOutput, int]:
        """A pipe read by a new ``KernelOutput``; the descriptor to give the kernel as its
        stdout and stderr (close-on-exec: only the kernel it is given to gets it; the caller
        closes it once the kernel has started)."""
        read_fd, write_fd = os.pipe()
        try:
            os.set_blocking(read_fd, False)
            output = cls(name, read_fd, asyncio.get_running_loop())
            output._loop.add_reader(read_fd, output._readable)
        except BaseException:
            os.close(read_fd)
            os.close(write_fd)
            raise
        return output, write_fd

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # every writing end is closed: the kernel is gone
            self.close()
            return
        self.total += len(data)
        self._tail += data[-TAIL:]
        del self._tail[:-TAIL]
        now = self._loop.time()
        if now >= self._window_end:
            self._window_end, self._window_bytes = now + 1.0, 0
        self._window_bytes += len(data)
        if self._window_bytes >= RATE:
            self._loop.remove_reader(self._fd)
            self._loop.call_at(self._window_end, self._resume)

    def _resume(self) -> None:
        if self._fd >= 0:  # not closed while reading waited
            self._loop.add_reader(self._fd, self._readable)

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
        if self._fd < 0:
            return
        fd, self._fd = self._fd, -1
        self._loop.remove_reader(fd)  # no-op while reading waits for the rate
        os.close(fd)
        self._eof.set()
        if self.total:
            log.debug(
                "kernel %s wrote %d bytes to its stdout and stderr; the last: %r",
                self.name,
                self.total,
                self.tail()[-1024:],
            )
