"""Where local kernels keep their files: one folder on this machine for every kernelpad of one
user, so that a server that starts finds the kernels an earlier one left running (see
:mod:`kernelpad.kernels.keeper`).

    <tmp>/kernelpad-kernels-<uid>/<id>/        a kernel's folder: connection file, ipc sockets
    <tmp>/kernelpad-kernels-<uid>/<id>.lease   its keeper's lease, a Unix socket

The system's temporary folder, wherever the data dir is: kernels' Unix sockets need a short
path (about 100 bytes at most).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "kernelpad-kernels-"
LEASE_SUFFIX = ".lease"


def runtime_dir(parent: Path | None = None) -> Path:
    """The folder, made (0700) if missing. One that is not a folder of this user's alone is
    refused: the temporary folder is everyone's, and another user's folder (or a link made
    there in advance) would hand them the kernels' sockets."""
    path = (parent or Path(tempfile.gettempdir())) / f"{PREFIX}{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise RuntimeError(
            f"{path} is not a folder of this user's alone (mode 0700): kernels cannot keep"
            " their files there. Remove it, and kernelpad makes it again."
        )
    return path


def kernel_folder(runtime: Path, kernel_id: str) -> Path:
    return runtime / kernel_id[:12]


def lease_path(folder: Path) -> Path:
    """Where the keeper of the kernel of ``folder`` is reached: beside the folder, not in it,
    so that nothing of it is in the kernel's sandbox."""
    return folder.with_name(folder.name + LEASE_SUFFIX)


def listening() -> set[str]:
    """The paths of the Unix sockets someone listens on (in this network namespace): which
    keepers are there, learnt without connecting to them (a connection would be one more
    holder to turn away)."""
    paths = set()
    with contextlib.suppress(OSError), open("/proc/net/unix") as table:
        next(table, None)
        for line in table:
            fields = line.split()
            # Flags 00010000: accepting connections.
            if len(fields) >= 8 and int(fields[3], 16) & 0x10000:
                paths.add(fields[7])
    return paths


def remove_tree(folder: Path) -> None:
    """Remove a folder a kernel wrote in, however deep it made it (shutil.rmtree recurses,
    and fails on a few thousand levels), never following a link or leaving the file system."""
    try:
        subprocess.run(
            ["rm", "-rf", "--one-file-system", "--", str(folder)],
            check=False,
            timeout=60,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        log.warning("could not remove %s", folder, exc_info=True)


def remove_kernel_files(folder: Path) -> None:
    """A kernel's folder and lease."""
    remove_tree(folder)
    with contextlib.suppress(FileNotFoundError):
        lease_path(folder).unlink()


def _processes_naming(folder: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if folder.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


def sweep(runtime: Path, older_than: float) -> list[str]:
    """Remove what kernels whose keeper is gone left behind (a keeper killed outright, by the
    out-of-memory killer say, has no chance to), stopping any process still naming their
    folder. Folders younger than ``older_than`` seconds are left alone: a kernel starting now
    has a folder before its keeper listens. Returns the names of the kernels swept."""
    swept = []
    now = time.time()
    keepers = listening()
    for folder in runtime.iterdir():
        if folder.suffix == LEASE_SUFFIX or folder.is_symlink() or not folder.is_dir():
            continue
        if str(lease_path(folder)) in keepers:
            continue
        with contextlib.suppress(FileNotFoundError):
            if now - folder.stat().st_mtime < older_than:
                continue
        for orphan in _processes_naming(str(folder)):
            with contextlib.suppress(OSError):
                os.killpg(os.getpgid(orphan), signal.SIGKILL)
        remove_kernel_files(folder)
        swept.append(folder.name)
    for lease in runtime.glob("*" + LEASE_SUFFIX):
        if not lease.with_suffix("").exists() and str(lease) not in keepers:
            with contextlib.suppress(FileNotFoundError):
                lease.unlink()
    if swept:
        log.warning("removed what %d kernel(s) with no keeper left behind", len(swept))
    return swept
