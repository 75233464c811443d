"""Kernels in a box: candidates' code runs in bubblewrap, as an unprivileged user, cut off from
the network, the server's files and other kernels, within limits.

What a sandboxed kernel sees: the system's programs and libraries read-only (``/usr``, ``/etc``,
...), the Python installation and virtualenv it runs from, kernelpad's own package (the C++
kernel is part of it), a private ``/tmp`` of a fixed size (its home and working directory), and
its own runtime folder (its connection files, which it reads and cannot write, and Unix
sockets). Not the data dir, the database, the server's runtime files, ``/root``, ``/home`` or
anything else. Its network namespace has only a loopback of its own, so kernels talk to the
server over Unix sockets (ZeroMQ ``ipc``); kernels that only speak TCP are relayed by their
keeper, which runs in that network namespace (:mod:`kernelpad.kernels.relay`; where no such
namespace can be made, their languages are unavailable: :func:`relay_problem`). What it writes
to its stdout and stderr goes to a pipe the server reads
(:mod:`kernelpad.kernels.kernel_output`): it writes to no disk of the host's but its ``/tmp``.

What it may ask of the Linux kernel: nothing that needs a capability (it has none), no new
user namespace (it runs in one of its own that can make no other, where bubblewrap can do that:
0.8 or later, on a machine that lets unprivileged users make user namespaces), and none of the
system calls the seccomp filter denies (:mod:`kernelpad.kernels.seccomp`). Where the filter or
the user namespace cannot be had, the server says so at start, as it does for cgroups.

Limits: memory and processes through a cgroup per kernel where the cgroup tree is writable
(v2, else v1: :mod:`kernelpad.kernels.cgroups`), else ``RLIMIT_AS`` and ``RLIMIT_NPROC``; CPU
time, file size and open files as rlimits; the size of ``/tmp`` as the tmpfs size.
"""

from __future__ import annotations

import logging
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import kernelpad
from kernelpad.kernels.cgroups import Cgroups
from kernelpad.kernels.relay import PREFIX
from kernelpad.kernels.seccomp import SeccompUnavailable, compile_filter

log = logging.getLogger(__name__)

BWRAP = "bwrap"
# Read-only, as they are: programs, libraries, configuration (no secrets a non-root user may
# read: /etc/shadow stays unreadable to the kernel's user).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
# Of the server's environment, only these reach a kernel (with its kernelspec's own).
ENV_ALLOWED = ("LANG", "LC_ALL", "LC_CTYPE", "TZ")
HOME = "/tmp"
#: What an interviewer is told of a language whose kernel only speaks TCP (Deno's, JJava) where
#: its keeper cannot have a network namespace of its own; the server's log says why.
NO_RELAY = (
    "its kernel only speaks TCP, which the sandbox carries through a network of the kernel's"
    " own, and this server cannot make one (its log says why)"
)


@dataclass(frozen=True)
class SandboxLimits:
    """What one kernel may use."""

    memory_mb: int
    processes: int
    cpu_seconds: int
    file_size_mb: int
    open_files: int
    tmp_mb: int


