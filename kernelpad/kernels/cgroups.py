"""A cgroup per sandboxed kernel, for its memory and its processes (threads included), made under
the server's own cgroups: v2 where that tree is writable, else v1. Where neither can be made,
the sandbox limits kernels by rlimits instead (see :mod:`kernelpad.kernels.sandbox`)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from pathlib import Path

log = logging.getLogger(__name__)


class Cgroups:
    """A cgroup per kernel for memory and processes, under the server's own cgroups."""

    def __init__(self, memory: Path, pids: Path, version: int) -> None:
        self.memory = memory
        self.pids = pids
        self.version = version

    @classmethod
    def find(cls) -> Cgroups | None:
        """Where kernels' cgroups can be made here, or None (then rlimits stand in)."""
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return None
        own = {}
        for line in lines:
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") or [""]:
                own[controller] = path.lstrip("/")
        root = Path("/sys/fs/cgroup")
        candidates = []
        if "memory" in own and "pids" in own:
            memory = root / "memory" / own["memory"] / "kernelpad"
            candidates.append(cls(memory, root / "pids" / own["pids"] / "kernelpad", 1))
        if "" in own and (root / "cgroup.controllers").exists():
            base = root / own[""] / "kernelpad"
            candidates.append(cls(base, base, 2))
        for cgroups in candidates:
            if cgroups._usable():
                return cgroups
        return None

    def _usable(self) -> bool:
        try:
            for folder in {self.memory, self.pids}:
                folder.mkdir(exist_ok=True)
            if self.version == 2:
                controllers = (self.memory / "cgroup.controllers").read_text().split()
                if not {"memory", "pids"} <= set(controllers):
                    return False
                (self.memory / "cgroup.subtree_control").write_text("+memory +pids")
            probe = self.make("probe", memory_mb=64, processes=16)
            self.remove("probe")
            return bool(probe)
        except OSError:
            return False

    def make(self, name: str, memory_mb: int, processes: int) -> list[Path]:
        """The cgroup of kernel ``name``, limited; the files a process joins it through."""
        memory, pids = self.memory / name, self.pids / name
        for folder in {memory, pids}:
            folder.mkdir(exist_ok=True)
        if self.version == 2:
            (memory / "memory.max").write_text(str(memory_mb * 2**20))
            with contextlib.suppress(OSError):
                (memory / "memory.swap.max").write_text("0")
            (pids / "pids.max").write_text(str(processes))
            return [memory / "cgroup.procs"]
        (memory / "memory.limit_in_bytes").write_text(str(memory_mb * 2**20))
        swap = memory / "memory.memsw.limit_in_bytes"
        with contextlib.suppress(OSError):
            swap.write_text(str(memory_mb * 2**20))
        (pids / "pids.max").write_text(str(processes))
        return [memory / "cgroup.procs", pids / "cgroup.procs"]

    def folders(self, name: str) -> list[Path]:
        """The cgroup folders of kernel ``name`` (one in v2, two in v1)."""
        return sorted({self.memory / name, self.pids / name})

    def remove(self, name: str) -> None:
        """Remove a kernel's cgroup, killing what is left in it (children it left behind)."""
        for folder in self.folders(name):
            remove_cgroup(folder)


def remove_cgroup(folder: Path) -> None:
    """Remove one cgroup folder, killing what is left in it. Also the keeper's job
    (:mod:`kernelpad.kernels.keeper`), when no server is there to do it."""
    for _ in range(50):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            # Busy: processes are still in it, or were until a moment ago.
            with contextlib.suppress(OSError, ValueError):
                for pid in (folder / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.05)
    log.warning("the cgroup %s could not be removed", folder)
