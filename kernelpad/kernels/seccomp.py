"""The system calls a sandboxed kernel may not make: a seccomp filter, which bubblewrap installs
in the box (``--seccomp FD``) just before the kernel starts, and which everything the kernel
starts inherits.

In the spirit of Docker's default profile, but a list of what is denied rather than of what is
allowed: the JVM, V8, CPython and clang-repl use hundreds of system calls between them, and an
allow-list would break whichever runtime changes next. Denied is what an interview never needs
and what widens the Linux kernel's attack surface for unprivileged code: new namespaces (above
all user namespaces, in which a process is root and can mount file systems), mounts, tracing
another process or reading its memory, the kernel's keyrings, eBPF, perf events,
userfaultfd and io_uring (the usual ways into kernel exploits), modules, kexec, swap, reboot,
the kernel's log. Most of these already need a capability the kernel does not have: the filter
stops them before that check, and whatever bug is behind it.

A denied call fails with EPERM, as for a process without the privilege, so runtimes report a
clean error rather than dying. clone3 fails with ENOSYS instead, as under Docker: its flags are
in memory, out of a filter's reach, and on ENOSYS libc falls back to clone, whose flags the
filter reads (a clone asking for a new namespace fails with EPERM). A call made through another
architecture's ABI (``int 0x80`` from a 64-bit process) fails with ENOSYS too: the rules are
written for the native one, and a kernel never needs another.

The filter is compiled with libseccomp, through pyseccomp (ctypes; no compiler needed). Where
that cannot be done, :func:`compile_filter` says why, and the sandbox says so at start.
"""

from __future__ import annotations

import errno
import os
import tempfile
from typing import Any

DENIED = (
    # Namespaces (clone's namespace flags and clone3 below).
    "unshare",
    "setns",
    # File systems: mounting, and the calls of the new mount API.
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "open_by_handle_at",
    "quotactl",
    "quotactl_fd",
    # Other processes: the kernel's other processes (bubblewrap's, those it starts) are its
    # user's too.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    # The kernel's keyrings.
    "keyctl",
    "add_key",
    "request_key",
    # Kernel facilities that are a favourite way into kernel bugs.
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    # The machine itself.
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "syslog",
    "iopl",
    "ioperm",
)

# clone's flags that make a namespace. (CLONE_NEWTIME is only a flag of unshare and clone3: in
# clone, its bit is part of the exit signal.)
CLONE_NEW_NAMESPACES = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)


class SeccompUnavailable(RuntimeError):
    """The filter cannot be compiled on this machine."""


def compile_filter() -> bytes:
    """The filter as a BPF program, as bubblewrap's ``--seccomp`` reads it."""
    try:
        import pyseccomp
    except ImportError as exc:
        raise SeccompUnavailable("pyseccomp is not installed ('make' installs it)") from exc
    except (RuntimeError, OSError) as exc:  # it loads libseccomp as it is imported
        reason = f"libseccomp cannot be loaded ({exc}; Debian: libseccomp2)"
        raise SeccompUnavailable(reason) from exc
    try:
        return _compile(pyseccomp)
    except (OSError, ValueError) as exc:
        raise SeccompUnavailable(f"libseccomp could not build the filter: {exc}") from exc


def _compile(seccomp: Any) -> bytes:
    native = seccomp.Arch.NATIVE
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    rules.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.ERRNO(errno.ENOSYS))
    denied = seccomp.ERRNO(errno.EPERM)
    for name in DENIED:
        # A call this architecture does not have (libseccomp resolves it to a negative
        # number) cannot be made here anyway.
        if seccomp.resolve_syscall(native, name) >= 0:
            rules.add_rule(denied, name)
    # Several rules for one call: any that matches denies it.
    for flag in CLONE_NEW_NAMESPACES:
        rules.add_rule(denied, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    if seccomp.resolve_syscall(native, "clone3") >= 0:
        rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as program:
        rules.export_bpf(program)
        program.seek(0)
        return program.read()


def program_fd(program: bytes) -> int:
    """A descriptor to read ``program`` from, from its start: one per kernel (bubblewrap reads
    it to the end, then closes it). Close-on-exec here: only the kernel it is passed to gets
    it."""
    fd = os.memfd_create("kernelpad-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, program)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd
