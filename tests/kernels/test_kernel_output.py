"""A sandboxed kernel's stdout and stderr, as the server reads them: a short tail kept, and a
flood read no faster than the rate (a pipe written here); a kernel's last words when it fails to
start."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from kernelpad.errors import KernelStartFailed
from kernelpad.kernels.kernel_output import RATE, TAIL, KernelOutput
from kernelpad.kernels.languages import InstalledLanguage, Language
from kernelpad.kernels.local import LocalKernelBackend
from kernelpad.kernels.runtime import remove_tree
from kernelpad.kernels.sandbox import Sandbox, SandboxLimits

USER = "kernelpad-kernel"


async def test_a_flood_is_read_at_a_bounded_rate_and_only_its_tail_kept() -> None:
    output, write_end = await KernelOutput.open("flood")
    os.set_blocking(write_end, False)
    chunk = b"x" * 65536
    written = 0
    loop = asyncio.get_running_loop()
    blocked_since: float | None = None
    try:
        # Write until the pipe has stayed full for a while: the server has stopped reading.
        while blocked_since is None or loop.time() - blocked_since < 0.3:
            try:
                written += os.write(write_end, chunk)
                blocked_since = None
            except BlockingIOError:
                blocked_since = blocked_since or loop.time()
            await asyncio.sleep(0)
        # The rate's worth was read within its second; then the writer had to wait.
        assert RATE <= output.total < RATE + 2**20
        assert written < output.total + 2**20
        # In the next second, reading goes on.
        end = b"the end\n"
        while end:
            try:
                end = end[os.write(write_end, end) :]
            except BlockingIOError:
                await asyncio.sleep(0.05)
        for _ in range(60):
            if output.tail().endswith("the end\n"):
                break
            await asyncio.sleep(0.05)
        assert output.tail().endswith("x" * 100 + "the end\n")
        assert len(output.tail()) == TAIL
    finally:
        os.close(write_end)
        output.close()


async def test_a_kernel_that_does_not_start_has_its_last_words_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = tmp_path / "kernels" / "broken"
    spec.mkdir(parents=True)
    argv = ["sh", "-c", "echo 'cannot go on' >&2; exit 3", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "Broken", "language": "python"})
    )
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    limits = SandboxLimits(256, 4096, 60, 8, 256, 16)
    runtime = Path(tempfile.mkdtemp(prefix="kp-"))  # short: Unix sockets' paths are
    backend = LocalKernelBackend(runtime, specs, tmp_path, 10, Sandbox.create(USER, limits))
    broken = Language("broken", "Broken", ("broken",), "txt", "")
    language = InstalledLanguage(broken, "broken", "Broken", None, transport="ipc")
    try:
        with (
            caplog.at_level(logging.WARNING, logger="kernelpad.kernels.local"),
            pytest.raises(KernelStartFailed),
        ):
            await backend.start(language)
    finally:
        remove_tree(runtime)
    said = [r.getMessage() for r in caplog.records if "did not start" in r.getMessage()]
    assert said and "cannot go on" in said[0], said


async def test_the_reading_end_is_closed_once_when_the_kernel_is_gone() -> None:
    """Its one owner closes it: at the end of file, and no second time on ``close``, so that
    no descriptor another thread opened meanwhile under the same number is closed."""
    output, write_end = await KernelOutput.open("gone")
    read_end = output._fd
    os.write(write_end, b"last words\n")
    os.close(write_end)
    await output.ended(timeout=5.0)
    assert output.tail() == "last words\n"
    with pytest.raises(OSError):
        os.fstat(read_end)  # closed at the end of file
    # The number, taken again by a descriptor of someone else's, is left alone.
    other = os.open(os.devnull, os.O_RDONLY)
    try:
        output.close()
        os.fstat(other)
    finally:
        os.close(other)


async def test_closing_while_paused_for_the_rate_stops_reading() -> None:
    output, write_end = await KernelOutput.open("paused")
    os.set_blocking(write_end, False)
    try:
        for _ in range(2000):  # until the rate's worth is read and reading waits
            with contextlib.suppress(BlockingIOError):
                os.write(write_end, b"x" * 65536)
            await asyncio.sleep(0)
            if output.total >= RATE:
                break
        assert output.total >= RATE
        output.close()
        await asyncio.sleep(1.1)  # past the window: nothing resumes on a closed descriptor
        assert output.total < RATE + 2**20
    finally:
        os.close(write_end)


async def test_closing_kernels_outputs_never_closes_another_threads_descriptor() -> None:
    """Outputs opened and ended over and over while other threads open, check and close
    descriptors of their own. Read through uvloop's pipe transport, the old way, a descriptor
    closed twice showed as a thread's closed under it, or as this test's pipe broken."""
    stolen: list[int] = []
    stop = threading.Event()

    def opener() -> None:
        while not stop.is_set():
            fd = os.open(os.devnull, os.O_RDONLY)
            try:
                os.fstat(fd)
                os.close(fd)
            except OSError as exc:
                stolen.append(exc.errno or 0)

    threads = [threading.Thread(target=opener) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(10000):
            output, write_end = await KernelOutput.open("churn")
            os.write(write_end, b"bye\n")
            os.close(write_end)
            await output.ended(timeout=5.0)
            output.close()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert stolen == []
