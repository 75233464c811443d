"""The keeper of one local kernel: the kernel's parent, which outlives the server that started
it, so that a server restarting (a deploy, a crash, ``kill -9``) does not take the candidate's
variables with it.

    python -m kernelpad.kernels.keeper LEASE FOLDER [--wait S] [--cgroup DIR]... [--fd N]
        [--relay CONNECTION_FILE] -- COMMAND ...

jupyter_client launches the keeper in the kernel's place (its pid and process group are the
kernel's, as far as it knows); the keeper starts COMMAND, the kernel in its sandbox, and then:

* It holds the kernel's **lease**: a Unix socket at LEASE that only this user can connect to,
  and one connection at a time. The server that holds a connection holds the kernel. When it
  closes (the server stopped, or was killed, or crashed: the operating system closes a dead
  process's sockets, so this needs nothing of the server), the keeper waits ``keep`` seconds
  for a server to connect again, then stops the kernel. ``keep`` is 0 until a server says
  otherwise (a line ``keep SECONDS``): a kernel in the pool holds nobody's variables, so it goes
  at once; a session's kernel waits for the next server to take it back. Before the first
  connection it waits ``--wait`` seconds (the server's start time-out).
* It carries what the kernel writes to its stdout and stderr on to its own (the server's pipe)
  while someone reads it, and drops it once nobody does: a kernel must not die of a broken pipe
  because the server went away.
* When the kernel ends, however (or the keeper itself fails), it removes the kernel's folder,
  its lease and its cgroups, and stops what the kernel left in its process group: nothing is
  left behind, whether or not a server ever comes back.
* For a kernel that only speaks TCP in a sandbox (``--relay``), it carries the server's
  connections from Unix sockets to the kernel's ports, in the network namespace it shares with
  the kernel (:mod:`kernelpad.kernels.relay`): no relay process.

Small on purpose, one per kernel: no thread, no asyncio, and nothing imported but a few
modules of the standard library until the kernel has ended (not even ``typing``: 0.8 MiB);
run with ``python -I -S`` (no ``site``, which the keeper does not need: 1.6 MiB of RSS and 1.4
of PSS less). Smaller still where the installer could build the watch in C
(``keeper_watch.c``, ``--watch PROGRAM``): once the kernel has started, the keeper execs it in
its own place (same pid, same descriptors), and it execs the keeper's Python again only to
clean up (``--clean-up``). Python's interpreter is then not held for the kernel's life: 0.75
MiB of RSS instead of 10 (PSS 0.3 instead of 5).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import sys
import time

from kernelpad.kernels.keeper_command import MODULE, clean_up_command

# Not typing's: importing typing (and re, which it imports) is 0.8 MiB of every keeper's
# memory, for a name only type checkers read (they take any TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from kernelpad.kernels.relay import Relay


GREETING = b"ok\n"  # to the server whose connection the keeper keeps
CHUNK = 4096  # at most this per write: a pipe that select() calls writable takes it whole
TAIL = 65536  # of a kernel's last words, what is passed on at most
# Signals Python ignores, or the keeper handles, that the kernel must get with their defaults.
_DEFAULTS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
USAGE = (
    "LEASE FOLDER [--wait S] [--cgroup DIR]... [--fd N] [--relay FILE] [--watch PROGRAM]"
    " -- COMMAND ...\n       python -m kernelpad.kernels.keeper --clean-up FOLDER"
    " [--cgroup DIR]... [--status N]"
)
# The signals the watch acts on: blocked from just before the keeper execs the watch in C,
# which reads them from a signalfd, so that none is lost in between.
_WATCHED = (signal.SIGCHLD, signal.SIGINT, signal.SIGHUP, signal.SIGTERM)


class Keeper:
    """Keeps one kernel (see the module): its lease, its output, its end."""

    def __init__(
        self,
        lease: str,
        folder: str,
        wait: float,
        cgroups: list[str],
        relay: str | None = None,
        watch: str | None = None,
    ) -> None:
        self.lease = lease
        self.relay_file = relay
        self.watch_program = watch  # the watch in C, to hand over to
        self.folder = folder
        self.cgroups = cgroups
        self.keep = 0.0
        self.holder: socket.socket | None = None
        self.alone_since = time.monotonic()
        self.grace = wait  # until the first holder: the server's start time-out
        self.stopping = False
        self.sink: int | None = 1  # where the kernel's output goes; None once nobody reads it
        self.pending = b""

    def listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        mask = os.umask(0o177)  # the socket is made 0600: only this user may connect
        try:
            if os.path.lexists(self.lease):
                os.unlink(self.lease)
            listener.bind(self.lease)
        finally:
            os.umask(mask)
        listener.listen(4)
        listener.setblocking(False)
        return listener

    def accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return
        try:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _, uid, _ = struct.unpack("3i", creds)
            if self.holder is not None or uid != os.geteuid():
                conn.close()  # one server at a time holds a kernel; nobody else at all
                return
            conn.sendall(GREETING)
        except OSError:
            conn.close()  # gone already (a probe: is a keeper there?)
            return
        conn.setblocking(False)
        self.holder = conn

    def read_holder(self) -> None:
        assert self.holder is not None
        try:
            data = self.holder.recv(1024)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.holder.close()
            self.holder = None
            self.alone_since, self.grace = time.monotonic(), self.keep
            return
        for line in data.decode(errors="replace").splitlines():
            word, _, value = line.partition(" ")
            if word == "keep":
                with contextlib.suppress(ValueError):
                    self.keep = min(max(float(value), 0.0), 7 * 24 * 3600.0)

    def carry(self, output: int) -> bool:
        """Move what the kernel wrote on; False once it has closed its end."""
        data = os.read(output, 65536)
        if not data:
            return False
        if self.sink is not None:
            self.pending += data
        return True

    def flush(self) -> None:
        assert self.sink is not None
        try:
            written = os.write(self.sink, self.pending[:CHUNK])
        except BlockingIOError:
            return
        except OSError:
            self.sink, self.pending = None, b""  # nobody reads it any more
            return
        self.pending = self.pending[written:]

    def last_words(self, output: int) -> None:
        """What a kernel that ended wrote last (why it ended, often), passed on whole."""
        os.set_blocking(output, False)
        try:
            while data := os.read(output, 65536):
                self.pending = (self.pending + data)[-TAIL:]
        except OSError:
            pass
        while self.pending and self.sink is not None:
            try:
                written = os.write(self.sink, self.pending)
            except OSError:
                return
            self.pending = self.pending[written:]

    def expired(self) -> bool:
        return self.holder is None and time.monotonic() - self.alone_since >= self.grace

    def spawn(self, command: list[str], pass_fd: int | None) -> tuple[int, int]:
        """Start the kernel; its pid, and the pipe its output comes out of."""
        output, kernel_end = os.pipe()
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, kernel_end, 1),
            (os.POSIX_SPAWN_DUP2, kernel_end, 2),
        ]
        child = os.posix_spawnp(
            command[0], command, dict(os.environ), file_actions=actions, setsigdef=_DEFAULTS
        )
        os.close(kernel_end)
        if pass_fd is not None:
            os.close(pass_fd)  # the kernel's (the seccomp filter): it has its copy
        return child, output

    def run(self, command: list[str], pass_fd: int | None) -> int:
        """Keep the kernel until it ends, or nobody takes it back in time; then clean up,
        whatever happened (an error too: the lease, folder and cgroups must not stay)."""
        try:
            return self.watch(command, pass_fd)
        except BaseException:
            import traceback

            # Said now: clean_up() ends the keeper's process group, the keeper with it.
            traceback.print_exc()
            raise
        finally:
            self.clean_up()

    def watch(self, command: list[str], pass_fd: int | None) -> int:
        """Start the kernel and keep it; its exit status (0 if the keeper stopped it)."""
        listener = self.listen()
        relay = None
        child: int | None = None
        status = None
        try:
            wake_r, wake_w = os.pipe()
            os.set_blocking(wake_r, False)
            os.set_blocking(wake_w, False)
            signal.set_wakeup_fd(wake_w)
            for signum in (signal.SIGCHLD, signal.SIGINT, signal.SIGHUP):
                # Woken, nothing more: an interrupt sent to the process group is the kernel's.
                signal.signal(signum, lambda *_: None)
            signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
            if self.relay_file is not None:
                from kernelpad.kernels.relay import Relay, loopback_up

                loopback_up()
                relay = Relay(self.relay_file)
                relay.open()
                command = relay.command(command)
            child, output = self.spawn(command, pass_fd)
            if self.watch_program is not None:
                self.hand_over(self.watch_program, child, output, listener, relay)
            reading = True
            while status is None and not self.stopping and not self.expired():
                watched: list[int | socket.socket] = [listener, wake_r]
                if self.holder is not None:
                    watched.append(self.holder)
                if reading and not self.pending:
                    watched.append(output)
                writable: list[int | socket.socket] = []
                if self.pending and self.sink is not None:
                    writable.append(self.sink)
                timeout = None
                if self.holder is None:
                    timeout = max(0.0, self.grace - (time.monotonic() - self.alone_since))
                if relay is not None:
                    watched += relay.readers()
                    writable += relay.writers()
                    retry = relay.timeout()
                    if retry is not None:
                        timeout = retry if timeout is None else min(timeout, retry)
                ready, can_write, _ = select.select(watched, writable, [], timeout)
                if wake_r in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake_r, 512)
                done, code = os.waitpid(child, os.WNOHANG)
                if done:
                    status = os.waitstatus_to_exitcode(code)
                    self.last_words(output)
                    break
                # The holder's end first: a server that died as the next one connects must not
                # keep the next one out.
                if self.holder is not None and self.holder in ready:
                    self.read_holder()
                if listener in ready:
                    self.accept(listener)
                if output in ready:
                    reading = self.carry(output)
                if self.sink in can_write:
                    self.flush()
                if relay is not None:
                    relay.handle(ready, can_write)
        finally:
            listener.close()
            if relay is not None:
                relay.close()
            if child is not None and status is None:  # stopped, not taken back, or an error
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
        return status or 0

    def hand_over(
        self, program: str, child: int, output: int, listener: socket.socket, relay: Relay | None
    ) -> None:
        """Exec the watch in C in the keeper's place (the kernel's parent, the pid its server
        knows), with the lease, the kernel's output and the relay's sockets; it goes on from
        here. Returns only if it could not start: the watch then goes on in Python."""
        fds = [output, listener.fileno()]
        argv = [program, "--lease", str(listener.fileno()), "--output", str(output)]
        left = self.grace - (time.monotonic() - self.alone_since)
        argv += ["--child", str(child), "--wait", f"{max(0.0, left):.3f}"]
        for sock, port in relay.listeners.items() if relay is not None else ():
            fds.append(sock.fileno())
            argv += ["--relay", f"{sock.fileno()}:{port}"]
        argv += ["--", *clean_up_command(self.folder, self.cgroups)]
        for fd in fds:
            os.set_inheritable(fd, True)
        signal.pthread_sigmask(signal.SIG_BLOCK, _WATCHED)
        # A SIGTERM handled up to here set ``stopping``, which the watch in C would not know.
        if not self.stopping:
            try:
                os.execv(program, argv)
            except OSError as exc:
                print(f"keeper: watching in Python: {program}: {exc}", file=sys.stderr)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _WATCHED)
        for fd in fds:
            os.set_inheritable(fd, False)

    def clean_up(self) -> None:
        """Remove what the kernel had: its cgroups, folder and lease; and what it left in its
        process group (JJava's second JVM), the keeper with it: its work is done."""
        from pathlib import Path

        from kernelpad.kernels.cgroups import remove_cgroup
        from kernelpad.kernels.runtime import remove_kernel_files

        for folder in self.cgroups:
            remove_cgroup(Path(folder))
        remove_kernel_files(Path(self.folder))
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)


