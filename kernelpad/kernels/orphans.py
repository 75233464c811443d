"""Kernels must not outlive the kernelpad that started them, even one killed with SIGKILL.

Two safeguards, because neither is enough alone:

* every kernel is launched under ``setpriv --pdeathsig KILL``, so the kernel process dies with
  the server, whatever the way the server ends;
* but a kernel's own children (JJava's launcher starts the real kernel as a second JVM) do not
  inherit that. So each server writes its pid into its runtime folder, and a starting server
  kills what is left of servers that are gone: every process whose command line names their
  runtime folder (the kernel's connection file lives there), with its process group.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
from pathlib import Path

log = logging.getLogger(__name__)

PID_FILE = "server.pid"
RUNTIME_PREFIX = "kernelpad-"
PDEATHSIG = ["setpriv", "--pdeathsig", "KILL", "--"]


def death_signal_prefix() -> list[str]:
    """The command prefix that ties a kernel's life to this process, where available."""
    return PDEATHSIG if shutil.which(PDEATHSIG[0]) else []


def claim(runtime_dir: Path) -> None:
    """Mark ``runtime_dir`` as this server's."""
    (runtime_dir / PID_FILE).write_text(str(os.getpid()))


def _alive(pid: int) -> bool:
    # A reused pid makes a dead server look alive: its kernels are then left alone, the safe
    # way to be wrong.
    return Path(f"/proc/{pid}").exists()


def _processes_naming(folder: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if folder.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def sweep(parent: Path) -> int:
    """Stop the kernels of dead servers whose runtime folders are in ``parent``; remove the
    folders. Returns how many processes were stopped."""
    stopped = 0
    for folder in parent.glob(RUNTIME_PREFIX + "*"):
        try:
            pid = int((folder / PID_FILE).read_text())
        except (OSError, ValueError):
            continue  # not ours to judge: no pid file
        if pid == os.getpid() or _alive(pid):
            continue
        count = 0
        for orphan in _processes_naming(str(folder)):
            with contextlib.suppress(OSError):
                os.killpg(os.getpgid(orphan), signal.SIGKILL)
                count += 1
        shutil.rmtree(folder, ignore_errors=True)
        if count:
            log.warning("stopped %d kernel process(es) left by a dead kernelpad (%s)", count, pid)
        stopped += count
    return stopped