class Sandbox:
    """Wraps kernel commands in bubblewrap, as ``user``, within ``limits``; with the seccomp
    filter's program ``seccomp`` where there is one, and in a user namespace that can make no
    other where ``userns_disabled``."""

    def __init__(
        self,
        user: str,
        limits: SandboxLimits,
        cgroups: Cgroups | None,
        seccomp: bytes | None = None,
        userns_disabled: bool = False,
        relay_problem: str | None = None,
    ) -> None:
        entry = pwd.getpwnam(user)
        self.user = user
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        self.limits = limits
        self.cgroups = cgroups
        self.seccomp = seccomp
        self.userns_disabled = userns_disabled
        #: Why kernels that only speak TCP cannot run here (see :func:`relay_problem`), or None.
        self.relay_problem = relay_problem
        self.readonly = _readonly_paths()

    @classmethod
    def create(cls, user: str, limits: SandboxLimits) -> Sandbox:
        """A sandbox for this machine; raises ``RuntimeError`` saying what is missing. What it
        does without, it says (a warning each): cgroups, the seccomp filter, disabling user
        namespaces; and whether kernels that only speak TCP can run (:func:`relay_problem`).
        Runs a box and ``unshare`` once: call it off the event loop."""
        problem = cls.problem(user)
        if problem:
            raise RuntimeError(problem)
        cgroups = Cgroups.find()
        if cgroups is None:
            log.warning(
                "no writable cgroup tree: kernels' memory and processes are limited by rlimits"
                " (RLIMIT_AS, RLIMIT_NPROC) instead"
            )
        try:
            seccomp: bytes | None = compile_filter()
        except SeccompUnavailable as exc:
            seccomp = None
            log.warning(
                "no seccomp filter for kernels (%s): they may make the system calls it denies"
                " (unshare, mount, ptrace, keyctl, bpf, perf_event_open, io_uring, ...)",
                exc,
            )
        sandbox = cls(user, limits, cgroups, seccomp, userns_disabled=True)
        why = sandbox.userns_problem()
        if why:
            sandbox.userns_disabled = False
            log.warning(
                "kernels' user namespaces cannot be disabled here (%s): %s",
                why,
                "the seccomp filter alone keeps kernels from making them"
                if seccomp
                else "kernels can make user namespaces, in which they are root and can mount",
            )
        sandbox.relay_problem = relay_problem()
        if sandbox.relay_problem:
            log.warning(
                "kernels that only speak TCP (Deno's, JJava) cannot run: their keeper cannot"
                " make a network namespace of its own (%s); their languages are unavailable",
                sandbox.relay_problem,
            )
        return sandbox

    def unavailable(self, transport: str) -> str | None:
        """Why a kernel speaking ZeroMQ over ``transport`` ("ipc", "tcp") cannot run in this
        sandbox, in the words of the languages' list (:data:`NO_RELAY`); None if it can."""
        return NO_RELAY if transport != "ipc" and self.relay_problem else None

    def describe(self) -> str:
        """What holds kernels in, for the log at start."""
        limits = f"cgroup v{self.cgroups.version}" if self.cgroups else "rlimits"
        return ", ".join(
            [
                f"memory limits by {limits}",
                "user namespaces disabled"
                if self.userns_disabled
                else "user namespaces NOT disabled",
                "seccomp filter on" if self.seccomp else "NO seccomp filter",
            ]
        )

    def userns_problem(self) -> str | None:
        """Why kernels cannot be kept from making user namespaces here, or None: a box, as
        kernels get it, runs ``true`` in a user namespace that can make no other. It fails
        where bubblewrap is older than 0.8, or where the machine lets no unprivileged user make
        a user namespace (then kernels cannot make one either)."""
        with tempfile.TemporaryDirectory(prefix="kernelpad-probe-") as folder:
            command = self.wrap(["true"], Path(folder), [])
            try:
                done = subprocess.run(
                    command, stdin=subprocess.DEVNULL, capture_output=True, timeout=30
                )
            except (OSError, subprocess.SubprocessError) as exc:
                return str(exc)
        if done.returncode == 0:
            return None
        said = done.stderr.decode(errors="replace").strip()
        return said.splitlines()[-1] if said else f"exit status {done.returncode}"

    @staticmethod
    def problem(user: str) -> str | None:
        """Why kernels cannot be sandboxed here, or None."""
        if shutil.which(BWRAP) is None:
            return "bubblewrap (bwrap) is not installed; 'make' installs it (Debian: bubblewrap)"
        if os.geteuid() != 0:
            return "the sandbox runs kernels as another user, which needs kernelpad to run as root"
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"the kernels' user {user!r} does not exist; 'make' creates it"
        return None

    def prepare(self, name: str, kernel_dir: Path, connection_file: Path) -> list[Path]:
        """Hand the kernel its folder; make its cgroup. Returns the cgroup files its process
        must join. Its connection file stays root's, readable by the kernel's group: a file
        it could write is host disk outside its quota."""
        os.chown(kernel_dir, self.uid, self.gid)
        os.chown(connection_file, 0, self.gid)
        os.chmod(connection_file, 0o640)
        if self.cgroups is None:
            return []
        try:
            return self.cgroups.make(name, self.limits.memory_mb, self.limits.processes)
        except OSError:
            log.warning("kernel %s: no cgroup; rlimits only", name, exc_info=True)
            return []

    def seal(self, kernel_dir: Path) -> None:
        """Once the kernel has started, nothing in its folder is its own: it can add, remove or
        replace nothing there (a socket swapped for a symlink would send the server's
        connections elsewhere), nor write into the files its start left there (its keeper's
        relay writes one, as root, before it starts): it reads them, as their group."""
        os.chown(kernel_dir, 0, 0)
        os.chmod(kernel_dir, 0o755)
        for entry in os.scandir(kernel_dir):
            if not entry.is_file(follow_symlinks=False):
                continue  # its sockets: they hold no data
            # Opened without following a link, and checked once open: the file it is.
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    os.fchown(fd, 0, self.gid)
                    os.fchmod(fd, 0o640)
            finally:
                os.close(fd)

    def release(self, name: str) -> None:
        if self.cgroups is not None:
            self.cgroups.remove(name)

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        """The kernel's environment: the allowed part of ``env`` (the server's), never its
        settings, tokens or paths."""
        kept = {key: env[key] for key in ENV_ALLOWED if key in env}
        # Runtimes with a heap of their own get one below the kernel's memory limit: a program
        # that fills it gets an error it can see (OutOfMemoryError, a V8 heap error) rather
        # than a kernel killed from outside, and where no cgroup limits memory, this is the
        # limit (RLIMIT_AS would stop the JVM and V8 from starting at all).
        # Half: a JVM needs about as much again outside its heap (and JJava starts two).
        heap_mb = max(32, self.limits.memory_mb // 2)
        kept.update(
            {
                "PATH": f"{Path(sys.prefix) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
                "HOME": HOME,
                "TMPDIR": HOME,
                "JUPYTER_PLATFORM_DIRS": "1",
                "JAVA_TOOL_OPTIONS": f"-Xmx{heap_mb}m",
                "DENO_V8_FLAGS": f"--max-old-space-size={heap_mb}",
            }
        )
        return kept

    def wrap(
        self,
        argv: list[str],
        kernel_dir: Path,
        joins: list[Path],
        seccomp_fd: int | None = None,
        network: bool = True,
    ) -> list[str]:
        """``argv`` as it runs in the box; ``seccomp_fd``, if given, is where bubblewrap reads
        the filter's program from (the process must inherit it: see :func:`program_fd`).
        ``network``: the box makes its network namespace; False where the box runs in one
        made for it already (its keeper's, which relays a TCP kernel: never the host's)."""
        limits = self.limits
        box = [
            BWRAP,
            *(["--unshare-net"] if network else []),
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--die-with-parent",
            # A kernel gets no terminal to inject keystrokes into.
            "--new-session",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "--size",
            str(limits.tmp_mb * 2**20),
            "--perms",
            "1777",
            "--tmpfs",
            "/tmp",
        ]
        made: set[str] = set(SYSTEM_DIRS) | {"/tmp"}
        for folder in SYSTEM_DIRS:
            if os.path.isdir(folder):
                box += ["--ro-bind", folder, folder]
        for path in self.readonly:
            box += _parents(path, made) + ["--ro-bind", str(path), str(path)]
        box += _parents(kernel_dir, made) + ["--bind", str(kernel_dir), str(kernel_dir)]
        seccomp = [] if seccomp_fd is None else ["--seccomp", str(seccomp_fd)]
        # The filter comes last, as the kernel starts: the second bwrap (below) must still
        # make its user namespace.
        if not self.userns_disabled:
            box += seccomp
        box += ["--chdir", HOME, "--"]
        rlimits = [
            "prlimit",
            f"--cpu={limits.cpu_seconds}",
            f"--fsize={limits.file_size_mb * 2**20}",
            f"--nofile={limits.open_files}",
        ]
        if not joins:
            # No cgroup: the process count of the kernels' user, and address space (which
            # runtimes that reserve much more than they use, JVM and V8, do not tolerate).
            rlimits.append(f"--nproc={limits.processes}")
            if not _reserves_address_space(argv):
                rlimits.append(f"--as={limits.memory_mb * 2**20}")
        user = [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
        ]
        nested: list[str] = []
        if self.userns_disabled:
            # A user namespace of its own, which can make no other (bwrap sets its
            # user.max_user_namespaces to 1 and enters a second one). A second bwrap, as the
            # kernel's user, makes it: a user namespace bwrap made as root would map the
            # kernel's uid to root's. It sees the same box, and maps only the kernel's uid.
            nested = [
                BWRAP,
                "--unshare-user",
                "--disable-userns",
                "--assert-userns-disabled",
                "--dev-bind",
                "/",
                "/",
                "--die-with-parent",
                "--chdir",
                HOME,
                *seccomp,
                "--",
            ]
        # ipykernel watches its parent's pid, which (from outside the pid namespace) it cannot
        # see: it would exit at once. 1 tells it not to watch (--die-with-parent does that).
        inner = [*rlimits, "--", *user, "--", *nested, "/usr/bin/env", "JPY_PARENT_PID=1", *argv]
        command = [*box, *inner]
        # Join the cgroups first, as root, so everything the kernel starts is counted; and if
        # the machine runs out of memory, a kernel goes before the server.
        steps = [f"echo $$ > {shlex.quote(str(f))}" for f in joins]
        steps.append("echo 1000 > /proc/self/oom_score_adj")
        script = " && ".join(steps)
        return ["/bin/sh", "-c", f'{script} && exec "$@"', "kernelpad-sandbox", *command]


def relay_problem(command: list[str] | None = None) -> str | None:
    """Why the keeper of a kernel that only speaks TCP cannot start in a network namespace of
    its own here (``unshare`` missing, or the machine refusing it), or None: runs ``command``
    (by default the keeper's prefix, :data:`kernelpad.kernels.relay.PREFIX`, with ``true``)
    as keepers run it."""
    command = [*PREFIX, "true"] if command is None else command
    if shutil.which(command[0]) is None:
        return f"{command[0]} is not installed (Debian: util-linux)"
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{shlex.join(command)}: {exc}"
    if done.returncode == 0:
        return None
    said = done.stderr.decode(errors="replace").strip()
    why = said.splitlines()[-1] if said else f"exit status {done.returncode}"
    return f"{shlex.join(command)}: {why}"


def _parents(path: Path, made: set[str]) -> list[str]:
    """bwrap creates missing parents of a mount point 0700, unreadable to the kernel's user:
    create them 0755 first."""
    args: list[str] = []
    for parent in reversed(path.parents):
        name = str(parent)
        if name == "/" or name in made:
            continue
        made.add(name)
        args += ["--perms", "0755", "--dir", name]
    made.add(str(path))
    return args


def _readonly_paths() -> list[Path]:
    """What kernels run from, outside the system folders: the Python installation, the
    virtualenv, kernelpad's package."""
    paths = {
        Path(sys.base_prefix).resolve(),
        Path(sys.prefix),
        Path(sys.prefix).resolve(),
        Path(kernelpad.__file__).resolve().parent,
    }
    covered = [p for p in paths if not any(str(p).startswith(d + "/") for d in SYSTEM_DIRS)]
    # A path inside another one is bound with it.
    return sorted(p for p in covered if not any(q != p and q in p.parents for q in covered))


def _reserves_address_space(argv: list[str]) -> bool:
    return any(Path(arg).name in ("java", "deno", "node") for arg in argv)