def clean_up_after(args: list[str]) -> int:
    """``--clean-up FOLDER [--cgroup DIR]... [--status N]``: the clean-up of a kernel whose
    watch in C has ended (:func:`clean_up_command`); exits with the kernel's status."""
    folder, *options = args
    cgroups, status = [], 0
    for name, value in zip(options[::2], options[1::2], strict=True):
        if name == "--cgroup":
            cgroups.append(value)
        elif name == "--status":
            status = int(value)
        else:
            raise ValueError(name)
    Keeper("", folder, 0.0, cgroups).clean_up()
    return status


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == [MODULE]:  # started by command(): python -c BOOT MODULE ...
        args = args[1:]
    if args[:1] == ["--clean-up"]:
        try:
            return clean_up_after(args[1:])
        except ValueError:
            sys.exit(f"usage: python -m kernelpad.kernels.keeper {USAGE}")
    if "--" not in args or args.index("--") < 2 or args.index("--") == len(args) - 1:
        sys.exit(f"usage: python -m kernelpad.kernels.keeper {USAGE}")
    split = args.index("--")
    lease, folder, *options = args[:split]
    wait, cgroups, pass_fd, relay, watch = 60.0, [], None, None, None
    try:
        for name, value in zip(options[::2], options[1::2], strict=True):
            if name == "--wait":
                wait = float(value)
            elif name == "--cgroup":
                cgroups.append(value)
            elif name == "--fd":
                pass_fd = int(value)
            elif name == "--relay":
                relay = value
            elif name == "--watch":
                watch = value
            else:
                raise ValueError(name)
    except ValueError:
        sys.exit(f"usage: python -m kernelpad.kernels.keeper {USAGE}")
    keeper = Keeper(lease, folder, wait, cgroups, relay, watch)
    return keeper.run(args[split + 1 :], pass_fd)


if __name__ == "__main__":
    sys.exit(main())
