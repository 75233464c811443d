"""A box lives no longer than the bwrap its keeper starts: a keeper stopping a kernel kills that
process (and the server kills the keeper's process group), and nothing inside may outlive it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from kernelpad.kernels.sandbox import Sandbox, SandboxLimits
from kernelpad.kernels.seccomp import compile_filter, program_fd

USER = "kernelpad-kernel"
LIMITS = SandboxLimits(
    memory_mb=256, processes=4096, cpu_seconds=60, file_size_mb=8, open_files=256, tmp_mb=16
)


def alive(process: psutil.Process) -> bool:
    try:
        return bool(process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize("userns_disabled", [True, False], ids=["nested", "single"])
def test_nothing_in_a_box_outlives_its_bwrap(tmp_path: Path, userns_disabled: bool) -> None:
    # Bubblewrap ties what runs in it to its parent with the parent-death signal, which the
    # Linux kernel sends with the dying parent's credentials: bwrap's own init (root) is what
    # carries it into the box. With ``--as-pid-1`` the box's pid 1 would be a process of the
    # kernel's user (the second bwrap, or the kernel), which the outer bwrap, root without
    # capabilities by then, may not signal: the box would go on.
    program = compile_filter()
    sandbox = Sandbox(USER, LIMITS, None, program, userns_disabled=userns_disabled)
    fd = program_fd(program)
    try:
        box = subprocess.Popen(
            sandbox.wrap(["sleep", "600"], tmp_path, [], fd),
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
        )
    finally:
        os.close(fd)
    inside: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 30
        while not any(p.name() == "sleep" for p in inside) and time.monotonic() < deadline:
            time.sleep(0.05)
            inside = psutil.Process(box.pid).children(recursive=True)
        assert any(p.name() == "sleep" for p in inside), inside
        os.kill(box.pid, signal.SIGKILL)
        box.wait()
        deadline = time.monotonic() + 10
        while any(alive(p) for p in inside) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [p.pid for p in inside if alive(p)] == []
    finally:
        box.kill()
        box.wait()
        for process in inside:
            if alive(process):
                process.kill()
