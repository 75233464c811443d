"""How a kernel's keeper (:mod:`kernelpad.kernels.keeper`) is started, and started again to clean
up after the watch in C: its command lines. The server builds the first; the keeper itself
the second, so this module imports no more than the keeper does (``os`` and ``sys``)."""

from __future__ import annotations

import os
import sys

# Not typing's: see the keeper's module.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

PDEATHSIG = ["setpriv", "--pdeathsig", "KILL", "--"]
MODULE = "kernelpad.kernels.keeper"
# Without site (-S), kernelpad is found where this file is; the module's name stays in the
# command line (as sys.argv[1]) so that whoever looks for keepers there still finds them.
_BOOT = "import sys; sys.path.insert(0, {root!r}); from {module} import main; sys.exit(main())"


def _python() -> list[str]:
    """The keeper's Python, as every keeper runs it (then its arguments)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    return [sys.executable, "-I", "-S", "-c", _BOOT.format(root=root, module=MODULE), MODULE]


def command(
    lease: Path,
    folder: Path,
    wait: float,
    cgroups: list[Path],
    pass_fd: int | None,
    relay: Path | None = None,
) -> list[str]:
    """The command that starts a keeper (to be followed by the kernel's): with the same
    Python, whatever the kernel runs. The kernel dies with its keeper (a parent-death signal,
    where ``setpriv`` is there; bubblewrap's ``--die-with-parent`` in the sandbox too). With
    ``relay`` (the server's connection file of a TCP-only kernel), the keeper starts in a
    network namespace of its own, which the kernel's sandbox then shares. The keeper hands
    over to the watch in C where the installer built it (:func:`watch_program`)."""
    argv = [*_python(), str(lease), str(folder), "--wait", f"{wait:g}"]
    for cgroup in cgroups:
        argv += ["--cgroup", str(cgroup)]
    if pass_fd is not None:
        argv += ["--fd", str(pass_fd)]
    watch = watch_program()
    if watch is not None:
        argv += ["--watch", str(watch)]
    if relay is not None:
        from kernelpad.kernels.relay import PREFIX

        argv = [*PREFIX, *argv, "--relay", str(relay)]
    argv.append("--")
    return argv + death_signal_prefix()


def watch_program() -> Path | None:
    """The watch in C that ``python -m kernelpad.kernels.install`` built from this version's
    sources (``keeper_watch.c``, ``keeper_relay.c``), or None (no compiler there, or not
    installed since they changed): the keeper then watches its kernel in Python, as before."""
    from kernelpad.kernels.install import keeper_watch_path

    program = keeper_watch_path()
    return program if os.access(program, os.X_OK) else None


def clean_up_command(folder: str, cgroups: list[str]) -> list[str]:
    """What the watch in C execs once its kernel has ended: the keeper's clean-up."""
    argv = [*_python(), "--clean-up", folder]
    for cgroup in cgroups:
        argv += ["--cgroup", cgroup]
    return argv


def death_signal_prefix() -> list[str]:
    """The command prefix that ties a process's life to its parent's, where available."""
    import shutil

    return PDEATHSIG if shutil.which(PDEATHSIG[0]) else []
